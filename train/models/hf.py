"""The hf backend: transformers + peft, float32 on a CPU, bfloat16 (or bitsandbytes 4-bit) on a GPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from train.config import ExperimentConfig
from train.errors import UserError
from train.models.hub import hub_reachable


def load_hf_model(source: str, cfg: ExperimentConfig) -> tuple[Any, Any]:
    """(model, tokenizer) from a hub id or a local directory, on the GPU when there is one.

    Offline (the hub unreachable) only the local cache is looked in, instead of retrying the network for the better
    part of a minute; a model that is nowhere is a UserError naming the places looked in and the offline quickstart.
    """
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if torch.cuda.is_available():
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # Each process of a multi-GPU launch holds its own copy on its own GPU (DDP; ZeRO-3 then shards it).
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
        # 4-bit weights train through LoRA only (a full fine-tune, rank 0, keeps 16-bit weights).
        if cfg.model.load_in_4bit is True and cfg.model.effective_lora_rank > 0:  # auto is decided by then
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=kwargs["dtype"],
            )
    offline = local_only(source)
    tokenizer = load_tokenizer(source, cfg, local_only=offline)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=offline, **kwargs)
    except OSError as error:
        raise UserError(unreachable_model(source, error)) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation pads on the left so every completion starts at the same column
    if "quantization_config" in kwargs:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.gradient_checkpointing)
    return model, tokenizer


def load_tokenizer(source: str, cfg: ExperimentConfig, *, local_only: bool) -> Any:
    """The tokenizer of the model at `source` (a hub id or a local directory; only the local cache with
    `local_only`)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    # AutoTokenizer would pick Qwen2's tokenizer class from the built-in model's config and drop its spaces.
    tokenizer_class = PreTrainedTokenizerFast if cfg.model.is_builtin_tiny else AutoTokenizer
    try:
        return tokenizer_class.from_pretrained(source, local_files_only=local_only)
    except OSError as error:
        raise UserError(unreachable_model(source, error)) from None


def local_only(source: str) -> bool:
    """Look only in the local cache: `source` is not a directory and the hub cannot be reached (offline, instead of
    retrying the network for the better part of a minute)."""
    return not Path(source).is_dir() and not hub_reachable()


def attach_lora(model: Any, cfg: ExperimentConfig, adapter: Path | None = None) -> Any:
    """The model with a saved adapter loaded (trainable), or fresh LoRA adapters, or as is for rank 0."""
    if adapter is not None:
        from peft import PeftModel

        try:
            return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
        except RuntimeError as error:
            if "size mismatch" not in str(error):
                raise
            raise UserError(
                f"the adapter {adapter} was trained on a model of another shape than {cfg.model.name} (peft: "
                f"{str(error).splitlines()[-1].strip()[:200]}). Evaluate it with the config of the run that trained "
                "it (that run's config.yaml), or pass the adapter of a run of this model."
            ) from None
    rank = cfg.model.effective_lora_rank
    if rank == 0:
        return model
    import torch
    from peft import LoraConfig, get_peft_model

    # The adapters' initial weights come from the run's seed, as unsloth's random_state does: the trainer seeds
    # only later, and torch's default generator starts from a random seed, so LoRA runs would not repeat.
    torch.manual_seed(cfg.train.seed)
    lora = LoraConfig(
        r=rank,
        lora_alpha=cfg.model.lora_alpha,
        lora_dropout=cfg.model.lora_dropout,
        target_modules=cfg.model.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def unreachable_model(source: str, error: Exception) -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return (
        f"could not load the model '{source}': it is not a local directory with a config.json, not in the Hugging "
        f"Face cache ({HF_HUB_CACHE}), and the hub could not be reached or does not have it ({type(error).__name__}). "
        "Check the name, download it once where the hub is reachable (it is then cached), point model.name at a "
        "local directory, or try the offline quickstart: uv run python experiments/run_eval_test.py "
        "experiment_configs/quickstart.yaml (model.name: builtin:tiny)."
    )
