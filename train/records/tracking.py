"""The one metrics path: every record goes into the run's metrics.jsonl first, then to the wandb mirror.

The record format is train/records/format.py's. Lines are appended and flushed as they happen, so a killed run keeps
what it logged; `--resume` cuts the file back to the checkpoint it resumes from (`MetricsLog.truncate_after`, an atomic
rewrite), so no epoch record is lost or duplicated. wandb is a mirror: it can fail without stopping a run, and when it
is off it is a `NullMirror`, so no caller checks for it.
"""

from __future__ import annotations

import json
import math
import netrc
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rewards.jsonl import JsonlError, read_jsonl
from train.errors import UserError
from train.records.files import write_atomic
from train.records.voice import warn


class MetricsLog:
    """Append-only JSONL of the run's records, each also sent to the mirror."""

    def __init__(self, path: Path, mirror: Mirror | None = None, guard: Callable[[], None] | None = None):
        self.path = Path(path)
        self.mirror: Mirror = mirror or NullMirror()
        # Raises when the file is no longer this run's to write (RunDir.check_held: its dir deleted or replaced).
        self.guard = guard or (lambda: None)
        self.torn_line: int | None = None  # set by truncate_after: the torn last line it dropped

    def write(self, record: dict[str, Any]) -> None:
        self.guard()
        with self.path.open("a") as handle:
            handle.write(json.dumps(_finite(record)) + "\n")
            handle.flush()  # enough for a killed process: the line is in the OS's hands
            if record.get("type") != "step":  # epoch and eval records also survive a machine crash
                os.fsync(handle.fileno())
        self.mirror.log(record)

    def records(self, type: str | None = None) -> list[dict[str, Any]]:
        """The records, in order; a torn last line is skipped, any other bad line is a CorruptRecords error."""
        rows = read_records(self.path, fix=RESUME_FIX).rows
        return [row for row in rows if type is None or row.get("type") == type]

    def truncate_after(self, step: int, drop_labels: tuple[str, ...] = ()) -> int:
        """Drop the records written after optimizer step `step` (what a resumed run redoes), and evals with one of
        `drop_labels`; returns how many were dropped. The zero-shot eval is at step 0, so it is always kept. A torn
        last line (`torn_line` after the call) is dropped too, and not counted; any other bad line refuses.

        The kept records go to a temporary file that is fsynced and renamed over metrics.jsonl: a kill at any
        moment leaves either the old file or the new one, never an empty or half-written one.
        """
        read = read_records(self.path, fix=RESUME_FIX)
        self.torn_line = read.torn_line
        kept = [row for row in read.rows if row["step"] <= step and row.get("label") not in drop_labels]
        write_atomic(self.path, "".join(json.dumps(row) + "\n" for row in kept))
        return len(read.rows) - len(kept)


RESUME_FIX = "Delete or repair that line (one JSON object per line, as the run wrote them), then --resume again"
REPORT_FIX = "Delete or repair that line (one JSON object per line, as the run wrote them); the report never edits it"


class CorruptRecords(UserError):
    """A line of metrics.jsonl that is neither a record nor the torn last line of a killed write."""


@dataclass
class RecordsRead:
    rows: list[dict[str, Any]]
    torn_line: int | None = None  # the number of a last line cut off mid-write (skipped), if there was one
    line_numbers: list[int] = field(default_factory=list)  # the line of the file each row was read from


def read_records(path: Path, *, fix: str) -> RecordsRead:
    """The records of a metrics.jsonl (none when it does not exist), read by the one JSONL reader
    (rewards.jsonl.read_jsonl).

    Every line must be a JSON object with a "type" and a numeric "step", as MetricsLog writes them (an evaluation
    also its "label"). The one
    exception is a last line that lacks its newline and does not parse: a write cut off by a kill (each record is
    written as one line ending in a newline), skipped and reported in `torn_line`. Any other bad line is a
    CorruptRecords naming the file, the line number, what is wrong and `fix`: something else wrote to the file, and
    guessing which records to keep would lose or duplicate some silently.
    """
    path = Path(path)
    if not path.exists():
        return RecordsRead([])
    try:
        read = read_jsonl(path, check=_record_problem, torn_last_line=True)
    except OSError as error:
        raise CorruptRecords(f"cannot read {path}: {error.strerror or error}. {fix}.") from None
    except JsonlError as error:
        line = error.bad[0]
        said = f"is {line.problem}" if line.problem.startswith("not ") else f"is bad ({line.problem})"
        raise CorruptRecords(f"{path} line {line.number} {said}: {line.text!r}. {fix}.") from None
    return RecordsRead(read.rows, read.torn_line, read.line_numbers)


