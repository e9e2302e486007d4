"""Sweeps: one base experiment config run over a grid and/or a list of variants, one run after another, each in its
own run dir under one sweep dir, resumable, with the comparison table and report of all of them.

A sweep YAML (validated here, before anything runs; bad input is one paragraph and exit code 2):

    base: ../quickstart.yaml            # the experiment config; a relative path is relative to this file
    set:                                # overrides for every run (dotted keys, the --set syntax)
      train.num_epochs: 3
    grid:                               # every combination of the axes
      loss_type:                        #   a named axis: value label -> the overrides it stands for
        grpo: {train.loss_type: grpo}
        dr_grpo: {train.loss_type: dr_grpo, train.scale_rewards: none}
      train.max_completion_length: [16, 32, 64]    # a config key axis: its values
    variants:                           # and/or explicit runs: a list of override maps (or label -> overrides)
      - {train.beta: 0.0}
    repeats: 3                          # runs per variant, each with another seed (seed_key; seeds or base + i)
    seed_key: train.seed
    table: {columns: [...], labels: {loss_type: loss type}, best_by: final_pass@1}

Runs are the grid's combinations, then the explicit variants. A run's dir is named after its variant, the axis
labels and values joined, e.g. `loss_type=dr_grpo,max_completion_length=256` (`,seed=43` added with repeats),
with characters other than letters, digits and `._,=+-` replaced by `_`.

Each run is a subprocess of `python -m train.run BASE --set ... --output-dir SWEEP_DIR/RUN` (train/run.py, the
library entry of experiments/run_eval_test.py; to continue it, `BASE --output-dir SWEEP_DIR/RUN --resume`: the
run's own config.yaml holds its overrides), its output in SWEEP_DIR/logs/RUN.log. `sweep_state.json` records
each run's status (pending, running, done, failed), attempts, seconds and, for a failed run, its exit code and
error; after each run the run's report and the sweep's table and report are rewritten. Run again with --resume:
a finished run (its summary.json has "final") is skipped, a killed one continues from its last checkpoint
(train.run --resume), a failed one is tried again (unless --skip-failed), and the sweep goes on past a run that
fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from train.config import load_config, load_yaml
from train.errors import UserError, validation_problems
from train.lab.reports.sweep_report import LOGS_DIR, STATE_FILE
from train.lab.reports.tables import COLUMNS, format_config_value, known_column, short_key, unknown_column_message
from train.records.files import write_atomic
from train.records.format import summary_eval
from train.records.rundir import SUMMARY_FILE, newest_dir, run_dir_name, run_finished, safe_name

# The library's run entry (train/run.py), the same command line as experiments/run_eval_test.py.
RUNNER = [sys.executable, "-m", "train.run"]
SWEEP_FILE_COPY = "sweep.yaml"

# --------------------------------------------------------------------------------------------------------------
# The sweep YAML


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableSpec(Spec):
    columns: list[str] | None = Field(
        None, description="Figure columns, by id (train/lab/reports/tables.py); None = the study table."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Header text for an axis or variant key.")
    best_by: str | None = Field("final_pass@1", description="Column marking the best row ('-id': lowest is best).")

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: list[str] | None) -> list[str] | None:
        unknown = [column for column in value or [] if not known_column(column)]
        if unknown:
            raise ValueError(
                f"unknown table column(s) {', '.join(unknown)}; known: {', '.join(COLUMNS)}, pass@k, pass@1_by_eval, "
                "status, or final:<metric>, zero_shot:<metric>, eval@<label>:<metric>, last_epoch:<key>"
            )
        return value

    @field_validator("best_by")
    @classmethod
    def _known_best(cls, value: str | None) -> str | None:
        if value is not None and (problem := unknown_column_message("best_by", value.removeprefix("-"))):
            raise ValueError(problem)
        return value


Overrides = dict[str, Any]


class SweepSpec(Spec):
    base: str = Field(description="The experiment YAML every run starts from (relative to the sweep file).")
    name: str | None = Field(None, description="Sweep name (default: the sweep file's stem).")
    description: str | None = Field(None, description="Shown at the top of the sweep report.")
    set: Overrides = Field(default_factory=dict, description="Overrides for every run (dotted keys).")
    grid: dict[str, list[Any] | dict[str, Overrides]] = Field(
        default_factory=dict,
        description="Axes: a dotted config key and its values, or a label and {value label: overrides}.",
    )
    variants: list[Overrides] | dict[str, Overrides] = Field(
        default_factory=list, description="Explicit runs: override maps, or {name: overrides}."
    )
    repeats: int = Field(1, ge=1, description="Runs per variant, each with its own seed.")
    seed_key: str = Field("train.seed", description="The config key that the repeats vary.")
    seeds: list[int] | None = Field(None, description="The seeds of the repeats (default: the base seed + 0, 1, ...).")
    table: TableSpec = Field(default_factory=TableSpec)

    @field_validator("grid")
    @classmethod
    def _axes_have_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        for axis, options in value.items():
            if not options:
                raise ValueError(f"grid axis {axis!r} has no values")
        return value

    @model_validator(mode="after")
    def _seeds_match_repeats(self) -> SweepSpec:
        if self.seeds is not None:
            if "repeats" in self.model_fields_set and self.repeats != len(self.seeds):
                raise ValueError(f"repeats ({self.repeats}) and the number of seeds ({len(self.seeds)}) differ")
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError("seeds repeat a value")
            self.repeats = len(self.seeds)
        return self


@dataclass
class SweepRun:
    """One run of the sweep: its dir name, its variant (group) and the overrides it is run with."""

    name: str
    group: str
    labels: dict[str, str]  # table key column -> value, e.g. {"loss_type": "dr_grpo", "max_completion_length": "256"}
    overrides: Overrides
    seed: int | None = None

    def set_args(self) -> list[str]:
        return [format_override(key, value) for key, value in self.overrides.items()]


@dataclass
class Sweep:
    spec: SweepSpec
    path: Path  # the sweep YAML
    base: Path  # the experiment YAML
    runs: list[SweepRun] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name or self.path.stem


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep YAML and every run's config (load_config with its overrides); UserError if not."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file not found: {path}. Pass a sweep YAML, e.g. experiment_configs/studies/*.yaml.")
    try:
        raw = load_yaml(path.read_text(), path)
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {error}. Fix its syntax.") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} must be a mapping with at least `base:` (the experiment YAML) and a grid or variants.")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as error:
        raise UserError(
            f"{path} is not a valid sweep: {validation_problems(error)} A sweep has base (the experiment YAML), and "
            "optionally name, description, set, grid, variants, repeats, seed_key, seeds and table; see "
            "train/lab/sweep.py."
        ) from None
    base = (path.parent / spec.base).resolve()
    if not base.is_file():
        raise UserError(
            f"{path}: base config {spec.base} not found (looked for {base}; a relative base is relative to the "
            "sweep file). Point base at an experiment YAML."
        )
    sweep = Sweep(spec, path, base)
    _refuse_too_many_runs(sweep)
    sweep.runs = expand_runs(sweep)
    return sweep


# A sweep of more runs than this is refused before it is expanded: a grid of 10 axes of 10 values (10^10 runs) or
# repeats: 100000000 hung even --dry-run, which lists every run.
MAX_SWEEP_RUNS = 1000


def _refuse_too_many_runs(sweep: Sweep) -> None:
    spec = sweep.spec
    sizes = [len(options) for options in spec.grid.values()]
    variants = (math.prod(sizes) if sizes else 0) + len(spec.variants)
    runs = max(variants, 1) * spec.repeats
    if runs > MAX_SWEEP_RUNS:
        grid = " x ".join(map(str, sizes)) or "no"
        raise UserError(
            f"{sweep.path} asks for {runs:,} runs ({grid} grid value(s), {len(spec.variants)} variant(s), "
            f"{spec.repeats:,} repeat(s) each), more than {MAX_SWEEP_RUNS:,}: a sweep that size would not finish, "
            "and listing it (--dry-run) would not either. Split it into smaller sweeps, or fewer values per axis."
        )


def expand_runs(sweep: Sweep) -> list[SweepRun]:
    """The grid's combinations then the explicit variants, times the repeats; each validated as a config."""
    spec = sweep.spec
    variants = grid_variants(spec.grid) + explicit_variants(spec.variants)
    if not variants:
        variants = [("base", {}, {})]
    seen: dict[str, str] = {}
    runs: list[SweepRun] = []
    names: set[str] = set()
    for group, labels, overrides in variants:
        merged = {**spec.set, **overrides}
        fingerprint = json.dumps(merged, sort_keys=True, default=str)
        if fingerprint in seen:
            raise UserError(
                f"{sweep.path}: variants {seen[fingerprint]!r} and {group!r} are the same run (the same overrides). "
                "Remove one of them."
            )
        seen[fingerprint] = group
        cfg = _validated(sweep, group, merged)
        seeds = spec.seeds or []
        if not seeds and spec.repeats > 1:
            seeds = [_lookup(cfg, spec.seed_key) + i for i in range(spec.repeats)]
        for seed in seeds or [None]:
            run_overrides = dict(merged)
            name = group
            if seed is not None:
                run_overrides[spec.seed_key] = seed
                name = f"{group},seed={seed}" if spec.repeats > 1 else group
                _validated(sweep, name, run_overrides)
            dir_name = unique_dir_name(name, names)
            names.add(dir_name)
            runs.append(SweepRun(dir_name, sanitize(group), labels, run_overrides, seed))
    return runs


