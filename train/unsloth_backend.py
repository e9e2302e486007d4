"""The unsloth backend: 4-bit loading with fast LoRA, vLLM generation (Unsloth's fast_inference), GRPO settings.

The recipe of Unsloth's GRPO notebooks, in the order a run uses it:

    backend = prepare_backend(cfg.model.backend, cfg.model.name)  # first thing: imports unsloth before trl
    model, tokenizer = load_unsloth_policy(cfg)                   # 4-bit base + LoRA, a vLLM engine beside it
    GRPOConfig(**our_settings, **grpo_config_overrides(cfg.train))
    VLLMGenerator(model, tokenizer, lora_dir).generate(prompts, n=10, temperature=0.8, max_new_tokens=512, seed=0)
    save_adapter(model, tokenizer, run_dir / "adapter")

A merged 16-bit model (to serve with vLLM or share) is one call on the trained model:
`model.save_pretrained_merged(directory, tokenizer, save_method="merged_16bit")`.

Written from the installed sources of unsloth and unsloth_zoo 2026.10.7, vllm 0.32.0 and trl 1.14.2 (the file:line
references below are to those), and not run on a GPU here; tests/test_unsloth_backend.py checks every argument we
pass against the real signatures. Nothing at the top of this module imports unsloth, vllm, trl or transformers:
the base install imports it, and unsloth must be imported before trl, transformers and peft.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from train.errors import UserError
from train.generation import Completion, Prompt

if TYPE_CHECKING:
    from train.config import ExperimentConfig, ModelConfig, TrainConfig

# Unsloth patches these when it is imported, by rebinding their module attributes (unsloth/models/rl.py:3882-3910):
# a class bound earlier (`from trl import GRPOTrainer`) stays unpatched.
PATCHED_BY_UNSLOTH = ("trl", "transformers", "peft")


def prepare_backend(backend: str, model_name: str = "") -> str:
    """Resolve `model.backend` to "unsloth" or "hf"; when it is "unsloth", import unsloth now, before trl.

    auto: unsloth when a CUDA GPU is visible and unsloth is installed, else hf. An explicit "unsloth" that cannot run
    here is a UserError naming the fix. The built-in tiny model always runs on hf. Call this first thing in an
    entry point, before importing the rest of the library (torch is imported here; that is fine before unsloth).
    """
    builtin = model_name.startswith("builtin:")
    if backend == "hf" or (backend == "auto" and builtin):
        return "hf"
    if backend not in ("auto", "unsloth"):
        raise UserError(f"model.backend is {backend!r}; it must be auto, unsloth or hf.")
    if builtin:
        raise UserError(
            f"model.name is {model_name} but model.backend is unsloth: the built-in tiny model runs on the hf backend "
            "only (unsloth loads hub models for its CUDA kernels and vLLM). Set model.backend: auto (or hf), or "
            "model.name to a hub model such as unsloth/Qwen3-1.7B."
        )
    import torch

    has_cuda = torch.cuda.is_available()
    installed = importlib.util.find_spec("unsloth") is not None
    if backend == "auto" and not (has_cuda and installed):
        return "hf"
    if not has_cuda:
        raise UserError(
            "model.backend is unsloth but no CUDA GPU is visible (torch.cuda.is_available() is False): unsloth's "
            "4-bit loading and vLLM generation need an NVIDIA GPU. Run where `nvidia-smi` lists one, or set "
            "model.backend: hf (or auto) to run on this machine with transformers + peft."
        )
    if not installed:
        raise UserError(
            "model.backend is unsloth but unsloth is not installed in this environment. Install the GPU extra "
            "(unsloth, vLLM, bitsandbytes; Linux with an NVIDIA GPU) with `uv sync --extra gpu` and run with "
            "`uv run --extra gpu ...`, or set model.backend: hf (or auto) to train with transformers + peft."
        )
    import_unsloth()
    return "unsloth"


def import_unsloth() -> ModuleType:
    """Import unsloth with vLLM Standby on; refuse if trl, transformers or peft were imported first.

    Standby (`UNSLOTH_VLLM_STANDBY=1`, kept if the user set it) lets vLLM release its KV cache while training runs;
    on a 24 GB card unsloth then sets vLLM's memory share itself (about 0.78, unsloth_zoo/vllm_utils.py:4055-4110).
    Unsloth itself only warns when it comes late (unsloth/_gpu_init.py:19-21, 143-151) and carries on, but its GRPO
    trainer and config replace trl's by rebinding module attributes, so a class imported earlier stays trl's own:
    the run would silently lose unsloth's loss, and its config would reject `unsloth_*` options. So we raise.
    """
    os.environ.setdefault("UNSLOTH_VLLM_STANDBY", "1")
    if "unsloth" in sys.modules:
        return sys.modules["unsloth"]
    early = [name for name in PATCHED_BY_UNSLOTH if name in sys.modules]
    if early:
        raise RuntimeError(
            f"unsloth must be imported before {', '.join(early)}, which {'is' if len(early) == 1 else 'are'} "
            "already imported: unsloth replaces their classes when it is imported, and classes imported earlier "
            "keep the unpatched code. Call train.unsloth_backend.prepare_backend(...) first thing in the entry "
            "point (in a notebook: restart the kernel and run it in the first cell)."
        )
    return importlib.import_module("unsloth")


# --------------------------------------------------------------------------------------------------------------
# Loading


def from_pretrained_kwargs(model_cfg: ModelConfig) -> dict[str, Any]:
    """Keyword arguments of `FastLanguageModel.from_pretrained` (unsloth/models/loader.py:1122-1156).

    Every key is a named parameter there. The model name goes through unsloth's mapper: with load_in_4bit,
    `unsloth/Qwen3-1.7B` (or `Qwen/Qwen3-1.7B`) loads the pre-quantized `unsloth/Qwen3-1.7B-unsloth-bnb-4bit`, and
    vLLM falls back to `-bnb-4bit` when it cannot run the dynamic quant (unsloth/models/_utils.py:7393-7423).
    4-bit with fast_inference needs the vllm-bnb-plugin package on vLLM >= 0.28 (unsloth_zoo/vllm_utils.py:4130-4138);
    the gpu extra installs it. `max_lora_rank` is rounded up to a rank vLLM supports (vllm_utils.py:4124).
    Not passed: `dtype` (None: bfloat16 where the GPU has it, else float16) and `random_state`, which this loader
    does not use (vLLM's own seed stays 0).
    """
    return {
        "model_name": model_cfg.name,
        "max_seq_length": model_cfg.max_seq_length,
        "load_in_4bit": model_cfg.load_in_4bit,
        "fast_inference": model_cfg.fast_inference,
        "max_lora_rank": _lora_rank(model_cfg),
        "gpu_memory_utilization": model_cfg.gpu_memory_utilization,
    }


def peft_kwargs(model_cfg: ModelConfig, train_cfg: TrainConfig) -> dict[str, Any]:
    """Keyword arguments of `FastLanguageModel.get_peft_model` (unsloth/models/llama.py:4238-4262), all named there.

    `use_gradient_checkpointing="unsloth"` is unsloth's offloaded checkpointing, the model's own from then on
    (llama.py:4918; the trainer reads it back, unsloth/models/rl.py:520-523). `random_state` seeds torch, numpy and
    random before the adapters are initialized (llama.py:4313). Dropout 0 keeps unsloth's fused LoRA kernels.
    """
    return {
        "r": _lora_rank(model_cfg),
        "target_modules": list(model_cfg.target_modules),
        "lora_alpha": model_cfg.lora_alpha,
        "lora_dropout": model_cfg.lora_dropout,
        "use_gradient_checkpointing": "unsloth",
        "random_state": train_cfg.seed,
    }


def load_unsloth_policy(cfg: ExperimentConfig, adapter: Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer): the 4-bit base with fresh LoRA adapters, or with the saved `adapter` directory's.

    Given an adapter directory (adapter_config.json inside), unsloth loads its base model and attaches it, trainable
    (unsloth/models/loader.py:1871-1940), so get_peft_model is not called again.
    """
    import_unsloth()
    from unsloth import FastLanguageModel

    kwargs = from_pretrained_kwargs(cfg.model)
    if adapter is not None:
        return FastLanguageModel.from_pretrained(**{**kwargs, "model_name": str(adapter)})
    model, tokenizer = FastLanguageModel.from_pretrained(**kwargs)
    model = FastLanguageModel.get_peft_model(model, **peft_kwargs(cfg.model, cfg.train))
    return model, tokenizer


def _lora_rank(model_cfg: ModelConfig) -> int:
    rank = model_cfg.effective_lora_rank
    if rank == 0:
        raise UserError(
            "model.lora_rank is 0 (train all weights), which the unsloth backend does not run: its vLLM generation "
            "serves LoRA adapters and refuses full fine-tuning with fast_inference, and full fine-tuning turns 4-bit "
            "loading off. Set model.lora_rank to a rank such as 16, or model.backend: hf to train all weights with "
            "transformers."
        )
    return rank


# --------------------------------------------------------------------------------------------------------------
# Training


def grpo_config_overrides(train_cfg: TrainConfig, bf16_supported: bool | None = None) -> dict[str, Any]:
    """The GRPOConfig arguments that differ on the unsloth path; merge them over the ones built from our schema.

    Importing unsloth replaces trl's GRPOConfig with one whose `__init__` rewrites some values from others
    (unsloth/models/rl.py:3284-3303, 3434-3490), so the fields it rewrites are restated here explicitly:
    - beta: unsloth's signature default is None, then 0.0 for dapo/dr_grpo and 0.001 otherwise; a value passed
      explicitly (0.0 included) is kept (rl.py:3447-3455).
    - an explicit loss_type "dapo" turns on mask_truncated_completions and epsilon_high=0.28 when those are unset
      (rl.py:3473-3479): both are pinned to our config's meaning (trl's defaults), as on the hf backend.
    - dr_grpo turns group scaling off (rl.py:3466-3471); scale_rewards=None is unsloth's way to keep it, and it
      becomes True, which trl reads as "group" (trl/trainer/grpo_config.py:1065).
    Unsloth's own choices: optim adamw_8bit for "auto"; bf16 where the GPU supports it, else fp16 (matching the
    dtype unsloth loads in); gradient_checkpointing on, as in every unsloth notebook (unsloth pins the reentrant
    checkpoint for it, rl.py:3596-3602). Not here: use_vllm and vllm_mode, which unsloth's trainer sets itself when
    the model has a vLLM engine (rl.py:4083-4114); and vllm_sampling_params, whose n, temperature, max_tokens, seed
    and logprobs are ignored (unsloth/models/rl_replacements.py:3457-3474) while our other sampling settings
    (top_p) already reach vLLM through GRPOConfig's own fields (trl/generation/vllm_generation.py:662-672).
    """
    if bf16_supported is None:
        from unsloth import is_bfloat16_supported

        bf16_supported = is_bfloat16_supported()
    dr_grpo_keeps_scaling = train_cfg.loss_type == "dr_grpo" and train_cfg.scale_rewards == "group"
    return {
        "optim": "adamw_8bit" if train_cfg.optim == "auto" else train_cfg.optim,
        "bf16": bf16_supported,
        "fp16": not bf16_supported,
        "gradient_checkpointing": True,
        "beta": train_cfg.beta,
        "loss_type": train_cfg.loss_type,
        "epsilon_high": train_cfg.clip_eps if train_cfg.clip_eps_high is None else train_cfg.clip_eps_high,
        "mask_truncated_completions": False,
        "scale_rewards": None if dr_grpo_keeps_scaling else train_cfg.scale_rewards,
    }


def save_adapter(model: Any, tokenizer: Any, directory: Path) -> None:
    """The LoRA adapter (adapter_config.json + safetensors, cast to 16 bits) and the tokenizer.

    `model.save_lora` is unsloth_zoo's (unsloth_zoo/vllm_utils.py:5032) when the model has a vLLM engine, else
    PEFT's save_pretrained over the adapter (unsloth/models/_utils.py:7426-7462); load_unsloth_policy(cfg, adapter=
    directory) and vLLM both read the result.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_lora(str(directory))
    tokenizer.save_pretrained(str(directory))


# --------------------------------------------------------------------------------------------------------------
# Generation for evaluation


class VLLMGenerator:
    """The `Generator` of the unsloth backend: the live LoRA, saved, served by the model's vLLM engine.

    Each call saves the current adapter to `lora_dir` (`model.save_lora`), asks `model.load_lora(lora_dir)` for a
    fresh LoRARequest (a new id each time, so vLLM reloads the weights: unsloth_zoo/vllm_utils.py:6549-6660), and
    generates with `model.fast_generate`, which is the engine's `LLM.generate` (unsloth/models/llama.py:3966; with
    Standby on it wakes the engine first, vllm_utils.py:797-806). Prompts go in as token ids tokenized without
    special tokens, as trl feeds vLLM in training (trl/generation/vllm_generation.py:707-716) and HFGenerator does.
    Sampling is pure temperature sampling (top_p 1, top_k off, min_p 0, no repetition penalty), seeded per call.
    """

    def __init__(self, model: Any, tokenizer: Any, lora_dir: Path) -> None:
        if getattr(model, "vllm_engine", None) is None:
            raise ValueError(
                "this model has no vLLM engine (it was loaded with model.fast_inference: false), so it cannot "
                "generate with vLLM; use train.generation.HFGenerator for it"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.lora_dir = Path(lora_dir)

    def generate(
        self, prompts: list[Prompt], *, n: int, temperature: float, max_new_tokens: int, seed: int
    ) -> list[list[Completion]]:
        params = sampling_kwargs(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        if not prompts:
            return []
        from vllm import SamplingParams

        token_prompts = [{"prompt_token_ids": self._token_ids(prompt)} for prompt in prompts]
        self.model.save_lora(str(self.lora_dir))
        outputs = self.model.fast_generate(
            token_prompts,
            sampling_params=SamplingParams(**params),
            lora_request=self.model.load_lora(str(self.lora_dir)),
            use_tqdm=False,
        )
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        return completions_from_outputs(outputs, n)

    def _token_ids(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            text = prompt
        elif not getattr(self.tokenizer, "chat_template", None):
            raise UserError(
                "the prompts are chat messages but the tokenizer has no chat template. Use a text prompt template "
                "(data.prompt_template: r1_zero, or your own text with {question}), or a model with a chat template."
            )
        else:
            text = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def sampling_kwargs(*, n: int, temperature: float, max_new_tokens: int, seed: int) -> dict[str, Any]:
    """Keyword arguments of vLLM's `SamplingParams` (vllm/sampling_params.py:268): temperature 0 is greedy, n=1."""
    if temperature == 0 and n != 1:
        raise ValueError(f"greedy decoding (temperature 0) gives one completion per prompt, not n={n}")
    return {
        "n": n,
        "temperature": temperature,
        "max_tokens": max_new_tokens,
        "seed": seed,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
    }


