"""The built-in tiny model: a character-level Qwen2 built and warm-started locally, with no network.

`model.name: builtin:tiny` gives a policy that runs the whole loop on a CPU: a tokenizer built with the
`tokenizers` library (one token per printable ASCII character, plus one token per answer-format tag so a tag is a
single decision), a small Qwen2 model, and a short supervised warm start (TRL's SFTTrainer) on the task's own
synthetic examples. GRPO sharpens what a policy can already sometimes do, so the warm start mixes completions that
solve their prompt with well-formatted ones that answer a different prompt (`builtin.solved_fraction`): the model
starts able to produce the format and sometimes the right answer, and GRPO has right and wrong samples to compare.

The result is cached on disk (`builtin_cache_root`: $GRPO_LAB_CACHE, else $XDG_CACHE_HOME/grpo-lab, else
~/.cache/grpo-lab) under a key made of what the model depends on: its shape, the SFT settings and the warm-start
examples themselves, so a setting that does not change them (eval.*, train.*, ...) finds the same model, and a
build says which settings made it necessary. Building is deterministic for a seed on the same hardware.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import string
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from train.config import ExperimentConfig
from train.errors import UserError
from train.records.voice import say

# Tags of every answer format the tasks render; each is one token so the tiny model emits a tag in one step.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>", "<reasoning>", "</reasoning>"]
SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "unk_token": "<unk>"}
CHARACTERS = list(string.printable)  # digits, letters, punctuation, space, \t \n \r \x0b \x0c


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level fast tokenizer: one id per printable ASCII character and per answer tag."""
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS.values(), *CHARACTERS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    # Split into single characters; WordLevel then maps each character to its id.
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, padding_side="left", **SPECIAL_TOKENS)
    tokenizer.add_tokens(TAG_TOKENS)
    tokenizer.model_max_length = 4096
    return tokenizer


def random_tiny_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 96,
    num_layers: int = 3,
    num_heads: int = 4,
    max_positions: int = 1024,
    seed: int = 0,
) -> Qwen2ForCausalLM:
    """A freshly initialized tiny Qwen2 whose vocabulary is the tokenizer's (deterministic for a seed)."""
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 3,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def builtin_parameter_count(cfg: ExperimentConfig) -> int:
    """The built-in model's parameter count for `cfg`'s shape, without building it (on the meta device)."""
    shape = cfg.model.builtin
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # random_tiny_model seeds torch: leave it be
        model = random_tiny_model(
            build_tokenizer(),
            hidden_size=shape.hidden_size,
            num_layers=shape.num_layers,
            num_heads=shape.num_heads,
            max_positions=cfg.model.max_seq_length,
        )
    return sum(parameter.numel() for parameter in model.parameters())


# Bump when the build changes in a way that makes cached models stale (2: keyed by the warm-start examples).
BUILD_VERSION = 2


def builtin_cache_root() -> Path:
    """Where built models live: $GRPO_LAB_CACHE/builtin, else $XDG_CACHE_HOME/grpo-lab/builtin, else
    ~/.cache/grpo-lab/builtin."""
    if os.environ.get("GRPO_LAB_CACHE"):
        return Path(os.environ["GRPO_LAB_CACHE"]) / "builtin"
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "grpo-lab" / "builtin"


def builtin_recipe(cfg: ExperimentConfig, examples: list[dict[str, str]]) -> dict[str, Any]:
    """What the built model depends on, and only that: the build version, its shape and SFT settings, the sequence
    length, and the warm-start examples themselves (by digest). The data settings that produced the examples are
    kept beside them (`data`) to say why a model is built, but are not part of the key: a setting that leaves the
    examples as they are (eval.*, train.*, or data.test_samples for a task whose training rows do not depend on it)
    finds the same model. For generated Countdown, data.train_samples and data.test_samples do change the examples:
    the training rows the warm start cycles through are that many, and exclude every test problem."""
    if cfg.model.name != "builtin:tiny":
        from train.models.packaged import PACKAGED_MODELS

        raise UserError(
            f"unknown built-in model '{cfg.model.name}': the built-in models are builtin:tiny (built locally) and "
            f"{', '.join(sorted(PACKAGED_MODELS))} (shipped in a package). Set model.name to one of them."
        )
    data = cfg.data
    return {
        "version": BUILD_VERSION,
        "model": cfg.model.name,
        "builtin": cfg.model.builtin.model_dump(),
        "max_seq_length": cfg.model.max_seq_length,
        "warm_start": hashlib.sha256(json.dumps(examples, sort_keys=True).encode()).hexdigest(),
        "data": {
            "task": data.task,
            "source": data.source,
            "options": data.options,
            "prompt_template": data.prompt_template,
            "seed": data.seed,
            "train_samples": data.train_samples,
            "test_samples": data.test_samples,
        },
    }


def recipe_key(recipe: dict[str, Any]) -> str:
    keyed = {name: value for name, value in recipe.items() if name != "data"}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]


