"""RunRecords from what a run leaves on disk: our run dir's records, or any TRL / Unsloth run's trainer_state.json.

- `from_records(records, config, samples)`: metrics.jsonl's records (train/records/format.py), the config as a dict
  and the samples by label (`read_samples_dir`); the caller reads config.yaml (a run in progress passes its config).
- `from_trainer_state(path)`: a trainer_state.json, a checkpoint dir holding one, or an output dir whose newest
  checkpoint-N holds one (`find_trainer_state`). Its `log_history` is a list of dicts, one per logged step, with
  TRL's keys (`reward`, `reward_std`, `rewards/<f>/mean`, `frac_reward_zero_std`, `kl`, `entropy`, `loss`,
  `completions/mean_length`, `completions/clipped_ratio`, `step`, `epoch`); the closing entry (`train_runtime`)
  and evaluation entries (`eval_*`) are left out. Unsloth's GRPO trainer is TRL's, and writes the same file.
A file that cannot be read is a UserError naming it and what to pass instead (experiments/diagnose.py exits 2).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from train.diagnosis.base import Explain, RunRecords
from train.errors import UserError
from train.records.format import EPOCH, EVAL, STEP, eval_metrics

TRAINER_STATE = "trainer_state.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


def from_records(
    records: list[dict[str, Any]],
    *,
    config: dict[str, Any] | None = None,
    samples: dict[str, list[dict[str, Any]]] | None = None,
    explain: Explain | None = None,
    source: str = "",
) -> RunRecords:
    """A run's RunRecords from its metrics.jsonl records (in order), config dict and samples by label."""
    run = RunRecords(config=config or {}, samples=samples if samples is not None else {}, explain=explain)
    run.source = source
    for record in records:
        kind = record.get("type")
        if kind == STEP:
            run.steps.append(record)
        elif kind == EPOCH:
            run.epochs.append(record)
        elif kind == EVAL and "label" in record:
            run.evals.append(
                {
                    "label": record["label"],
                    "step": record.get("step", 0),
                    "epoch": record.get("epoch"),
                    "same_as": record.get("same_as"),
                    "metrics": eval_metrics(record),
                }
            )
    return run


def read_samples_dir(samples_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """{label: records} of every samples/<label>.jsonl; a line that does not parse (torn by a kill) is skipped."""
    samples: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(samples_dir).glob("*.jsonl")):
        rows = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        samples[path.stem] = rows
    return samples


def find_trainer_state(path: Path) -> Path:
    """The trainer_state.json that `path` names: the file itself, one in the directory, or the newest checkpoint-N's
    (by N) in an output dir."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise UserError(
            f"{path} does not exist. Pass a run dir (runs/<name>-<timestamp>), a TRL or Unsloth output dir, a "
            f"checkpoint dir (checkpoint-500) or its {TRAINER_STATE}."
        )
    if (path / TRAINER_STATE).is_file():
        return path / TRAINER_STATE
    checkpoints = sorted(
        (int(match.group(1)), child)
        for child in path.iterdir()
        if child.is_dir() and (match := _CHECKPOINT.search(child.name)) and (child / TRAINER_STATE).is_file()
    )
    if not checkpoints:
        raise UserError(
            f"{path} holds no metrics.jsonl (a grpo-lab run dir), no {TRAINER_STATE} and no checkpoint-N/"
            f"{TRAINER_STATE}. Pass a run dir, or the output_dir of a TRL or Unsloth GRPO run once it has saved a "
            "checkpoint (save_steps), or the trainer_state.json itself."
        )
    return checkpoints[-1][1] / TRAINER_STATE


def from_trainer_state(path: Path | str) -> RunRecords:
    """RunRecords of a plain TRL or Unsloth GRPO run: its log_history's step entries (see the module docstring)."""
    file = find_trainer_state(Path(path))
    fix = f"Pass a {TRAINER_STATE} as the Trainer writes it (a JSON object with a log_history list)."
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {file}: {getattr(error, 'strerror', None) or error}. {fix}") from None
    except json.JSONDecodeError as error:
        raise UserError(
            f"{file} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}). {fix}"
        ) from None
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise UserError(f"{file} has no log_history list. {fix}")
    steps = [
        entry
        for entry in history
        if isinstance(entry, dict)
        and "train_runtime" not in entry
        and not any(str(key).startswith("eval_") for key in entry)
    ]
    where = file.parent.name if file.parent.name else str(file.parent)
    return RunRecords(steps=steps, samples=None, source=f"{TRAINER_STATE} of {where} ({len(steps)} logged steps)")