def grid_variants(grid: dict[str, list[Any] | dict[str, Overrides]]) -> list[tuple[str, dict[str, str], Overrides]]:
    key_axes = [axis for axis, options in grid.items() if isinstance(options, list)]
    axes = []
    for axis, options in grid.items():
        if isinstance(options, list):
            label = short_key(axis, key_axes)
            axes.append([(label, display_value(value), {axis: value}) for value in options])
        else:
            axes.append([(axis, str(value_label), overrides or {}) for value_label, overrides in options.items()])
    variants = []
    for combination in itertools.product(*axes) if axes else []:
        labels = {label: value for label, value, _ in combination}
        overrides: Overrides = {}
        for _, _, part in combination:
            overrides.update(part)
        variants.append((variant_name(labels), labels, overrides))
    return variants


def explicit_variants(variants: list[Overrides] | dict[str, Overrides]) -> list[tuple[str, dict[str, str], Overrides]]:
    if isinstance(variants, dict):
        return [(str(name), {"variant": str(name)}, overrides or {}) for name, overrides in variants.items()]
    result = []
    for overrides in variants:
        keys = list(overrides)
        labels = {short_key(key, keys): display_value(value) for key, value in overrides.items()}
        result.append((variant_name(labels) or "base", labels, dict(overrides)))
    return result


