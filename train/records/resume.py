"""What --resume checks before it continues a run, so that every record is kept once and the run goes on exactly.

A resume continues from a checkpoint and cuts metrics.jsonl back to it (`RunDir.open`). That is exact only when
- the run's config.yaml is the one it started with (`check_settings_unchanged`): an edited batch size or epoch count
  maps the checkpoint's step to other epochs, and the records would double or go missing;
- metrics.jsonl holds every record up to the checkpoint, each once (`plan_records`): a file cut short, emptied or
  with a line lost would leave those steps out for good, and a line written twice would be counted twice;
- the checkpoint holds what the trainer needs to continue as it was (`check_checkpoint`): without optimizer.pt or
  scheduler.pt transformers silently starts a fresh optimizer and learning-rate schedule.
Each either is repaired exactly, with the repair named on stderr, or refuses the resume with one paragraph naming
what differs and the way out. Checking a checkpoint reads its files without unpickling any of them: a run dir from
someone else cannot run code here (the trainer's own resume loads them with torch's weights_only).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from train.errors import UserError
from train.records.tracking import RecordsRead

# The trainer's state files a checkpoint must hold for an exact resume (DeepSpeed keeps its own in global_step*/).
TRAINER_STATE_FILES = ("optimizer.pt", "scheduler.pt")
# The weights files transformers' Trainer._load_from_checkpoint resumes from (5.17; one is enough). Also enough: an
# adapter in a subdirectory (several adapters), or a DeepSpeed/FSDP checkpoint's own layout.
WEIGHTS_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)


# --------------------------------------------------------------------------------------------------------------
# config.yaml as the run started


def started_settings(config_yaml: str) -> dict[str, Any]:
    """What invocation.json keeps of config.yaml when the run starts, to compare a resume's config.yaml with."""
    return yaml.safe_load(config_yaml)


def check_settings_unchanged(run_dir: Path, started: Any) -> None:
    """Refuse a resume whose config.yaml differs from the settings the run started with (`started`, from
    invocation.json; a run dir from before they were kept is not checked), naming each key that differs."""
    if not isinstance(started, dict):
        return
    config = Path(run_dir) / "config.yaml"
    now = yaml.safe_load(config.read_text())
    differences = _differences(started, now if isinstance(now, dict) else {})
    if not differences:
        return
    shown = "; ".join(f"{key} was {_show(was)}, is now {_show(is_now)}" for key, was, is_now in differences[:8])
    more = f" (and {len(differences) - 8} more)" if len(differences) > 8 else ""
    raise UserError(
        f"{config} was edited since the run started: {shown}{more}. A resume continues the checkpoints and records "
        "made with the settings the run started with; with others the steps map to other epochs and the records "
        "would be doubled or lost. Put the started values back in config.yaml to --resume, or start a new run with "
        "the new settings (without --resume)."
    )


