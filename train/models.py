"""Model loading: the policy (model + tokenizer + how to generate with it) for each backend.

- `unsloth` (a CUDA GPU with the gpu extra): FastLanguageModel in 4-bit with fast LoRA and vLLM generation, see
  train/unsloth_backend.py. Unsloth must be imported before trl/transformers/peft, so the entry point calls
  `train.unsloth_backend.prepare_backend` before it imports the rest of the library.
- `hf`: transformers + peft LoRA; float32 on CPU, bfloat16 on a GPU, bitsandbytes 4-bit when CUDA is there
  without unsloth and `model.load_in_4bit` is set.
- `builtin:tiny`: the offline character-level model of train/builtin_model.py, built and cached locally, then
  loaded like any hf model directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from train.config import ExperimentConfig
from train.errors import UserError
from train.generation import Generator
from train.hub import hub_reachable

ADAPTER_DIR = "adapter"


@dataclass
class Policy:
    model: Any
    tokenizer: Any
    backend: str  # "hf" or "unsloth"
    source: str  # where the weights came from (hub id, directory, or built-in cache directory)
    has_vllm: bool = False  # unsloth loaded with fast_inference: the model carries a vLLM engine

    def generator(self, batch_size: int, scratch_dir: Path | None = None) -> Generator:
        """The evaluation generator: vLLM when the model has an engine (it needs a scratch dir for the live LoRA),
        else batched transformers generate (hf, or unsloth with fast_inference off)."""
        if self.has_vllm:
            from train.unsloth_backend import VLLMGenerator

            return VLLMGenerator(self.model, self.tokenizer, lora_dir=(scratch_dir or Path(".")) / "eval_lora")
        from train.generation import HFGenerator

        return HFGenerator(self.model, self.tokenizer, batch_size=batch_size)


def load_policy(cfg: ExperimentConfig, task: Any, backend: str, adapter: Path | None = None) -> Policy:
    """The trainable policy for `cfg.model` on the resolved `backend` ("hf" or "unsloth"), LoRA attached.

    With `adapter` (a saved run's adapter/ directory), its LoRA weights, or its full weights, are loaded instead of
    fresh ones, so a trained policy can be evaluated again.
    """
    if backend == "unsloth":
        from train.unsloth_backend import load_unsloth_policy

        model, tokenizer = load_unsloth_policy(cfg, adapter=adapter)
        return Policy(model, tokenizer, "unsloth", cfg.model.name, has_vllm=cfg.model.fast_inference)

    if adapter is not None and not (Path(adapter) / "adapter_config.json").exists():
        source, adapter = str(adapter), None  # a full-weights save (the built-in model's): it is the model
    elif cfg.model.is_builtin:
        from train.builtin_model import builtin_model_dir

        source = str(builtin_model_dir(cfg, task))
    else:
        source = cfg.model.name
    model, tokenizer = _load_hf(source, cfg)
    lora_rank = cfg.model.effective_lora_rank
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    elif lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=lora_rank,
                lora_alpha=cfg.model.lora_alpha,
                lora_dropout=cfg.model.lora_dropout,
                target_modules=cfg.model.target_modules,
                task_type="CAUSAL_LM",
            ),
        )
    return Policy(model, tokenizer, "hf", source)


def _load_hf(source: str, cfg: ExperimentConfig) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if torch.cuda.is_available():
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        kwargs["device_map"] = {"": 0}
        if cfg.model.load_in_4bit and not cfg.model.is_builtin:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=kwargs["dtype"],
            )
    # AutoTokenizer would pick Qwen2's tokenizer class from the built-in model's config and drop its spaces.
    tokenizer_class = PreTrainedTokenizerFast if cfg.model.is_builtin else AutoTokenizer
    # No hub: look only in the local cache, instead of retrying the network for the better part of a minute.
    local_only = not Path(source).is_dir() and not hub_reachable()
    try:
        tokenizer = tokenizer_class.from_pretrained(source, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=local_only, **kwargs)
    except OSError as error:
        raise UserError(_unreachable_model(source, error)) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation pads on the left so every completion starts at the same column
    if "quantization_config" in kwargs:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.train.gradient_checkpointing)
    return model, tokenizer


def _unreachable_model(source: str, error: Exception) -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return (
        f"could not load the model '{source}': it is not a local directory with a config.json, not in the Hugging "
        f"Face cache ({HF_HUB_CACHE}), and the hub could not be reached or does not have it ({type(error).__name__}). "
        "Check the name, download it once where the hub is reachable (it is then cached), point model.name at a "
        "local directory, or try the offline quickstart: uv run python experiments/run_eval_test.py "
        "experiment_configs/quickstart.yaml (model.name: builtin:tiny)."
    )


def save_policy(policy: Policy, directory: Path) -> None:
    """The LoRA adapter (or, for a full fine-tune, the weights) and the tokenizer, loadable by load_policy."""
    directory.mkdir(parents=True, exist_ok=True)
    if policy.backend == "unsloth":
        from train.unsloth_backend import save_adapter

        save_adapter(policy.model, policy.tokenizer, directory)
        return
    policy.model.save_pretrained(str(directory))
    policy.tokenizer.save_pretrained(str(directory))
