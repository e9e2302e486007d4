"""From a run to deployable weights: the merged or GGUF export of the run's saved adapter.

A run writes its adapter/ (the LoRA adapter, or a full fine-tune's weights, and the tokenizer) at the end of every
epoch and at the end of training (train/records/adapter.py), each time replacing the previous one whole
(`train.records.files.replace_dir`).
experiments/export.py turns it into weights any runtime loads:
- merged 16-bit weights (`export_merged`): on the unsloth backend Unsloth's
  `model.save_pretrained_merged(out, tokenizer, save_method="merged_16bit")`; on the hf backend peft's
  `merge_and_unload()` over the base model loaded unquantized, cast to `dtype` and saved with `save_pretrained`;
  a full fine-tune (no adapter_config.json) is copied as it is. The result is a plain transformers model directory
  (config.json, safetensors, tokenizer), which `AutoModelForCausalLM.from_pretrained` and vLLM load.
- GGUF (`export_gguf`): Unsloth's `model.save_pretrained_gguf(out, tokenizer, quantization_method=...)`, unsloth
  backend only. It clones llama.cpp from GitHub into ./llama.cpp and builds it (git, cmake and a C/C++ compiler,
  network access), then converts and quantizes.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from train.config import ExperimentConfig, load_config
from train.errors import UserError, check_writable
from train.models import adapter_kind
from train.records.files import set_aside
from train.records.rundir import ADAPTER_DIR

if TYPE_CHECKING:
    from train.models import Policy

DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class SavedRun:
    path: Path
    cfg: ExperimentConfig
    adapter: Path

    @property
    def full_weights(self) -> bool:
        """A full fine-tune's save (the built-in model on hf): the adapter directory is the whole model."""
        return adapter_kind(self.adapter) != "lora"


def open_run(run_dir: Path) -> SavedRun:
    """The run in `run_dir` with its config and saved adapter, or a UserError saying what is missing."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(
            f"{run_dir} is not a run dir: it has no config.yaml. Pass the directory a training run wrote, e.g. "
            "runs/quickstart-20261122-101500 (experiments/run_eval_test.py prints it at the end)."
        )
    cfg = load_config(run_dir / "config.yaml")
    adapter = run_dir / ADAPTER_DIR
    if not adapter.is_dir():
        aside = set_aside(adapter)  # a run killed between the two renames of replace_dir
        adapter = aside if aside.is_dir() else adapter
    weights = [*adapter.glob("*.safetensors"), *adapter.glob("*model*.bin")] if adapter.is_dir() else []
    if adapter_kind(adapter) is None or not weights:
        raise UserError(
            f"the run {run_dir} has no saved adapter in {run_dir / ADAPTER_DIR} (no adapter_config.json or config.json "
            "with weights). A run saves it at the end of every epoch: let the run finish its first epoch, or "
            "--resume it; output.save_adapter: false runs save none."
        )
    return SavedRun(run_dir, cfg, adapter)


def check_saved_weights(adapter: Path) -> None:
    """Refuse a saved adapter (or full weights) that cannot be loaded whole, before anything loads or is written:
    an adapter_config.json that is not a JSON object or names a peft_type the installed peft does not know, and a
    .safetensors file whose header does not cover its data (cut short by a kill, a full disk or a copy). Exporting
    one wrote "merged weights" from the corrupt file (exit 0); loading one was a traceback. It imports peft: call
    it once the backend is prepared (unsloth first)."""
    config = adapter / "adapter_config.json"
    if config.is_file():
        from peft import PeftType

        try:
            peft_type = json.loads(config.read_text(encoding="utf-8")).get("peft_type")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
            raise UserError(
                f"{config} is not a readable adapter config ({getattr(error, 'strerror', None) or error}). It was "
                "damaged after the run saved it: restore it (or --resume an unfinished run, which saves it again)."
            ) from None
        if peft_type not in {member.value for member in PeftType}:
            raise UserError(
                f"{config} names peft_type {peft_type!r}, which the installed peft does not know (this project saves "
                "LORA adapters). It was edited or damaged after the run saved it: restore it (or --resume an "
                "unfinished run, which saves the adapter again)."
            )
    from safetensors import safe_open

    for weights in sorted(adapter.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="numpy") as handle:
                handle.keys()
        except Exception as error:  # noqa: BLE001 - safetensors' own error type is not public; any failure is this
            raise UserError(
                f"{weights} is damaged ({error}): it was cut short or changed after the run saved it, and loading it "
                "would fail or load garbage. Restore the file, or save the adapter again (a run saves it at every "
                "epoch end: --resume an unfinished run)."
            ) from None


def check_output_dir(out: Path, flag: str) -> None:
    """The export target must be new or an empty directory (an export never mixes its files with others), and
    writable: a read-only destination is refused before the model loads, not after."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(
            f"{flag} {out} already exists and is not empty. Choose a new directory (it is created), or remove that "
            "one first: an export never writes over other files."
        )
    check_writable(out, flag, f"Choose another {flag} directory, on a file system that can be written.")