def completions_from_outputs(outputs: Sequence[Any], n: int) -> list[list[Completion]]:
    """Our Completions from vLLM's RequestOutputs (vllm/outputs.py:49-200), one list of n per prompt, in order.

    token_ids are the generated ids, the end-of-sequence token included when the completion stopped on it (vLLM
    keeps it: vllm/v1/core/sched/utils.py:104-112), as HFGenerator keeps it; num_tokens is their count. truncated
    means vLLM stopped at the token budget (finish_reason "length"). A request vLLM aborted or failed raises: it has
    no text to grade.
    """
    completions = []
    for output in outputs:
        samples = sorted(output.outputs, key=lambda sample: sample.index)
        if len(samples) != n:
            raise RuntimeError(f"vLLM returned {len(samples)} completions for request {output.request_id}, not {n}")
        failed = [sample.finish_reason for sample in samples if sample.finish_reason in ("abort", "error")]
        if failed:
            raise RuntimeError(f"vLLM ended request {output.request_id} with finish_reason={failed[0]!r}")
        completions.append(
            [
                Completion(
                    text=sample.text,
                    num_tokens=len(sample.token_ids),
                    truncated=sample.finish_reason == "length",
                    token_ids=tuple(sample.token_ids),
                )
                for sample in samples
            ]
        )
    return completions
