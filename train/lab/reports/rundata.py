"""What a report knows about a run: its records, read from the run dir's files and nothing else.

A run dir is read through its files only (metrics.jsonl, samples/, config.yaml, summary.json), never through the
trainer, so a report can be made at any time: after each epoch by the training loop, for a run still in progress
in another process, or for one that was killed. The last line of metrics.jsonl torn by a kill mid-write is skipped
(and said in the report); any other line that is not a record, and a summary.json or config.yaml that does not
parse, is a UserError naming the file and the line (train.records.tracking.read_records). Both are used when present.

    run = load_run("runs/quickstart-20260101-120000")
    run.zero_shot["pass@1"], run.last_eval["pass@1"], run.epochs[-1]["epoch/mean_reward"]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from train.errors import UserError
from train.evaluation.samples import read_samples, samples_path
from train.records.format import EPOCH, EVAL, STEP, config_value, eval_metrics, summary_eval, summary_problem
from train.records.rundir import CONFIG_FILE, METRICS_FILE, SAMPLES_DIR, SUMMARY_FILE
from train.records.tracking import REPORT_FIX, read_records


@dataclass
class RunData:
    """One run's records. Eval metrics are unprefixed (`pass@1`, not `eval/pass@1`)."""

    path: Path
    config: dict[str, Any] = field(default_factory=dict)  # config.yaml as written (the resolved config), or {}
    summary: dict[str, Any] | None = None  # summary.json, or None while the run has not finished a session
    steps: list[dict[str, Any]] = field(default_factory=list)  # step records, in order
    epochs: list[dict[str, Any]] = field(default_factory=list)  # epoch records
    evals: list[dict[str, Any]] = field(default_factory=list)  # eval records: label, step, epoch and metrics
    skipped_lines: int = 0  # 1 when the last line of metrics.jsonl was torn by a kill mid-write (skipped)
    # step records whose step is not above the one before, as (line, step, line before, step before): two runs
    # interleaved in one metrics.jsonl, or lines pasted in; the curves would draw them as loops
    out_of_order: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def finished(self) -> bool:
        """The run reached its final evaluation (summary.json has "final")."""
        return bool(self.summary and self.summary.get("final"))

    @property
    def status(self) -> str:
        if self.finished:
            return "finished"
        return "in progress or stopped" if self.steps or self.evals else "not started"

    def eval(self, label: str) -> dict[str, Any] | None:
        """The metrics of the eval with this label (the last one written, were there two)."""
        found = [row for row in self.evals if row["label"] == label]
        return found[-1]["metrics"] if found else None

    @property
    def zero_shot(self) -> dict[str, Any] | None:
        return summary_eval(self.summary, "zero_shot") or self.eval("zero_shot")

    @property
    def final(self) -> dict[str, Any] | None:
        """The final evaluation: summary.json's, else the `final` eval record; None until the run has one."""
        return summary_eval(self.summary, "final") or self.eval("final")

    @property
    def last_eval(self) -> dict[str, Any] | None:
        """The final evaluation, or while the run goes on, the latest evaluation after training started."""
        if self.final is not None:
            return self.final
        trained = [row for row in self.evals if row["label"] != "zero_shot"]
        return trained[-1]["metrics"] if trained else None

    @property
    def last_eval_label(self) -> str | None:
        if self.final is not None:
            return "final"
        trained = [row for row in self.evals if row["label"] != "zero_shot"]
        return trained[-1]["label"] if trained else None

    @property
    def reward_names(self) -> list[str]:
        """The rewards in the order TRL logged them (`rewards/<name>/mean`), else as the epoch records list them."""
        names: list[str] = []
        for row in self.steps[:1] + self.epochs[:1]:
            for key in row:
                for prefix in ("rewards/", "epoch/rewards/"):
                    if key.startswith(prefix) and key.endswith("/mean"):
                        name = key.removeprefix(prefix).removesuffix("/mean")
                        if name not in names:
                            names.append(name)
        return names

    @property
    def wall_seconds(self) -> float | None:
        return (self.summary or {}).get("wall_seconds")

    def config_value(self, dotted: str, default: Any = None) -> Any:
        return config_value(self.config, dotted, default)

    def greedy_samples(self, label: str) -> dict[int, dict[str, Any]]:
        """The greedy sample of each test prompt of one evaluation (samples/<label>.jsonl), by prompt index."""
        rows: dict[int, dict[str, Any]] = {}
        for row in read_samples(samples_path(self.path / SAMPLES_DIR, label)):
            if row.get("kind") == "greedy" and isinstance(row.get("index"), int):
                rows[row["index"]] = row
        return rows


