"""What only the model and its tokenizer can say against a config, asked before the run dir exists.

    check_model(cfg, task)     # train/run.py's pre-flight, after the backend is prepared

The model's name (a built-in that does not exist, or no name at all), its tokenizer (a model directory saved
without one loads an empty tokenizer that encodes every prompt to nothing), the stop strings against that tokenizer
(transformers cannot stop on a string no token sequence spells), and the LoRA target modules against the model's own
module names, matched by peft itself on a weightless copy of the model (the meta device). Each failure is one
paragraph naming the key; before these checks, every one of them failed after the run dir was created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from train.config import ExperimentConfig
from train.errors import UserError

# Files a saved tokenizer leaves in a model directory (fast, sentencepiece, BPE vocabulary).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def check_model(cfg: ExperimentConfig, task: Any) -> None:
    """Check `cfg.model` against the model it names (a built-in model is built now, as its load would)."""
    from train.models import model_source
    from train.models.hf import load_tokenizer, local_only

    source = model_source(cfg, task)
    if Path(source).is_dir() and not any((Path(source) / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(
            f"the model directory {source} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): it was saved "
            "without one. Copy the tokenizer files of the model it came from into it (tokenizer.save_pretrained), "
            "or point model.name at a directory that has them."
        )
    offline = local_only(source)
    tokenizer = load_tokenizer(source, cfg, local_only=offline)
    if not tokenizer("12 + 3 = 15", add_special_tokens=False)["input_ids"]:
        raise UserError(
            f"the tokenizer of {source} turns text into no tokens at all (its vocabulary is empty): its tokenizer "
            "files are incomplete. Save the model's tokenizer into it again, or point model.name elsewhere."
        )
    check_stop_strings(tokenizer, task.stop_strings, source)
    if cfg.model.effective_lora_rank > 0:
        check_lora_targets(cfg, source, local_only=offline)


def check_stop_strings(tokenizer: Any, stop_strings: tuple[str, ...], source: str) -> None:
    """transformers' StopStringCriteria, built now: it refuses a stop string that no sequence of the tokenizer's
    tokens can spell (generation would fail at its first call)."""
    if not stop_strings:
        return
    from transformers import StopStringCriteria

    try:
        StopStringCriteria(tokenizer, list(stop_strings))
    except ValueError as error:
        unspellable = [
            s for s in stop_strings if tokenizer.unk_token_id in tokenizer.encode(s, add_special_tokens=False)
        ]
        which = f" ({', '.join(map(repr, unspellable))} has characters it does not know)" if unspellable else ""
        raise UserError(
            f"data.stop_strings {list(stop_strings)!r} cannot be matched by the tokenizer of {source}{which}: the "
            f"installed transformers says: {error} Remove or change that stop string."
        ) from None


def check_lora_targets(cfg: ExperimentConfig, source: str, *, local_only: bool) -> None:
    """peft's own matching of model.target_modules, on the model built without weights (meta device): a list that
    is empty or matches no module is refused, naming the model's linear layers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from train.models.hf import unreachable_model

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only)
    except OSError as error:
        raise UserError(unreachable_model(source, error)) from None
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except (ValueError, KeyError, TypeError, ImportError):
        return  # no causal-LM skeleton from the config alone (a multimodal model the backend loads its own way)
    linear = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    targets = cfg.model.target_modules
    if not targets:
        raise UserError(
            f"model.target_modules is empty, so LoRA (model.lora_rank {cfg.model.effective_lora_rank}) would adapt "
            f"nothing. Name the layers to adapt; {source}'s linear layers are: {', '.join(linear)}. Or set "
            "model.lora_rank: 0 to train all weights."
        )
    try:
        get_peft_model(model, LoraConfig(r=cfg.model.effective_lora_rank, target_modules=targets))
    except ValueError as error:  # peft's NoMatchingPeftModuleError is a ValueError, as is an unsupported module
        missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n, _ in model.named_modules())]
        which = f"{', '.join(map(repr, missing))} match(es) no module" if missing else str(error).splitlines()[0]
        raise UserError(
            f"model.target_modules {targets!r} cannot be adapted by LoRA in {source}: {which}. Its linear layers "
            f"are: {', '.join(linear)}."
        ) from None
