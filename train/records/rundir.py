"""The run dir: where one run keeps its config, records, checkpoints, samples and adapter.

runs/<name>[-<overrides>]-<timestamp>/     (e.g. quickstart-loss_type=dr_grpo-20261127-101500)
    config.yaml       the resolved config (after --set), what --resume runs again
    invocation.json   the config file and the --set overrides the run was started with, and the settings config.yaml
                      started with (a resume refuses an edited config.yaml: train/records/resume.py)
    metrics.jsonl     every step, epoch and eval record (train/records/format.py, written by train/records/tracking.py)
    summary.json      evals (each evaluation once), zero_shot, final, epochs, wall_seconds (train/records/format.py)
    samples/          one JSONL per evaluation (zero_shot.jsonl, epoch_1.jsonl, ..., final.jsonl)
    checkpoints/      the trainer's checkpoints (every epoch end, and every train.save_steps)
                      (unfinished-checkpoint-N: a save a kill cut short; unrecorded-checkpoint-N: one whose steps
                      metrics.jsonl lacks; both set aside by a resume, never resumed from)
    adapter/          the final LoRA adapter (or weights) and tokenizer
    .lock             held (an OS file lock, released when the process ends) while a run uses the dir

Which dir a run uses, with which config, is decided once (`RunDir.choose`) before anything is loaded; the dir is
created, or taken back for a resume, by `open` once the run's inputs have been checked.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from train.config import ExperimentConfig, load_config
from train.errors import UserError, check_no_broken_link, check_writable, note_output_dir
from train.records.files import write_atomic
from train.records.resume import check_checkpoint, check_settings_unchanged, plan_records, started_settings
from train.records.tracking import RESUME_FIX, read_records
from train.records.voice import say

# The run dir's files (the layout above); reports, sweeps and the export name them from here.
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
SAMPLES_DIR = "samples"
ADAPTER_DIR = "adapter"
INVOCATION_FILE = "invocation.json"
LOCK_FILE = ".lock"
WANDB_ID_FILE = "wandb_id"
CHECKPOINTS_DIR = "checkpoints"
# Longest run dir name (a sweep's run names too); the overrides part is cut (and told apart by a hash) to fit.
MAX_NAME = 120
MAX_OVERRIDES = 60
TIMESTAMP = "%Y%m%d-%H%M%S"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False


class RunDir:
    def __init__(self, path: Path, cfg: ExperimentConfig, resuming: bool = False, overrides: list[str] = ()):
        self.path = Path(path)
        self.cfg = cfg
        self.resuming = resuming
        self.overrides = list(overrides)
        self._lock: IO[str] | None = None
        self._identity: tuple[int, ...] | None = None  # (device, inode) of the dir and of its .lock, once taken
        self._holder = 0  # the process that took the lock

    @classmethod
    def choose(
        cls, cfg: ExperimentConfig, output_dir: Path | None, *, resume: bool, overrides: list[str] = ()
    ) -> RunDir:
        """The run dir this invocation uses, and the config it runs with.

        A new run: --output-dir, or <output.dir>/<name>[-<overrides>]-<timestamp> (`run_dir_name`); it must not
        hold files yet. A resume: the run in --output-dir, or the newest <output.dir>/<name>-* with a config.yaml,
        run with its own config.yaml (--set is refused there: the run's settings are those it started with).
        """
        if not resume:
            path = Path(output_dir) if output_dir else Path(cfg.output.dir) / run_dir_name(cfg.name, overrides)
            check_no_broken_link(path, "the run dir")  # now, not after the model is loaded
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise UserError(
                    f"the run dir {path} already exists and is not empty. Pass --resume to continue that run, or "
                    "choose another --output-dir (or leave it out for a new timestamped one)."
                )
            return cls(path, cfg, overrides=overrides)
        if overrides:
            raise UserError(
                f"--resume runs with the run's own config.yaml, so --set {' --set '.join(overrides)} would be "
                "ignored. Drop the --set options to resume, or start a new run with them (without --resume)."
            )
        path = Path(output_dir) if output_dir is not None else newest_dir(Path(cfg.output.dir), cfg.name, CONFIG_FILE)
        if path is not None and path.is_dir():
            check_layout(path)  # before anything is read (a config.yaml that is a directory: named, not "no run")
        if path is None or not (path / CONFIG_FILE).is_file():
            where = output_dir or f"{cfg.output.dir}/{cfg.name}-*"
            raise UserError(
                f"--resume found no run to continue at {where} (a run dir has a config.yaml). Pass the run's "
                "directory with --output-dir, or start a new run without --resume."
            )
        started = read_invocation(path)
        return cls(path, load_config(path / CONFIG_FILE), resuming=True, overrides=started.get("overrides", []))

    @property
    def finished(self) -> bool:
        return run_finished(self.path)

    def open(self, config_file: str | Path = "") -> Checkpoint | None:
        """Take the dir for this process (locked) and return the checkpoint to resume from, if any.

        A new run creates the dir and writes config.yaml and invocation.json (`config_file`, the overrides and the
        settings config.yaml starts with). A resume checks that config.yaml still holds those settings, that
        metrics.jsonl records every step up to the checkpoint once and that the checkpoint can continue the run
        exactly (train/records/resume.py), then cuts metrics.jsonl back to the checkpoint (records after it are
        redone) and drops the final evaluation. Each repair (a torn last line, a repeated line, a checkpoint the
        records do not reach) is named on stderr; what cannot be repaired exactly refuses the resume.
        """
        note_output_dir(self.path)
        if not self.resuming:
            self._create()
            self._take_lock()
            config_yaml = self.cfg.to_yaml()
            write_atomic(self.path / CONFIG_FILE, config_yaml)  # its presence marks a run a resume finds
            invocation = {
                "config": str(config_file),
                "overrides": self.overrides,
                "settings": started_settings(config_yaml),
            }
            write_atomic(self.path / INVOCATION_FILE, json.dumps(invocation, indent=2) + "\n")
            return None
        self._take_lock()
        check_settings_unchanged(self.path, self.invocation().get("settings"))
        self._set_aside_unfinished_saves()
        read = read_records(self.metrics_path, fix=RESUME_FIX)
        finished = [checkpoint for checkpoint, done in self._checkpoints() if done]
        plan = plan_records(read, self.metrics_path, [c.step for c in finished], self.cfg.logging.logging_steps)
        checkpoint = next((c for c in finished if c.step == plan.step), None)
        if checkpoint is not None:  # refused before anything is changed
            previous = self.last_checkpoint(before=checkpoint.step)
            check_checkpoint(checkpoint.path, previous.path if previous else None)
        if read.torn_line is not None:
            say(
                f"repaired {self.metrics_path}: its last line (line {read.torn_line}) was cut off mid-write when the "
                "run was stopped; it is dropped, and the step it belonged to is redone."
            )
        for repair in plan.repairs:
            say(repair)
        for newer in (c for c in finished if c.step > plan.step):  # never resumed from: its steps are not recorded
            aside = _set_aside(newer.path, "unrecorded")
            say(f"set aside {newer.path.name} as {aside.name}: its steps have no records.")
        step = checkpoint.step if checkpoint else 0
        kept = [row for row in plan.rows if row["step"] <= step and row.get("label") != "final"]
        if kept != read.rows or read.torn_line is not None:
            write_atomic(self.metrics_path, "".join(json.dumps(row) + "\n" for row in kept))
        return checkpoint

    def _create(self) -> None:
        check_writable(
            self.path,
            "the run dir",
            "Choose a writable --output-dir (or output.dir in the config): a read-only file system or the "
            "permissions forbid this one.",
            keep=True,
        )

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
        held, lock = os.stat(self.path), os.fstat(handle.fileno())
        self._identity = (held.st_dev, held.st_ino, lock.st_dev, lock.st_ino)
        self._holder = os.getpid()

    def check_held(self) -> None:
        """Stop the run when its dir was deleted or replaced (a new dir at the same path) while it ran: the lock
        lives in the deleted dir, so another run may be writing the new one, and this run's records must not go
        into that run's files. A forked copy of the run's process (a reward that forks) stops too, instead of writing
        every record twice. Called before every record (MetricsLog's guard) and evaluation."""
        if self._identity is None:
            return
        if os.getpid() != self._holder:
            raise UserError(
                f"process {os.getpid()} is a copy of the run's process {self._holder} made by fork (a reward or a "
                "library that forks and returns in both): it stops here rather than write every record of the run "
                f"into {self.path} a second time. The run itself goes on in process {self._holder}; a reward that "
                "needs a subprocess should start it with subprocess or multiprocessing's spawn."
            )
        try:
            now = os.stat(self.path)
        except OSError:
            there = "it is gone"
        else:
            if (now.st_dev, now.st_ino) != self._identity[:2]:
                there = "another directory is at that path now"
            else:
                try:
                    lock = os.stat(self.path / LOCK_FILE)
                    if (lock.st_dev, lock.st_ino) == self._identity[2:]:
                        return
                except OSError:
                    pass
                there = f"its {LOCK_FILE} was deleted or replaced, so another run can take the dir"
        raise UserError(
            f"the run dir {self.path} was deleted or replaced while this run (process {os.getpid()}) was writing to "
            f"it: {there}. The run stops here rather than write its records into another run's files. What it "
            "logged went with the deleted dir; start the run again in a dir of its own (--output-dir)."
        )

    def close(self) -> None:
        """Release the run dir (the process ending does the same)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    def _checkpoints(self) -> list[tuple[Checkpoint, bool]]:
        return _checkpoints_in(self.checkpoint_dir)

    def last_checkpoint(self, before: int | None = None) -> Checkpoint | None:
        """The newest checkpoint whose save finished, optionally before a step."""
        return _last_finished(self.checkpoint_dir, before)

    def _set_aside_unfinished_saves(self) -> None:
        """Move the saves a kill cut short (newer than the last finished one) out of the trainer's way.

        A kill while the trainer writes a checkpoint leaves checkpoint-N without a readable trainer_state.json; the
        resume continues from the checkpoint before it and saves checkpoint-N again. The cut-short dir is renamed,
        not deleted (unfinished-checkpoint-N, which neither the trainer's checkpoint rotation nor this class reads),
        and named on stderr.
        """
        checkpoints = self._checkpoints()
        finished = [checkpoint for checkpoint, done in checkpoints if done]
        last = finished[-1] if finished else None
        for checkpoint, done in checkpoints:
            if done or (last is not None and checkpoint.step < last.step):
                continue  # an older dir without a readable state is never resumed from, so it is left as it is
            aside = _set_aside(checkpoint.path, "unfinished")
            back_to = f"from {last.path.name}" if last else "from the start of training"
            say(
                f"set aside {checkpoint.path.name}: the run was stopped while saving it (its trainer_state.json is "
                f"missing or cut off), so the resume continues {back_to} and saves it again. The partial save is "
                f"kept at {aside}; delete it when you like."
            )

    def invocation(self) -> dict:
        """The config file and overrides the run was started with ({} for a run dir from before they were kept, or
        one whose invocation.json was damaged: a resume has refused that already, in `choose`)."""
        try:
            return read_invocation(self.path)
        except UserError:
            return {}

    def resume_command(self) -> str:
        """The command that resumes this run: its config (as started, or its own config.yaml) and its dir."""
        config = self.invocation().get("config") or str(self.path / CONFIG_FILE)
        # The script the user ran; under `python -m train.run` (a sweep's runs) the script people run.
        started_by_script = sys.argv and sys.argv[0].endswith(".py") and Path(sys.argv[0]).parent.name != "train"
        script = sys.argv[0] if started_by_script else "experiments/run_eval_test.py"
        return shlex.join(["uv", "run", "python", script, config, "--output-dir", str(self.path), "--resume"])

    def interrupted_message(self) -> str:
        """The one line a Ctrl-C prints: where the run dir is and the exact command that resumes it."""
        if not (self.path / CONFIG_FILE).is_file():
            return "interrupted before the run dir was created: nothing was written, nothing to resume."
        checkpoint = self.last_checkpoint()
        where = f"from {checkpoint.path.name}" if checkpoint else "from the start of training"
        return (
            f"interrupted: the run dir is {self.path} (metrics.jsonl holds every record so far); resume it ({where}) "
            f"with: {self.resume_command()}"
        )

    def wandb_id(self) -> str:
        """A stable wandb run id, so a resumed run continues the same wandb run."""
        path = self.path / WANDB_ID_FILE
        if not path.exists():
            write_atomic(path, secrets.token_hex(4))
        return path.read_text().strip()


def _checkpoints_in(checkpoint_dir: Path) -> list[tuple[Checkpoint, bool]]:
    """Every checkpoint-N dir, with whether its save finished: the trainer writes trainer_state.json last
    (transformers' Trainer._save_checkpoint), so a save that finished has one that parses."""
    found = []
    for path in Path(checkpoint_dir).glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            found.append((Checkpoint(path, int(match.group(1))), _parses(path / "trainer_state.json")))
    return sorted(found, key=lambda found: found[0].step)


def _last_finished(checkpoint_dir: Path, before: int | None = None) -> Checkpoint | None:
    finished = [c for c, done in _checkpoints_in(checkpoint_dir) if done and (before is None or c.step < before)]
    return finished[-1] if finished else None


def checkpoint_before(checkpoint: Path) -> Path | None:
    """The newest finished checkpoint before `checkpoint` (a checkpoint-N dir) in its checkpoints dir: where a
    resume goes back to when that one cannot be used."""
    match = re.fullmatch(r"checkpoint-(\d+)", Path(checkpoint).name)
    previous = _last_finished(Path(checkpoint).parent, int(match.group(1))) if match else None
    return previous.path if previous else None


def _set_aside(checkpoint: Path, why: str) -> Path:
    """Rename checkpoint-N to <why>-checkpoint-N (or .2, .3, ... when taken): kept, but out of the trainer's way
    (neither its checkpoint rotation nor `RunDir` reads it)."""
    aside = checkpoint.with_name(f"{why}-{checkpoint.name}")
    suffix = 1
    while aside.exists():
        suffix += 1
        aside = checkpoint.with_name(f"{why}-{checkpoint.name}.{suffix}")
    checkpoint.rename(aside)
    return aside


def run_finished(run_dir: Path) -> bool:
    """The run wrote its summary with a final evaluation: there is nothing left to resume (a sweep skips it)."""
    try:
        return bool(json.loads((Path(run_dir) / SUMMARY_FILE).read_text()).get("final"))
    except (OSError, ValueError, AttributeError):
        return False


def newest_dir(parent: Path, name: str, marker: str) -> Path | None:
    """The newest (last modified) `<parent>/<name>-*` holding the file `marker`: the run, or sweep, a --resume
    without a directory continues. None when there is none."""
    found = [path for path in Path(parent).glob(f"{name}-*") if (path / marker).is_file()]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def safe_name(text: str, limit: int = MAX_NAME) -> str:
    """`text` as a file name: characters other than letters, digits and `._,=+-` become `_` and the ends lose
    `._-`; past `limit` characters it is cut, and a hash of the whole text keeps two long names apart."""
    safe = re.sub(r"[^A-Za-z0-9._,=+-]+", "_", text).strip("._-")
    if len(safe) > limit:
        safe = f"{safe[: limit - 9]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return safe


def run_dir_name(name: str, overrides: list[str] | tuple[str, ...] = (), timestamp: str | None = None) -> str:
    """`<name>-<overrides, short>-<timestamp>`, a safe file name: quickstart-loss_type=dr_grpo-20261127-101500.

    An override is shown by the last part of its key (`train.loss_type=dr_grpo` -> `loss_type=dr_grpo`), or the
    last two where the last is not unique in the schema (`data.seed=1`), joined by commas (a list value's items by
    `+`), made a safe name of at most MAX_OVERRIDES characters (`safe_name`); invocation.json and summary.json have
    them in full. The timestamp is now's unless given.
    """
    timestamp = timestamp or time.strftime(TIMESTAMP)
    shown = safe_name(",".join(_short_override(override) for override in overrides), MAX_OVERRIDES)
    base = name[: MAX_NAME - len(timestamp) - len(shown) - 2]
    return "-".join(part for part in (base, shown, timestamp) if part)


def _short_override(override: str) -> str:
    from train.config import describe_schema

    key, _, value = override.partition("=")
    parts = key.strip().split(".")
    leaves = [schema_key.split(".")[-1] for schema_key, _, _ in describe_schema()]
    short = parts[-1] if leaves.count(parts[-1]) <= 1 else ".".join(parts[-2:])
    value = re.sub(r"[\[\]{}'\"\s]", "", value).replace(",", "+")  # eval.pass_k=[1, 5] -> pass_k=1+5
    return f"{short}={value}"


# invocation.json's keys and what each holds (RunDir.open writes them).
_INVOCATION_KEYS = {
    "config": (str, "a file name"),
    "overrides": (list, "a list of --set strings"),
    "settings": (dict, "the config's settings"),
}


def read_invocation(run_dir: Path) -> dict:
    """invocation.json as the run wrote it ({} when there is none: a run dir from before it was kept). One that was
    edited or damaged is a UserError naming what is wrong: a resume would otherwise run with other overrides, or skip
    the check of config.yaml against the settings the run started with, without a word."""
    path = Path(run_dir) / INVOCATION_FILE
    if not path.exists():
        return {}
    fix = (
        "Restore it from a copy of the run, or delete it: the resume then runs config.yaml as it is, without checking "
        "it against the settings the run started with."
    )
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}. {fix}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} holds a JSON {type(value).__name__}, not the object the run wrote. {fix}")
    for key, (kind, meaning) in _INVOCATION_KEYS.items():
        if key in value and not isinstance(value[key], kind):
            raise UserError(f'{path}: its "{key}" is {value[key]!r}, not {meaning} as the run wrote it. {fix}')
    if not all(isinstance(override, str) for override in value.get("overrides", [])):
        raise UserError(f'{path}: its "overrides" are {value["overrides"]!r}, not --set strings. {fix}')
    return value


# What a resume reads or writes in a run dir, and whether it is a file or a directory there.
_LAYOUT = {
    CONFIG_FILE: "file",
    INVOCATION_FILE: "file",
    METRICS_FILE: "file",
    SUMMARY_FILE: "file",
    LOCK_FILE: "file",
    WANDB_ID_FILE: "file",
    CHECKPOINTS_DIR: "directory",
    SAMPLES_DIR: "directory",
    ADAPTER_DIR: "directory",
}


def check_layout(run_dir: Path) -> None:
    """Refuse to resume a run dir where one of the run's files is a directory, or one of its directories a file
    (moved or made by hand): the resume would fail part-way, or write its samples nowhere, with a traceback."""
    for name, kind in _LAYOUT.items():
        path = Path(run_dir) / name
        if not path.exists() and not path.is_symlink():
            continue
        is_kind = path.is_dir() if kind == "directory" else path.is_file()
        if is_kind:
            continue
        if path.is_dir():
            found = "a directory"
        elif not path.exists():
            found = "a broken link"
        else:
            found = "a file" if kind == "directory" else "not a regular file"
        raise UserError(
            f"cannot resume {run_dir}: {path} is {found}, where the run keeps its {name} {kind}. It was made or moved "
            f"there by hand. Move it out of the run dir (or delete it: rm -r {shlex.quote(str(path))}) and --resume "
            "again; the run writes it anew."
        )