def export_backend(cfg: ExperimentConfig) -> str:
    """The backend the export loads the run with: the config's, where auto is resolved without stopping the export.

    auto means unsloth where a CUDA GPU and unsloth are both there (as in training) and hf otherwise: the adapter is
    a PEFT adapter either way, and the hf backend merges it into the unquantized base model on any machine.
    """
    if cfg.model.backend != "auto":
        return cfg.model.backend
    if cfg.model.is_builtin_tiny or importlib.util.find_spec("unsloth") is None:
        return "hf"
    import torch

    return "unsloth" if torch.cuda.is_available() else "hf"


def gguf_needs_unsloth(backend: str) -> None:
    """GGUF export is Unsloth's: on any other backend, stop and say what it needs and what to do instead."""
    if backend == "unsloth":
        return
    raise UserError(
        f"--gguf goes through Unsloth's model.save_pretrained_gguf, and this run loads on the {backend} backend. It "
        "needs the unsloth backend (model.backend: unsloth or auto, the gpu extra: uv sync --extra gpu, a CUDA GPU), "
        "and network access, git, cmake and a C/C++ compiler: Unsloth clones llama.cpp from GitHub into ./llama.cpp "
        "and builds it before converting. Here, export --merged OUT instead and convert that directory with "
        "llama.cpp yourself (python llama.cpp/convert_hf_to_gguf.py OUT --outtype q8_0)."
    )


def export_config(cfg: ExperimentConfig, backend: str) -> ExperimentConfig:
    """The run's config for loading it to export: no vLLM engine; on hf, the base weights unquantized (a merge into
    4-bit weights would round the update away). Unsloth's merged_16bit dequantizes a 4-bit base itself."""
    update: dict[str, Any] = {"fast_inference": False}
    if backend == "hf":
        update["load_in_4bit"] = False
    return cfg.model_copy(update={"model": cfg.model.model_copy(update=update)})


def load_trained_policy(run: SavedRun, backend: str) -> Policy:
    """The run's trained policy (base + its adapter), loaded for export."""
    from train.models import load_policy
    from train.tasks import get_task

    cfg = export_config(run.cfg, backend)
    return load_policy(cfg, get_task(cfg.data), backend, adapter=run.adapter)


def export_merged(run: SavedRun, out: Path, backend: str, dtype: str = "bfloat16") -> None:
    """Merged weights and tokenizer in `out` (see the module docstring). `dtype` applies to the hf backend."""
    out = Path(out)
    if run.full_weights:
        shutil.copytree(run.adapter, out, dirs_exist_ok=True)
        return
    policy = load_trained_policy(run, backend)
    if backend == "unsloth":
        policy.model.save_pretrained_merged(str(out), policy.tokenizer, save_method="merged_16bit")
        return
    import torch

    merged = policy.model.merge_and_unload()
    merged.to(getattr(torch, dtype))
    merged.save_pretrained(str(out))
    policy.tokenizer.save_pretrained(str(out))


def export_gguf(run: SavedRun, out: Path, backend: str, quantization: str) -> None:
    """GGUF weights in `out` through Unsloth (see the module docstring)."""
    gguf_needs_unsloth(backend)
    policy = load_trained_policy(run, backend)
    policy.model.save_pretrained_gguf(str(out), policy.tokenizer, quantization_method=quantization)
