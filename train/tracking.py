"""The one metrics path: every figure goes into the run's metrics.jsonl first, then to wandb.

A record is one JSON line with a `type`:
- `step`: one optimizer step (TRL's logged values, plus our reward_sum / num_completions and reward timings);
- `epoch`: the epoch summary (epoch/accumulated_reward, epoch/mean_reward, epoch/num_samples, per-reward means);
- `eval`: one evaluation (label zero_shot, epoch_N, step_N or final, with eval/pass@1, eval/pass@5, ...);
- `train`: the trainer's closing figures (train_runtime, train_loss), once per training session.
Lines are appended and flushed as they happen, so a killed run keeps what it logged; `--resume` cuts the file back
to the checkpoint it resumes from (`MetricsLog.truncate_after`), so no epoch record is lost or duplicated.
summary.json and the console tables read the same records. wandb is a mirror: it can fail without stopping a run.
"""

from __future__ import annotations

import contextlib
import json
import math
import netrc
import os
import warnings
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"


class MetricsLog:
    """Append-only JSONL of the run's records, mirrored to a wandb run when one is attached."""

    def __init__(self, path: Path, mirror: WandbMirror | None = None):
        self.path = Path(path)
        self.mirror = mirror

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(_finite(record)) + "\n")
            handle.flush()  # enough for a killed process: the line is in the OS's hands
            if record.get("type") != "step":  # epoch and eval records also survive a machine crash
                os.fsync(handle.fileno())
        if self.mirror is not None:
            self.mirror.log(record)

    def records(self, type: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        rows = [json.loads(line) for line in lines[:-1]]
        # A last line torn by a kill mid-write was never a complete record: skip it (resume redoes its step).
        with contextlib.suppress(json.JSONDecodeError, IndexError):
            rows.append(json.loads(lines[-1]))
        return [row for row in rows if type is None or row.get("type") == type]

    def truncate_after(self, step: int, drop_labels: tuple[str, ...] = ()) -> int:
        """Drop the records written after optimizer step `step` (what a resumed run redoes), and evals with one of
        `drop_labels`; returns how many were dropped. The zero-shot eval is at step 0, so it is always kept."""
        rows = self.records()
        kept = [row for row in rows if row["step"] <= step and row.get("label") not in drop_labels]
        self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))
        return len(rows) - len(kept)


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN: write null, so every reader (jq, pandas, wandb) agrees on "no value".
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    path = Path(run_dir) / SUMMARY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a summary


def build_summary(log: MetricsLog, wall_seconds: float) -> dict[str, Any]:
    """summary.json from the records: zero_shot, epochs (with their evals), final, wall_seconds."""
    evals = {row["label"]: _strip(row, "eval/") for row in log.records("eval")}
    epochs = []
    for row in log.records("epoch"):
        epoch = int(row["epoch"])
        entry = {"epoch": epoch, **_strip(row, "epoch/")}
        entry["eval"] = evals.get(f"epoch_{epoch}")
        epochs.append(entry)
    return {
        "zero_shot": evals.get("zero_shot"),
        "epochs": epochs,
        "final": evals.get("final"),
        "evals": evals,
        "wall_seconds": round(wall_seconds, 2),
    }


def _strip(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    skip = {"type", "label", "epoch", "step"}
    return {k.removeprefix(prefix): v for k, v in row.items() if k not in skip}


# --------------------------------------------------------------------------------------------------------------
# wandb


def wandb_mode(setting: str) -> str:
    """auto = online when credentials exist (WANDB_API_KEY or a netrc entry), offline otherwise."""
    if setting != "auto":
        return setting
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].rstrip("/")
        if netrc.netrc().authenticators(host):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


class WandbMirror:
    """Sends each record to wandb; the first failure is warned about once and wandb is dropped, training goes on."""

    def __init__(self, run: Any):
        self.run = run

    @classmethod
    def start(cls, mode: str, project: str, name: str, run_dir: Path, config: dict, run_id: str) -> WandbMirror | None:
        mode = wandb_mode(mode)
        if mode == "disabled":
            return None
        try:
            import wandb

            run = wandb.init(
                project=project,
                name=name,
                id=run_id,
                resume="allow",
                dir=str(run_dir),
                config=config,
                mode=mode,
                settings=wandb.Settings(console="off", silent=True, init_timeout=60),
            )
            run.define_metric("train/step")
            run.define_metric("*", step_metric="train/step")
            return cls(run)
        except Exception as error:  # noqa: BLE001 - any wandb problem must not stop training
            warnings.warn(
                f"wandb could not start ({error}); training goes on, metrics stay in metrics.jsonl",
                stacklevel=2,
            )
            return None

    def log(self, record: dict[str, Any]) -> None:
        if self.run is None:
            return
        kind = record.get("type")
        prefix = {"step": "train/"}.get(kind, "")
        payload = {
            (k if "/" in k or kind != "step" else prefix + k): v
            for k, v in record.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("step",)
        }
        payload["train/step"] = record.get("step", 0)
        try:
            self.run.log(payload)
        except Exception as error:  # noqa: BLE001
            warnings.warn(f"wandb logging failed ({error}); continuing without wandb", stacklevel=2)
            self.run = None

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        if self.run is None:
            return
        try:
            if summary:
                for key, value in (summary.get("final") or {}).items():
                    if isinstance(value, int | float):
                        self.run.summary[f"final/{key}"] = value
            self.run.finish()
        except Exception as error:  # noqa: BLE001
            warnings.warn(f"wandb finish failed ({error})", stacklevel=2)
        self.run = None