def builtin_model_dir(cfg: ExperimentConfig, task: Any) -> Path:
    """The cached model directory for this recipe, building it first when it is not there (saying why)."""
    settings = cfg.model.builtin
    examples = warm_start_examples(task, settings.sft_examples, settings.solved_fraction, settings.seed)
    recipe = builtin_recipe(cfg, examples)
    key = recipe_key(recipe)
    target = builtin_cache_root() / key
    if (target / "config.json").exists():
        return target
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Its SFT warm start would run as one DDP job across the launch (another model than one process builds,
        # under the same cache key), or hang when one process builds alone: build it in one process first.
        raise UserError(
            f"the built-in model for this config is not built yet ({target}), and it cannot be built inside a "
            "multi-process launch. Build it once in one process (uv run python experiments/evaluate.py CONFIG, "
            "which builds, caches and evaluates it), then launch again."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    say(
        f"building builtin:tiny for task {cfg.data.task}: {why_build(recipe, target.parent)}; "
        f"{cfg.model.builtin.sft_steps} warm-start SFT steps, once (cached in {target})"
    )

    def build(staging: Path) -> None:
        build_builtin_model(cfg, examples, staging)
        (staging / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")

    return build_into_cache(target, build)


def build_into_cache(target: Path, build: Callable[[Path], None]) -> Path:
    """`build(staging)` writes a model directory into a staging dir beside `target`, which is then renamed to
    `target`: atomic, so a killed build or conversion never leaves a half model in the cache (the built-in model's
    builds and the packaged models' conversions both go through here)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=target.parent))
    try:
        build(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").exists():  # a concurrent build that won the race is fine too
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def why_build(recipe: dict[str, Any], root: Path) -> str:
    """Why no cached model fits `recipe`: the settings in which the closest cached model differs."""
    wanted = _settings(recipe)
    differences = []
    for path in Path(root).glob("*/recipe.json"):
        try:
            cached = _settings(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
        differences.append(
            (path.parent, [key for key in sorted(wanted.keys() | cached.keys()) if wanted.get(key) != cached.get(key)])
        )
    if not differences:
        return "no built model is cached yet"
    where, keys = min(differences, key=lambda found: len(found[1]))
    cached = _settings(json.loads((where / "recipe.json").read_text()))
    shown = [
        f"{key} {cached.get(key)!r} -> {wanted.get(key)!r}" for key in keys if key not in ("version", "warm_start")
    ]
    if not shown:
        return f"the cached model in {where} was built by another version of this build"
    return (
        f"no cached model was warm-started on these examples; the closest ({where.name}) differs in "
        f"{', '.join(shown)}, which changes the warm start"
    )


def _settings(recipe: dict[str, Any]) -> dict[str, Any]:
    """A recipe (this version's, or an older flat one) as flat `section.key` settings, for saying what differs."""
    flat: dict[str, Any] = {"version": recipe.get("version")}
    for key, value in recipe.get("builtin", {}).items():
        flat[f"model.builtin.{key}"] = value
    flat["model.max_seq_length"] = recipe.get("max_seq_length")
    data = recipe.get("data") or {key: recipe.get(old) for key, old in _OLD_DATA_KEYS.items()}
    for key, value in data.items():
        flat[f"data.{key}"] = value
    flat["warm_start"] = recipe.get("warm_start")
    return flat


# Where version 1 recipes (flat) kept the data settings.
_OLD_DATA_KEYS = {
    "task": "task",
    "source": "source",
    "options": "options",
    "prompt_template": "prompt_template",
    "seed": "data_seed",
    "train_samples": "train_samples",
    "test_samples": "test_samples",
}


def warm_start_examples(task: Any, num_examples: int, solved_fraction: float, seed: int) -> list[dict[str, str]]:
    """Prompt/completion pairs: a `solved_fraction` share whose completion solves the prompt; the others borrow
    another row's solution, so they are well formatted but (almost always) wrong for their prompt."""
    rows = task.load_split("train", None)  # every training row, cycled: the warm start needs more examples than rows
    if len(rows) < 2:
        raise UserError("the built-in model's warm start needs at least 2 training rows; raise data.train_samples.")
    references = [task.reference_completion(row) for row in rows]
    usable = [i for i, ref in enumerate(references) if ref]
    if not usable:
        raise UserError(
            f"task '{task.name}' gives no reference solutions, so builtin:tiny cannot be warm-started on it; "
            "use a hub model or a task with solutions (countdown, gsm8k)."
        )
    rng = random.Random(seed)
    examples = []
    for i in range(num_examples):
        index = usable[i % len(usable)]
        prompt = rows[index]["prompt"]
        if not isinstance(prompt, str):
            raise UserError(
                "builtin:tiny has no chat template: use a text prompt_template (r1_zero or your own {question} "
                "text) with it, not chat or xml_reasoning."
            )
        if rng.random() < solved_fraction:
            completion = references[index]
        else:
            completion = references[rng.choice([j for j in usable if j != index] or usable)]
        examples.append({"prompt": prompt, "completion": completion})
    return examples


def build_builtin_model(cfg: ExperimentConfig, examples: list[dict[str, str]], directory: Path) -> None:
    """Build the tokenizer and tiny model, warm-start it on `examples` with TRL's SFTTrainer, save both."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    recipe = cfg.model.builtin
    tokenizer = build_tokenizer()
    model = random_tiny_model(
        tokenizer,
        hidden_size=recipe.hidden_size,
        num_layers=recipe.num_layers,
        num_heads=recipe.num_heads,
        max_positions=cfg.model.max_seq_length,
        seed=recipe.seed,
    )
    args = SFTConfig(
        output_dir=str(directory / "sft"),
        max_steps=recipe.sft_steps,
        per_device_train_batch_size=32,
        learning_rate=recipe.sft_learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=min(50, recipe.sft_steps // 10),
        max_length=cfg.model.max_seq_length,
        completion_only_loss=True,
        logging_steps=max(recipe.sft_steps // 10, 1),
        save_strategy="no",
        report_to="none",
        bf16=False,
        use_cpu=not torch.cuda.is_available(),
        seed=recipe.seed,
        data_seed=recipe.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    if recipe.sft_steps:
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tokenizer
        )
        trainer.remove_callback(PrinterCallback)  # its loss dicts; the closing loss is printed below
        result = trainer.train()
        say(
            f"built: {recipe.sft_steps} SFT steps in {result.metrics.get('train_runtime', 0):.0f} s, "
            f"loss {result.training_loss:.3f}"
        )
        model = trainer.model
    shutil.rmtree(directory / "sft", ignore_errors=True)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