def _differences(was: Any, now: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(was, dict) and isinstance(now, dict):
        found = []
        for key in [*was, *(key for key in now if key not in was)]:
            missing = object()
            found += _differences(was.get(key, missing), now.get(key, missing), f"{prefix}{key}.")
        return found
    return [] if was == now else [(prefix.rstrip("."), was, now)]


def _show(value: Any) -> str:
    return "(not set)" if not isinstance(value, str | int | float | bool | list | dict | None) else json.dumps(value)


# --------------------------------------------------------------------------------------------------------------
# metrics.jsonl against the checkpoints


@dataclass
class RecordsPlan:
    """Where a resume continues from (`step`, 0 for the start of training) and the records it keeps."""

    step: int
    rows: list[dict[str, Any]]
    repairs: list[str] = field(default_factory=list)  # each repair made, one sentence, for stderr


def plan_records(read: RecordsRead, path: Path, checkpoint_steps: list[int], logging_steps: int) -> RecordsPlan:
    """The newest finished checkpoint that metrics.jsonl fully records, and the records kept for it.

    A line written twice, byte for byte the same record, is dropped (repaired). Two different records of one step,
    epoch, evaluation or training end refuse: which one is the run's cannot be told. Every `logging_steps`-th step
    up to the checkpoint must have its step record; when one is missing (the file was cut, emptied or lost a
    line), the resume goes back to the newest checkpoint before it and redoes the steps from there (repaired), or,
    with no such checkpoint, refuses. The records after the chosen step are dropped (the resume writes them again).
    """
    newest = max(checkpoint_steps, default=0)
    rows, repairs = _without_repeated_lines(read, path, newest)
    logged = {row["step"] for row in rows if row["type"] == "step"}
    missing = next((step for step in range(logging_steps, newest + 1, logging_steps) if step not in logged), None)
    step = newest
    if missing is not None:
        earlier = [s for s in checkpoint_steps if s < missing]
        last = max((s for s in logged if s < missing), default=0)
        why = f"it ends at step {last}" if all(s < missing for s in logged) else f"its step {missing} record is missing"
        if not earlier:
            raise UserError(
                f"{path} has no record of step {missing} ({why}), but checkpoint-{newest} has trained to step "
                f"{newest}: resuming from it would leave steps {missing} to {newest} out of the records for good, and "
                f"no checkpoint before step {missing} is left to redo them from. Restore metrics.jsonl (from a copy "
                f"of the run), or delete the checkpoints (rm -r {path.parent / 'checkpoints'}) and --resume to train "
                "again from the start, or start a new run."
            )
        step = max(earlier)
        repairs.append(
            f"repaired {path}: it has no record of step {missing} ({why}), so the resume continues from "
            f"checkpoint-{step} instead of checkpoint-{newest} and redoes steps {step + 1} to {newest}; the records "
            f"after step {step} are written again."
        )
    return RecordsPlan(step, rows, repairs)


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What a record is the one record of: a step, an epoch, an evaluation (its label), a training end."""
    if row["type"] == "eval":
        return ("eval", row.get("label"))
    if row["type"] == "epoch":
        return ("epoch", row.get("epoch"))
    return (row["type"], row["step"])


def _without_repeated_lines(read: RecordsRead, path: Path, newest: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The records, each once; a second record of the same thing past the newest checkpoint is dropped by the
    resume anyway, so only the ones it would keep are checked."""
    seen: dict[tuple[Any, ...], tuple[dict[str, Any], int]] = {}
    kept, repeated = [], []
    numbers = read.line_numbers or [0] * len(read.rows)
    for row, number in zip(read.rows, numbers, strict=True):
        key = _key(row)
        if key not in seen:
            seen[key] = (row, number)
            kept.append(row)
            continue
        if row["step"] > newest:
            continue
        first, first_number = seen[key]
        if first != row:
            kind, which = key
            what = {"eval": f"the evaluation {which}", "train": f"the training end at step {which}"}.get(
                kind, f"{kind} {which}"
            )
            raise UserError(
                f"{path} holds two different records of {what} (lines {first_number} and {number}): the run writes "
                "each once, so something else wrote to this file (two runs in one dir, a copy), and which one is "
                "this run's cannot be told. Delete the line that is not this run's, then --resume again."
            )
        repeated.append(number)
    if not repeated:
        return kept, []
    lines = ", ".join(str(number) for number in repeated)
    return kept, [
        f"repaired {path}: line{'s' if len(repeated) > 1 else ''} {lines} repeated an earlier record byte "
        "for byte; the copy is dropped, every record is kept once."
    ]


# --------------------------------------------------------------------------------------------------------------
# The checkpoint's files


def check_checkpoint(checkpoint: Path, previous: Path | None) -> None:
    """Refuse a finished checkpoint that cannot continue the run exactly: the trainer's state files missing
    (`TRAINER_STATE_FILES`), or a file that cannot be read (damaged or cut short since it was saved), naming the file
    and the way back to the previous checkpoint, instead of a fresh optimizer or a traceback deep in the trainer.
    No file is unpickled: .pt/.pth/.bin files are torch's zip archives, whose every member's CRC is checked.
    (A save a kill cut short never gets here: `RunDir._set_aside_unfinished_saves`.)"""
    checkpoint = Path(checkpoint)
    way_back = _way_back(checkpoint, previous)
    own_layout = any(checkpoint.glob("global_step*")) or any(checkpoint.glob("pytorch_model_fsdp*"))
    if not own_layout and not _holds_weights(checkpoint):
        raise UserError(
            f"the checkpoint {checkpoint.name} cannot be resumed from: {checkpoint} holds no model weights (none of "
            f"{', '.join(WEIGHTS_FILES)}), so the trainer cannot load the model it trained. Put the weights file "
            f"back, or {way_back}; the records after that point are redone."
        )
    missing = [] if own_layout else [name for name in TRAINER_STATE_FILES if not (checkpoint / name).is_file()]
    if missing:
        names = " and ".join(missing)
        are = "is" if len(missing) == 1 else "are"
        raise UserError(
            f"the checkpoint {checkpoint.name} cannot be resumed exactly: {names} {are} "
            f"missing from {checkpoint}, so the trainer would go on with a fresh optimizer and learning-rate schedule "
            f"(Adam's moments and the schedule's position lost) without a word. Put {names} back, or {way_back}; the "
            "records after that point are redone."
        )
    files = [p for p in sorted(checkpoint.iterdir()) if p.suffix in (".json", ".safetensors", ".pt", ".pth", ".bin")]
    broken = next((p for p in files if not _readable(p)), None)
    if broken is None:
        return
    raise UserError(
        f"the checkpoint {checkpoint.name} cannot be resumed from: {broken} is corrupt or truncated (the run was "
        f"probably killed, or the disk filled, while saving it). To go on, {way_back}; the records after that point "
        "are redone."
    )


def unloadable_checkpoint(checkpoint: Path, previous: Path | None, error: Exception) -> UserError:
    """The error for a checkpoint whose weights the model this run's config builds cannot take (found only when the
    trainer loads them: a tensor of another shape, after an edit or from another model's run), naming the first
    line of the library's complaint and the way back to `previous`."""
    checkpoint = Path(checkpoint)
    said = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line), None)
    said = (said or (str(error).strip().splitlines() or [type(error).__name__])[0])[:300].rstrip(".")
    return UserError(
        f"the checkpoint {checkpoint.name} cannot be loaded into the model this run's config builds: {said}. "
        "Its weights were edited, or come from another model's run. Restore the checkpoint, or "
        f"{_way_back(checkpoint, previous)}; the records after that point are redone."
    )


def _way_back(checkpoint: Path, previous: Path | None) -> str:
    again = f"delete the checkpoint (rm -r {checkpoint}) and --resume again"
    return (
        f"{again} to continue from {previous.name}" if previous else f"{again} to restart training from the beginning"
    )


def _holds_weights(checkpoint: Path) -> bool:
    return any((checkpoint / name).is_file() for name in WEIGHTS_FILES) or any(
        (adapter / name).is_file() for adapter in checkpoint.iterdir() if adapter.is_dir() for name in WEIGHTS_FILES
    )


def _readable(path: Path) -> bool:
    try:
        if path.name == "trainer_state.json":  # the trainer's state: an object with the step it was saved at
            state = json.loads(path.read_text())
            return isinstance(state, dict) and type(state.get("global_step")) is int
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as weights:
                for name in weights.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                    weights.get_tensor(name)
        else:  # torch.save's zip archive: every member read back against its CRC, nothing unpickled
            with zipfile.ZipFile(path) as archive:
                return archive.testzip() is None
        return True
    except Exception:  # noqa: BLE001 - any failure to read is a corrupt file here
        return False