def variant_name(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in labels.items())


def display_value(value: Any) -> str:
    """A value as it appears in a run's name and the table: text as is, a list of names joined by `+`
    (hard_format_reward+countdown_reward), anything else as the comparison table writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return "+".join(value)
    return format_config_value(value)


def sanitize(name: str) -> str:
    """A run's directory name (train.records.rundir.safe_name), `run` where nothing of the name is left."""
    return safe_name(name) or "run"


def unique_dir_name(name: str, taken: set[str]) -> str:
    base = sanitize(name)
    candidate, count = base, 1
    while candidate in taken:
        count += 1
        candidate = f"{base}_{count}"
    return candidate


def format_override(key: str, value: Any) -> str:
    """`key=value` for run_eval_test.py --set: text as is, anything else as one line of YAML (flow style), which
    --set parses back to the same value (floats keep a dot: 7.0e-06, not the string 7e-06)."""
    if isinstance(value, str):
        return f"{key}={value}"
    text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000).strip()
    text = text.removesuffix("...").strip()
    return f"{key}={text}"


def _validated(sweep: Sweep, name: str, overrides: Overrides) -> Any:
    try:
        return load_config(sweep.base, [format_override(key, value) for key, value in overrides.items()])
    except UserError as error:
        raise UserError(f"{sweep.path}, run {name!r}: {error}") from None


def _lookup(cfg: Any, dotted: str) -> int:
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    if not isinstance(node, int):
        raise UserError(f"seed_key {dotted} is not an integer key (its value is {node!r}); use e.g. train.seed.")
    return node


# --------------------------------------------------------------------------------------------------------------
# Running


def sweep_dir_for(sweep: Sweep, sweep_dir: Path | None, resume: bool) -> Path:
    """The sweep dir: --sweep-dir, or (with --resume) the newest runs/sweeps/<name>-*, or a new timestamped one."""
    if sweep_dir is None:
        parent = Path("runs") / "sweeps"
        if resume:
            found = newest_dir(parent, sweep.name, STATE_FILE)
            if found is None:
                raise UserError(
                    f"--resume found no sweep {sweep.name} to continue in {parent}/ (a sweep dir has a {STATE_FILE}). "
                    "Pass it with --sweep-dir, or start the sweep without --resume."
                )
            return found
        return parent / run_dir_name(sweep.name)
    if (sweep_dir / STATE_FILE).is_file() and not resume:
        raise UserError(
            f"{sweep_dir} already holds a sweep ({STATE_FILE}). Pass --resume to continue it (finished runs are "
            "skipped), or choose another --sweep-dir."
        )
    return sweep_dir


