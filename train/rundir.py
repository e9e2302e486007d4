"""The run dir: where one run keeps its config, records, checkpoints, samples and adapter.

runs/<name>-<timestamp>/
    config.yaml       the resolved config (after --set), what --resume runs again
    metrics.jsonl     every step, epoch and eval record (train/records.py, written by train/tracking.py)
    summary.json      zero_shot, epochs, final, wall_seconds
    samples/          one JSONL per evaluation (zero_shot.jsonl, epoch_1.jsonl, ..., final.jsonl)
    checkpoints/      the trainer's checkpoints (every epoch end, and every train.save_steps)
    adapter/          the final LoRA adapter (or weights) and tokenizer
    .lock             held (an OS file lock, released when the process ends) while a run uses the dir

Which dir a run uses, with which config, is decided once (`RunDir.choose`) before anything is loaded; the dir is
created, or taken back for a resume, by `open` once the run's inputs have been checked.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from train.config import ExperimentConfig, load_config
from train.errors import UserError, note_output_dir
from train.tracking import MetricsLog

CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def check_checkpoint(checkpoint: Checkpoint, previous: Checkpoint | None) -> None:
    """Refuse a checkpoint whose files cannot be read (a kill or a full disk mid-save), naming the file and the way
    back to the previous checkpoint, instead of failing deep inside the trainer with a traceback."""
    import torch
    from safetensors import safe_open

    def readable(path: Path) -> bool:
        try:
            if path.name.endswith(".json"):
                json.loads(path.read_text())
            elif path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as weights:
                    for name in weights.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                        weights.get_tensor(name)
            elif path.suffix in (".pt", ".pth"):
                torch.load(path, map_location="cpu", weights_only=False)
            return True
        except Exception:  # noqa: BLE001 - any failure to read is a corrupt file here
            return False

    files = [p for p in sorted(checkpoint.path.iterdir()) if p.suffix in (".json", ".safetensors", ".pt", ".pth")]
    broken = next((p for p in files if not readable(p)), None)
    if broken is None:
        return
    way_back = (
        f"Delete it (rm -r {checkpoint.path}) and --resume again to continue from {previous.path.name}"
        if previous
        else f"Delete it (rm -r {checkpoint.path}) and --resume again to restart training from the beginning"
    )
    raise UserError(
        f"the checkpoint {checkpoint.path.name} cannot be resumed from: {broken} is corrupt or truncated (the run was "
        f"probably killed, or the disk filled, while saving it). {way_back}; the records after that point are redone."
    )


class RunDir:
    def __init__(self, path: Path, cfg: ExperimentConfig, resuming: bool = False):
        self.path = Path(path)
        self.cfg = cfg
        self.resuming = resuming
        self._lock: IO[str] | None = None

    @classmethod
    def choose(
        cls, cfg: ExperimentConfig, output_dir: Path | None, *, resume: bool, overrides: list[str] = ()
    ) -> RunDir:
        """The run dir this invocation uses, and the config it runs with.

        A new run: --output-dir, or <output.dir>/<name>-<timestamp>; it must not hold files yet. A resume: the
        run in --output-dir, or the newest <output.dir>/<name>-* with a config.yaml, run with its own config.yaml
        (--set is refused there: the run's settings are those it started with).
        """
        if not resume:
            path = (
                Path(output_dir)
                if output_dir
                else Path(cfg.output.dir) / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
            )
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise UserError(
                    f"the run dir {path} already exists and is not empty. Pass --resume to continue that run, or "
                    "choose another --output-dir (or leave it out for a new timestamped one)."
                )
            return cls(path, cfg)
        if overrides:
            raise UserError(
                f"--resume runs with the run's own config.yaml, so --set {' --set '.join(overrides)} would be "
                "ignored. Drop the --set options to resume, or start a new run with them (without --resume)."
            )
        if output_dir is not None:
            candidates = [Path(output_dir)]
        else:
            candidates = sorted(Path(cfg.output.dir).glob(f"{cfg.name}-*"), key=lambda p: p.stat().st_mtime)
        runs = [path for path in candidates if (path / CONFIG_FILE).is_file()]
        if not runs:
            where = output_dir or f"{cfg.output.dir}/{cfg.name}-*"
            raise UserError(
                f"--resume found no run to continue at {where} (a run dir has a config.yaml). Pass the run's "
                "directory with --output-dir, or start a new run without --resume."
            )
        path = runs[-1]
        return cls(path, load_config(path / CONFIG_FILE), resuming=True)

    @property
    def finished(self) -> bool:
        """The run wrote its summary with a final evaluation: there is nothing left to resume."""
        try:
            return json.loads((self.path / "summary.json").read_text()).get("final") is not None
        except (OSError, ValueError, AttributeError):
            return False

    def open(self) -> Checkpoint | None:
        """Take the dir for this process (locked) and return the checkpoint to resume from, if any.

        A new run creates the dir and writes config.yaml. A resume cuts metrics.jsonl back to the checkpoint it
        resumes from (records after it are redone) and drops the final evaluation.
        """
        note_output_dir(self.path)
        if not self.resuming:
            self._create()
            self._take_lock()
            (self.path / CONFIG_FILE).write_text(self.cfg.to_yaml())
            return None
        self._take_lock()
        checkpoint = self.last_checkpoint()
        if checkpoint is not None:
            check_checkpoint(checkpoint, previous=self.last_checkpoint(before=checkpoint.step))
        MetricsLog(self.metrics_path).truncate_after(checkpoint.step if checkpoint else 0, drop_labels=("final",))
        return checkpoint

    def _create(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise UserError(
                f"cannot write the run dir {self.path}: {error.strerror or error}. Choose a writable --output-dir "
                "(or output.dir in the config)."
            ) from None

    def _take_lock(self) -> None:
        """An exclusive lock on the run dir for this process's life: a second run or resume of it stops here."""
        handle = (self.path / LOCK_FILE).open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(
                f"the run dir {self.path} is in use by process {holder}: two runs writing one dir would duplicate "
                "its records. Wait for that run to end (or stop it), then --resume; or use another --output-dir."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle  # kept open: the lock lives as long as this process

    def close(self) -> None:
        """Release the run dir (the process ending does the same)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def last_checkpoint(self, before: int | None = None) -> Checkpoint | None:
        """The newest complete checkpoint (the trainer writes trainer_state.json last), optionally before a step."""
        found = []
        for path in self.checkpoint_dir.glob("checkpoint-*"):
            match = re.fullmatch(r"checkpoint-(\d+)", path.name)
            if match and (path / "trainer_state.json").is_file():
                found.append(Checkpoint(path, int(match.group(1))))
        return max((c for c in found if before is None or c.step < before), key=lambda c: c.step, default=None)

    def wandb_id(self) -> str:
        """A stable wandb run id, so a resumed run continues the same wandb run."""
        path = self.path / "wandb_id"
        if not path.exists():
            path.write_text(secrets.token_hex(4))
        return path.read_text().strip()
