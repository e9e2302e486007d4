"""The unsloth backend: FastLanguageModel loading (4-bit, fast LoRA), vLLM beside it, and its GRPO settings.

The recipe of Unsloth's GRPO notebooks, in the order a run uses it:

    backend = prepare_backend(cfg.model)          # first thing: imports unsloth before trl, transformers, peft
    model, tokenizer = load_unsloth_policy(cfg)   # base (4-bit on a GPU) + LoRA, a vLLM engine beside it
    resolve(cfg, "unsloth").grpo_config()         # with unsloth's GRPOConfig quirks (train/grpo/workarounds.py)
    save_adapter(model, tokenizer, run_dir / "adapter")

Generation for evaluation is train/models/generation.py's (VLLMGenerator when the model carries an engine).
On a machine without a GPU, unsloth 2026.10.9 runs its CPU backend: the model loads and trains through unsloth,
but vLLM cannot start (fast_inference is turned off, generation is transformers') and unsloth leaves TRL's
trainer as it is; the run says so once. Nothing at the top of this module imports unsloth, trl or transformers.
Every argument passed to unsloth is checked against its real signatures by tests/test_unsloth_backend.py.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from train.errors import UserError

if TYPE_CHECKING:
    from train.config import ExperimentConfig, ModelConfig, TrainConfig

# Importing unsloth rebinds classes of these packages, so one imported earlier keeps the unpatched class.
PATCHED_BY_UNSLOTH = ("trl", "transformers", "peft")


def prepare_backend(model_cfg: ModelConfig) -> str:
    """Resolve `model.backend` to "unsloth" or "hf"; when it is "unsloth", import unsloth now, before trl.

    - hf: transformers + peft, wherever the run is (a CPU run of a hub model is asked for this way).
    - unsloth: unsloth must be installed (the gpu extra); without a GPU it runs on unsloth's CPU backend.
    - auto: the built-in model runs on hf; a hub model runs on unsloth where a CUDA GPU is visible and unsloth is
      installed, on hf where only the GPU is there, and stops with a UserError where no GPU is visible: a GPU
      recipe must never quietly become a days-long CPU run. A packaged model (135M) runs on hf without a GPU.
    Call this first thing in an entry point, before importing the rest of the library.
    """
    backend = model_cfg.backend
    if backend == "hf" or (backend == "auto" and model_cfg.is_builtin_tiny):
        return "hf"
    installed = importlib.util.find_spec("unsloth") is not None
    if backend == "unsloth":
        if not installed:
            raise UserError(
                "model.backend is unsloth but unsloth is not installed in this environment. Install the GPU extra "
                "(unsloth, vLLM, bitsandbytes; Linux) with `uv sync --extra gpu` and run with `uv run --extra gpu "
                "...`, or set model.backend: hf to train with transformers + peft."
            )
        import_unsloth()
        return "unsloth"
    cuda, why_not = cuda_status()
    if not cuda and model_cfg.is_packaged:
        return "hf"  # a packaged model is small enough to train on a CPU: that is what it ships for
    if not cuda:
        raise UserError(
            f"model.backend is auto and model.name is {model_cfg.name}, a GPU recipe, but {why_not}. Run it on a "
            "machine where `nvidia-smi` lists a GPU (driver 580 or newer for the locked torch's CUDA 13 build), or "
            "set model.backend: hf to train it on this CPU with transformers (float32, far slower), or use the "
            "offline quickstart: experiment_configs/quickstart.yaml (model.name: builtin:tiny)."
        )
    if not installed:
        return "hf"
    import_unsloth()
    return "unsloth"


def cuda_status() -> tuple[bool, str]:
    """(is a CUDA GPU usable, and if not, why not in words: no GPU, or a driver too old with its version)."""
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        return True, ""
    driver_warning = next((str(w.message) for w in caught if "driver" in str(w.message).lower()), None)
    if driver_warning:
        return False, f"CUDA cannot start: {driver_warning.strip()}"
    if torch.version.cuda is None:
        return False, "this torch build has no CUDA support"
    return False, f"no CUDA GPU is visible (torch {torch.__version__} built for CUDA {torch.version.cuda})"


def import_unsloth() -> ModuleType:
    """Import unsloth with vLLM Standby on; refuse if trl, transformers or peft were imported first.

    Standby (`UNSLOTH_VLLM_STANDBY=1`, kept if the user set it) lets vLLM release its KV cache while training runs.
    Unsloth itself only warns when it comes late and carries on, but its GRPO trainer and config replace trl's by
    rebinding module attributes, so a class imported earlier stays trl's own: the run would silently lose
    unsloth's loss. So we raise (test_import_unsloth_refuses_to_come_after_trl...).
    """
    os.environ.setdefault("UNSLOTH_VLLM_STANDBY", "1")
    if "unsloth" in sys.modules:
        return sys.modules["unsloth"]
    early = [name for name in PATCHED_BY_UNSLOTH if name in sys.modules]
    if early:
        raise RuntimeError(
            f"unsloth must be imported before {', '.join(early)}, which {'is' if len(early) == 1 else 'are'} "
            "already imported: unsloth replaces their classes when it is imported, and classes imported earlier "
            "keep the unpatched code. Call train.models.unsloth.prepare_backend(...) first thing in the entry "
            "point (in a notebook: restart the kernel and run it in the first cell)."
        )
    return importlib.import_module("unsloth")


# --------------------------------------------------------------------------------------------------------------
# Loading


def from_pretrained_kwargs(
    model_cfg: ModelConfig, model_name: str | None = None, on_gpu: bool = True
) -> dict[str, Any]:
    """Keyword arguments of `FastLanguageModel.from_pretrained`, every key a named parameter there.

    `model_name` is where the weights are (the built-in model's cache directory; default `model.name`). With
    load_in_4bit, unsloth's name mapper loads the pre-quantized `unsloth/<model>-unsloth-bnb-4bit`; 4-bit with
    fast_inference needs the vllm-bnb-plugin package (the gpu extra installs it). Without a GPU vLLM cannot start,
    so fast_inference is off. Not passed: `dtype` (unsloth picks bfloat16 where supported, else float16).
    """
    return {
        "model_name": model_name or model_cfg.name,
        "max_seq_length": model_cfg.max_seq_length,
        "load_in_4bit": _decided_4bit(model_cfg),
        "fast_inference": model_cfg.fast_inference and on_gpu,
        "max_lora_rank": _lora_rank(model_cfg),
        "gpu_memory_utilization": model_cfg.gpu_memory_utilization,
    }


def _decided_4bit(model_cfg: ModelConfig) -> bool:
    """model.load_in_4bit as a bool: `auto` must have been decided for the card (memory_plan.resolve_precision)."""
    if not isinstance(model_cfg.load_in_4bit, bool):
        raise ValueError("model.load_in_4bit is auto: the entry point decides it first (resolve_precision)")
    return model_cfg.load_in_4bit


def peft_kwargs(model_cfg: ModelConfig, train_cfg: TrainConfig) -> dict[str, Any]:
    """Keyword arguments of `FastLanguageModel.get_peft_model`, all named there.

    `use_gradient_checkpointing="unsloth"` is unsloth's offloaded checkpointing (the trainer reads it back from the
    model); `random_state` seeds the adapters' initialization. Dropout 0 keeps unsloth's fused LoRA kernels.
    """
    return {
        "r": _lora_rank(model_cfg),
        "target_modules": list(model_cfg.target_modules),
        "lora_alpha": model_cfg.lora_alpha,
        "lora_dropout": model_cfg.lora_dropout,
        "use_gradient_checkpointing": "unsloth",
        "random_state": train_cfg.seed,
    }


def load_unsloth_policy(cfg: ExperimentConfig, source: str, adapter: Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer): the base from `source` with fresh LoRA adapters, or with the saved `adapter` directory's.

    Given an adapter directory (adapter_config.json inside), unsloth loads its base model and attaches it, trainable,
    so get_peft_model is not called again. Without a GPU, the run says once what it does instead (no vLLM; TRL's
    own trainer, which unsloth rewrites only on a GPU).
    """
    import torch

    import_unsloth()
    from unsloth import FastLanguageModel

    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        _say_once(
            "unsloth is running on its CPU backend: the model loads and trains through unsloth, but vLLM needs a GPU "
            "(generation uses transformers) and unsloth leaves TRL's GRPO trainer as it is (its fused GRPO loss "
            "runs on a GPU only)."
        )
    kwargs = from_pretrained_kwargs(cfg.model, source, on_gpu=on_gpu)
    if adapter is not None:
        model, tokenizer = FastLanguageModel.from_pretrained(**{**kwargs, "model_name": str(adapter)})
    else:
        model, tokenizer = FastLanguageModel.from_pretrained(**kwargs)
        model = FastLanguageModel.get_peft_model(model, **peft_kwargs(cfg.model, cfg.train))
    if cfg.model.is_builtin_tiny:
        # unsloth loads tokenizers through AutoTokenizer, which picks Qwen2's class for the built-in model and drops
        # its spaces; its own tokenizer class is a PreTrainedTokenizerFast.
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(source)
    return model, tokenizer


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        from train.records.voice import note

        note(message)


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


def save_adapter(model: Any, tokenizer: Any, directory: Path) -> None:
    """The LoRA adapter (adapter_config.json + safetensors) and the tokenizer: `model.save_lora` where unsloth gives
    the model one (its GPU loader), else PEFT's save_pretrained (unsloth's CPU backend); both read back the same."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "save_lora"):
        model.save_lora(str(directory))
    else:
        model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