def _record_problem(row: dict[str, Any]) -> str | None:
    step = row.get("step")
    if not isinstance(row.get("type"), str) or isinstance(step, bool) or not isinstance(step, int | float):
        return 'not a record of this run (every record has a "type" and a numeric "step")'
    if row["type"] == "eval" and (not isinstance(row.get("label"), str) or not row["label"]):
        return 'an evaluation without its "label" (zero_shot, epoch_1, ..., final), which names it'
    return None


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN: write null, so every reader (jq, pandas, wandb) agrees on "no value".
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    from train.records.rundir import SUMMARY_FILE  # rundir imports this module

    write_atomic(Path(run_dir) / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")


# --------------------------------------------------------------------------------------------------------------
# wandb

# Seconds wandb may spend reaching its server before the run goes offline instead (its default waits 90).
WANDB_INIT_TIMEOUT = 8


class Mirror(Protocol):
    """Where records go after metrics.jsonl."""

    def log(self, record: dict[str, Any]) -> None: ...

    def finish(self, summary: dict[str, Any] | None = None) -> None: ...


class NullMirror:
    """The mirror when wandb is off: takes every record and does nothing."""

    offline_dir = None

    def log(self, record: dict[str, Any]) -> None:
        pass

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        pass


def wandb_mode(setting: str) -> str:
    """The wandb mode of `logging.wandb`.

    auto: the WANDB_MODE environment variable when set (as wandb users expect), else online when credentials
    exist (WANDB_API_KEY or a netrc entry for the server), else offline. Any other setting is used as is.
    """
    if setting != "auto":
        return setting
    if os.environ.get("WANDB_MODE") in ("online", "offline", "disabled"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].rstrip("/")
        if netrc.netrc().authenticators(host):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


def start_wandb(setting: str, *, project: str, name: str, run_dir: Path, config: dict, run_id: str) -> Mirror:
    """A wandb mirror for the run, or a NullMirror when wandb is disabled or cannot start at all.

    An online run whose server does not answer within WANDB_INIT_TIMEOUT seconds goes offline, with one warning
    (`wandb sync` uploads it later); any other wandb failure leaves the run with metrics.jsonl only.
    """
    mode = wandb_mode(setting)
    if mode == "disabled":
        return NullMirror()
    init = dict(project=project, name=name, id=run_id, run_dir=run_dir, config=config)
    try:
        return WandbMirror.init(mode=mode, **init)
    except Exception as error:  # noqa: BLE001 - any wandb problem must not stop training
        if mode != "online":
            warn(f"wandb could not start ({error}); training goes on, metrics stay in metrics.jsonl")
            return NullMirror()
        warn(f"wandb could not reach its server ({error}); logging offline instead")
    try:
        return WandbMirror.init(mode="offline", **init)
    except Exception as error:  # noqa: BLE001
        warn(f"wandb could not start ({error}); training goes on, metrics stay in metrics.jsonl")
        return NullMirror()


class WandbMirror:
    """Sends each record to wandb; the first failure is warned about once and wandb is dropped, training goes on."""

    def __init__(self, run: Any):
        self.run = run
        # An offline run's files, which `wandb sync` uploads later; None for an online run.
        self.offline_dir = Path(run.settings.sync_dir) if run.settings.mode == "offline" else None

    @classmethod
    def init(cls, *, mode: str, project: str, name: str, id: str, run_dir: Path, config: dict) -> WandbMirror:
        import wandb

        run = wandb.init(
            project=project,
            name=name,
            id=id,
            resume="allow",
            dir=str(run_dir),
            config=config,
            mode=mode,
            settings=wandb.Settings(console="off", silent=True, init_timeout=WANDB_INIT_TIMEOUT),
        )
        run.define_metric("train/step")
        run.define_metric("*", step_metric="train/step")
        return cls(run)

    def log(self, record: dict[str, Any]) -> None:
        if self.run is None:  # dropped after a failure
            return
        kind = record.get("type")
        payload = {
            (key if "/" in key or kind != "step" else f"train/{key}"): value
            for key, value in record.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and key != "step"
        }
        payload["train/step"] = record.get("step", 0)
        try:
            self.run.log(payload)
        except Exception as error:  # noqa: BLE001
            warn(f"wandb logging failed ({error}); continuing without wandb")
            self.run = None

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        if self.run is None:
            return
        try:
            from train.records.format import summary_eval

            for key, value in (summary_eval(summary, "final") or {}).items():
                if isinstance(value, int | float):
                    self.run.summary[f"final/{key}"] = value
            self.run.finish()
        except Exception as error:  # noqa: BLE001
            warn(f"wandb finish failed ({error})")
        self.run = None