def load_run(run_dir: str | Path) -> RunData:
    """Read a run dir; a run dir is a directory with a metrics.jsonl or a config.yaml."""
    path = Path(run_dir)
    if not (path / METRICS_FILE).is_file() and not (path / CONFIG_FILE).is_file():
        raise UserError(
            f"{path} is not a run dir: it has no {METRICS_FILE} and no {CONFIG_FILE}. Pass the directory that "
            "experiments/run_eval_test.py wrote (runs/<name>-<timestamp>, or its --output-dir)."
        )
    run = RunData(path=path, config=_read_yaml(path / CONFIG_FILE), summary=_read_json(path / SUMMARY_FILE))
    read = read_records(path / METRICS_FILE, fix=REPORT_FIX)
    previous: tuple[int, int] | None = None  # the line and step of the last step record
    for index, record in enumerate(read.rows):
        kind = record.get("type")
        epoch = record.get("epoch", 0)
        if kind in (STEP, EPOCH, EVAL) and (isinstance(epoch, bool) or not isinstance(epoch, int | float)):
            raise UserError(
                f"{path / METRICS_FILE}: the {kind} record of step {record['step']} has epoch {epoch!r}, not a number: "
                f"the file was edited or damaged after the run wrote it. {REPORT_FIX}."
            )
        if kind == STEP:
            line = read.line_numbers[index] if index < len(read.line_numbers) else index + 1
            if previous is not None and record["step"] <= previous[1]:
                run.out_of_order.append((line, record["step"], *previous))
            previous = (line, record["step"])
            run.steps.append(record)
        elif kind == EPOCH:
            run.epochs.append(record)
        elif kind == EVAL:
            metrics = eval_metrics(record)
            run.evals.append(
                {
                    "label": record["label"],
                    "step": record.get("step", 0),
                    "epoch": record.get("epoch"),
                    "same_as": record.get("same_as"),  # the final eval that reuses the last epoch's
                    "metrics": metrics,
                }
            )
    run.skipped_lines = int(read.torn_line is not None)
    return run


def out_of_order_note(run: RunData) -> str | None:
    """One line on step records out of order (see RunData.out_of_order), or None when they all go up."""
    if not run.out_of_order:
        return None
    line, step, line_before, step_before = run.out_of_order[0]
    more = f" ({len(run.out_of_order)} such records in all)" if len(run.out_of_order) > 1 else ""
    return (
        f"{run.path / METRICS_FILE} has step records out of order: line {line} records step {step} after step "
        f"{step_before} (line {line_before}){more}. Two runs may have written into this one file (a run dir deleted "
        "and recreated under a live run), or lines were pasted in; the curves draw the records in file order, so "
        "they loop back there."
    )


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """config.yaml as dotted keys (train.beta: 0.04); lists stay values (rewards, eval.pass_k)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_config(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _read_json(path: Path) -> dict[str, Any] | None:
    """summary.json, or None when the run has not written one. It is written atomically (train.records.tracking), so one
    that does not parse was damaged afterwards: a UserError naming the line, not a report without its figures."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}. {_SUMMARY_FIX}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}). {_SUMMARY_FIX}"
        ) from None
    if not isinstance(value, dict):
        raise UserError(
            f"{path} holds a JSON {type(value).__name__}, not the run's summary (an object). {_SUMMARY_FIX}"
        )
    problem = summary_problem(value)
    if problem is not None:
        raise UserError(f"{path} is not the summary the run wrote: {problem}. {_SUMMARY_FIX}")
    return value


_SUMMARY_FIX = (
    "Delete it: the report then reads the same figures from metrics.jsonl (the final evaluation is recorded there "
    "too), and the run rewrites it when it finishes."
)


def _read_yaml(path: Path) -> dict[str, Any]:
    """config.yaml, or {} when the run dir has none; one that does not parse is a UserError naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(
            f"cannot read {path}: {getattr(error, 'strerror', None) or error}. Restore the run's config.yaml."
        ) from None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(
            f"{path} is not valid YAML{where}: {getattr(error, 'problem', None) or error}. Restore the run's "
            "config.yaml (the config it ran with) or delete it: the report then shows no config keys."
        ) from None
    if value is None:  # an empty file: no config keys
        return {}
    if not isinstance(value, dict):  # it used to be read as {}, a table of "-" with no word
        raise UserError(
            f"{path} holds a YAML {type(value).__name__}, not the run's config (a mapping of sections such as "
            "model:, data:, train:). Restore the run's config.yaml (the config it ran with) or delete it: the "
            "report then shows no config keys."
        )
    return value