def run_sweep(
    sweep: Sweep,
    sweep_dir: Path,
    *,
    retry_failed: bool = True,
    runner: list[str] | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every run of the sweep that has not finished; returns the state (sweep_state.json)."""
    from train.lab.reports.run_report import write_run_report
    from train.lab.reports.sweep_report import write_sweep_report

    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(sweep_dir / SWEEP_FILE_COPY, sweep.path.read_text())
    state = _initial_state(sweep, sweep_dir)
    _save_state(sweep_dir, state)
    command = runner or RUNNER
    total = len(sweep.runs)
    for number, (run, entry) in enumerate(zip(sweep.runs, state["runs"], strict=True), start=1):
        run_dir = sweep_dir / run.name
        prefix = f"[{number}/{total}] {run.name}"
        if run_finished(run_dir):
            entry["status"] = "done"
            echo(f"{prefix}: finished, skipped")
            continue
        if entry["status"] == "failed" and not retry_failed:
            echo(f"{prefix}: failed before, skipped (--skip-failed)")
            continue
        resume = (run_dir / "config.yaml").is_file()
        args = [*command, str(sweep.base), "--output-dir", str(run_dir)]
        if resume:  # the run continues with its own config.yaml, which holds the overrides (--set is refused)
            args.append("--resume")
        else:
            for override in run.set_args():
                args += ["--set", override]
        log = sweep_dir / LOGS_DIR / f"{run.name}.log"
        echo(f"{prefix}: {'resuming' if resume else 'running'} (log {log})")
        entry.update(status="running", attempts=entry["attempts"] + 1, error=None, returncode=None)
        _save_state(sweep_dir, state)
        started = time.time()
        returncode, error = _run_logged(args, log, entry["attempts"])
        entry["seconds"] = round(entry["seconds"] + time.time() - started, 1)
        if returncode == 0 and run_finished(run_dir):
            entry["status"] = "done"
            echo(f"{prefix}: done in {time.time() - started:.0f} s{_headline(run_dir)}")
        else:
            entry.update(status="failed", returncode=returncode, error=error or f"exit code {returncode}")
            first_line = entry["error"].splitlines()[0] if entry["error"] else ""
            echo(f"{prefix}: FAILED (exit code {returncode}): {first_line}")
        _save_state(sweep_dir, state)
        if run_dir.is_dir():
            write_run_report(run_dir)
        write_sweep_report(sweep_dir)
    state["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    _save_state(sweep_dir, state)
    write_sweep_report(sweep_dir)
    return state


def _initial_state(sweep: Sweep, sweep_dir: Path) -> dict[str, Any]:
    previous = {}
    path = sweep_dir / STATE_FILE
    if path.is_file():
        try:
            previous = {entry["name"]: entry for entry in json.loads(path.read_text()).get("runs", [])}
        except (json.JSONDecodeError, KeyError, TypeError):
            previous = {}
    runs = []
    for run in sweep.runs:
        old = previous.get(run.name, {})
        runs.append(
            {
                "name": run.name,
                "group": run.group,
                "labels": run.labels,
                "seed": run.seed,
                "overrides": run.set_args(),
                "status": old.get("status", "pending"),
                "attempts": old.get("attempts", 0),
                "seconds": old.get("seconds", 0.0),
                "returncode": old.get("returncode"),
                "error": old.get("error"),
            }
        )
    return {
        "name": sweep.name,
        "description": sweep.spec.description,
        "sweep_file": str(sweep.path),
        "base": str(sweep.base),
        "seed_key": sweep.spec.seed_key if sweep.spec.repeats > 1 else None,
        "repeats": sweep.spec.repeats,
        "table": sweep.spec.table.model_dump(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": runs,
    }


def _save_state(sweep_dir: Path, state: dict[str, Any]) -> None:
    write_atomic(sweep_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")  # a kill never leaves half a state file


def _run_logged(args: list[str], log: Path, attempt: int) -> tuple[int, str | None]:
    """Run one training subprocess, its output appended to `log`; (exit code, error text of a failure)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"\n=== attempt {attempt}, {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(args)}\n")
        handle.flush()
        start = handle.tell()
        process = subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent()
        )
        try:
            returncode = process.wait()
        except BaseException:  # Ctrl-C or SIGTERM of the sweep: stop the run too (it resumes next time)
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    if returncode == 0:
        return 0, None
    return returncode, _error_text(log, start)


def _error_text(log: Path, start: int) -> str:
    """The user-error paragraph of a failed run, else the last lines of its output (the traceback's end)."""
    with log.open("rb") as handle:
        handle.seek(start)
        text = handle.read().decode("utf-8", errors="replace")
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.startswith("error:"):
            return "\n".join(lines[index:])[-2000:]
    return "\n".join(lines[-15:])[-2000:]


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a run gets SIGTERM when the sweep process dies (even by SIGKILL), so no orphan run goes on writing
    into a run dir that a resumed sweep continues."""
    if not sys.platform.startswith("linux"):
        return None

    def set_parent_death_signal() -> None:
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return set_parent_death_signal


def _headline(run_dir: Path) -> str:
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
        before, after = summary_eval(summary, "zero_shot")["pass@1"], summary_eval(summary, "final")["pass@1"]
        return f": greedy pass@1 {before:.3f} -> {after:.3f}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # a damaged summary: no headline
        return ""
