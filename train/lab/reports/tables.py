"""The comparison table: one row per run (or per sweep variant, its repeats averaged), made from each run's
summary.json and metrics.jsonl. `experiments/compare.py` and the sweep report both build their table here.

Columns are chosen by id (`COLUMNS`; the sweep YAML's `table.columns`); `DEFAULT_COLUMNS` is the study table:

    zero_shot_pass@1, final_pass@1, improvement   greedy pass@1 before and after training, and final - zero-shot
    pass@k                                         the final pass@1_sampled, pass@5, ... that the runs have
    outcomes                                       final greedy correct / partial / failed counts
    mean_output_tokens, budget_utilization         final greedy completions: mean tokens, mean tokens / budget
    final_epoch_mean_reward                        the last epoch's mean training reward
    wall_seconds                                   summary.json's wall time (a resumed run: its last session)

and on demand: `pass@1_by_eval` (greedy pass@1 at every evaluation: zero-shot, step_10, ..., final),
`correct`, `partial`, `failed`, `truncated_frac`, `final_epoch_accumulated_reward`, `reward_total`, `steps`,
`status`, or any metric as `final:<key>`, `zero_shot:<key>`, `eval@<label>:<key>`, `last_epoch:<key>`.

Rows that group several runs (a sweep's repeats, one per seed) show the mean and the sample standard deviation,
"0.320 ± 0.040", and the CSV has a `<column> std` beside each value. The best row (highest `best_by`, or lowest
when it starts with "-") is marked, and `noise_note` names the rows whose final pass@1 is within sampling noise of
it (the binomial standard error on the prompts evaluated, train/diagnosis/noise.py). A run that has not finished
shows no final figures and its status.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from train.diagnosis.noise import compare_rates
from train.lab.reports.document import Table
from train.lab.reports.plots import pass_k_keys, pass_k_label
from train.lab.reports.rundata import RunData, flatten_config

DEFAULT_COLUMNS = [
    "zero_shot_pass@1",
    "final_pass@1",
    "improvement",
    "pass@k",
    "outcomes",
    "mean_output_tokens",
    "budget_utilization",
    "final_epoch_mean_reward",
    "wall_seconds",
]
# id -> (header, parts, format); a part is a metric path (see `part_value`)
COLUMNS: dict[str, tuple[str, list[str], str]] = {
    "zero_shot_pass@1": ("zero-shot pass@1", ["zero_shot:pass@1"], "rate"),
    "final_pass@1": ("final pass@1", ["final:pass@1"], "rate"),
    "improvement": ("improvement", ["improvement:pass@1"], "delta"),
    "outcomes": ("correct / partial / failed", ["final:correct", "final:partial", "final:failed"], "count"),
    "correct": ("correct", ["final:correct"], "count"),
    "partial": ("partial", ["final:partial"], "count"),
    "failed": ("failed", ["final:failed"], "count"),
    "mean_output_tokens": ("mean output tokens", ["final:mean_output_tokens"], "tokens"),
    "budget_utilization": ("budget utilization", ["final:budget_utilization"], "rate"),
    "truncated_frac": ("truncated", ["final:truncated_frac"], "rate"),
    "reward_total": ("final eval reward", ["final:reward/total"], "reward"),
    "final_epoch_mean_reward": ("final epoch mean reward", ["last_epoch:mean_reward"], "reward"),
    "final_epoch_accumulated_reward": ("final epoch accumulated reward", ["last_epoch:accumulated_reward"], "sum"),
    "wall_seconds": ("wall time (s)", ["wall_seconds"], "seconds"),
    "steps": ("steps", ["steps"], "count"),
}
EXPANDING = ("pass@k", "pass@1_by_eval")  # columns that become one column per k / per evaluation
PART_PREFIXES = ("final:", "zero_shot:", "eval@", "last_epoch:", "improvement:")
IGNORED_CONFIG_PREFIXES = ("logging.", "output.")  # where a run writes and logs is not a difference in the run


def known_column(column: str) -> bool:
    return column in COLUMNS or column in EXPANDING or column == "status" or column.startswith(PART_PREFIXES)


def unknown_column_message(what: str, column: str) -> str | None:
    """None for a known column id; else what is wrong with it, the closest id (did you mean) and the known ones."""
    if known_column(column):
        return None
    close = difflib.get_close_matches(column, [*COLUMNS, *EXPANDING, "status"], n=1)
    return (
        f"{what} {column!r} is not a table column id{f' (did you mean {close[0]}?)' if close else ''}. Known: "
        f"{', '.join([*COLUMNS, *EXPANDING, 'status'])}, or final:<metric>, zero_shot:<metric>, "
        "eval@<label>:<metric>, last_epoch:<key>; '-id' marks the lowest as best."
    )


@dataclass
class Column:
    header: str
    parts: list[str]
    fmt: str


@dataclass
class Stat:
    """A figure over the runs of a row: mean, sample standard deviation (n > 1), and how many runs had it."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: list[float | None]) -> Stat | None:
        present = [v for v in values if v is not None and math.isfinite(v)]
        if not present:
            return None
        std = statistics.stdev(present) if len(present) > 1 else None
        return cls(statistics.fmean(present), std, len(present))


@dataclass
class Row:
    """A table row: its key cells (variant or config values) and its runs (one, or a variant's repeats)."""

    keys: dict[str, str]
    runs: list[RunData]
    status: str = ""
    values: dict[str, Stat | None] = field(default_factory=dict)


@dataclass
class ComparisonTable:
    key_headers: list[str]
    columns: list[Column]
    rows: list[Row]
    best: int | None
    show_status: bool
    show_runs: bool

    def block(self) -> Table:
        """As a document table (Markdown and HTML): one cell per column, composite columns joined with ' / '."""
        headers = [*self.key_headers, *(["runs"] if self.show_runs else []), *[c.header for c in self.columns]]
        if self.show_status:
            headers.append("status")
        rows = []
        for index, row in enumerate(self.rows):
            cells = [row.keys.get(key, "") for key in self.key_headers]
            if index == self.best and cells:
                cells[0] = f"{cells[0]} (best)"
            if self.show_runs:
                finished = sum(run.finished for run in row.runs)
                planned = len(row.runs)
                cells.append(str(planned) if finished == planned else f"{finished} of {planned} finished")
            for column in self.columns:
                cells.append(" / ".join(format_stat(row.values.get(part), column.fmt) for part in column.parts))
            if self.show_status:
                cells.append(row.status)
            rows.append(cells)
        highlight = {self.best} if self.best is not None else set()
        return Table(headers, rows, highlight=highlight, align_right_from=len(self.key_headers))

    def markdown(self) -> str:
        from train.lab.reports.document import markdown_table

        return markdown_table(self.block()) + "\n"

    def noise_note(self) -> str:
        """Which rows' final greedy pass@1 is within sampling noise of the best row's (train/diagnosis/noise.py:
        the binomial standard error of a difference of two pass rates, 95%, on the prompts each row evaluated: a
        row of repeats counts every run's prompts), and how many prompts would resolve each; "" when none is.
        A sweep's or a compare's ranking between such rows is not a finding."""
        if self.best is None:
            return ""
        best = self.rows[self.best]
        best_rate, best_prompts = self._final_pass1(best)
        if best_rate is None:
            return ""
        close = []
        for index, row in enumerate(self.rows):
            rate, prompts = self._final_pass1(row)
            if index == self.best or rate is None:
                continue
            difference = compare_rates(best_rate, best_prompts, rate, prompts)
            if difference.beyond_noise:
                continue
            name = next(iter(row.keys.values()), str(index))
            needed = difference.prompts_to_resolve
            resolve = f"; about {needed:,} prompts each would resolve it" if needed else ", the same"
            close.append(f"{name} ({rate:.3f} on {prompts:,} prompts{resolve})")
        if not close:
            return ""
        best_name = next(iter(best.keys.values()), "the best row")
        return (
            f"Within sampling noise of {best_name}'s final pass@1 {best_rate:.3f} ({best_prompts:,} prompts; 95%, "
            f"binomial standard error): {'; '.join(close)}."
        )

    @staticmethod
    def _final_pass1(row: Row) -> tuple[float | None, int]:
        stat = Stat.of([part_value(run, "final:pass@1") for run in row.runs])
        prompts = sum(int(part_value(run, "final:num_prompts") or 0) for run in row.runs)
        return (stat.mean if stat is not None else None), max(prompts, 1)

    def csv(self) -> str:
        """One column per figure (composite columns split), full precision, `<header> std` beside each when a row
        averages repeats; plus runs, status and best."""
        with_std = any(len(row.runs) > 1 for row in self.rows)
        headers = [*self.key_headers, "runs"]
        for column in self.columns:
            for part in column.parts:
                header = _part_header(column, part)
                headers += [header, f"{header} std"] if with_std else [header]
        headers += ["status", "best"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        for index, row in enumerate(self.rows):
            cells: list[Any] = [row.keys.get(key, "") for key in self.key_headers]
            cells.append(len(row.runs))
            for column in self.columns:
                for part in column.parts:
                    stat = row.values.get(part)
                    cells.append("" if stat is None else _number(stat.mean))
                    if with_std:
                        cells.append("" if stat is None or stat.std is None else _number(stat.std))
            cells += [row.status, "true" if index == self.best else "false"]
            writer.writerow(cells)
        return buffer.getvalue()


def comparison_table(
    rows: list[Row],
    key_headers: list[str],
    columns: list[str] | None = None,
    best_by: str | None = "final_pass@1",
) -> ComparisonTable:
    """Fill each row's figures for the chosen columns and mark the best row."""
    runs = [run for row in rows for run in row.runs]
    chosen = list(columns or DEFAULT_COLUMNS)
    resolved = resolve_columns([c for c in chosen if c != "status"], runs)
    for row in rows:
        for column in resolved:
            for part in column.parts:
                row.values[part] = Stat.of([part_value(run, part) for run in row.runs])
        if not row.status:
            row.status = _status(row.runs)
    show_status = "status" in chosen or any(row.status != "finished" for row in rows)
    return ComparisonTable(
        key_headers=key_headers,
        columns=resolved,
        rows=rows,
        best=_best(rows, best_by),
        show_status=show_status,
        show_runs=any(len(row.runs) > 1 for row in rows),
    )


def compare_runs(runs: list[RunData], columns: list[str] | None = None, best_by: str | None = "final_pass@1"):
    """The table of `experiments/compare.py`: one row per run, keyed by its name and the config keys that differ."""
    keys = config_differences(runs)
    headers = ["run", *[short_key(key, keys) for key in keys]]
    rows = []
    for run in runs:
        flat = flatten_config(run.config)
        cells = {"run": run.name}
        cells.update({short_key(key, keys): format_config_value(flat.get(key, "-")) for key in keys})
        rows.append(Row(keys=cells, runs=[run]))
    return comparison_table(rows, headers, columns, best_by)


def resolve_columns(columns: list[str], runs: list[RunData]) -> list[Column]:
    resolved: list[Column] = []
    for column in columns:
        if column == "pass@k":
            finals = {}
            for run in runs:
                finals.update(run.final or {})
            for key in pass_k_keys(finals):
                if key != "pass@1":
                    resolved.append(Column(f"final {pass_k_label(key)}", [f"final:{key}"], "rate"))
        elif column == "pass@1_by_eval":
            for label in eval_labels(runs):
                resolved.append(Column(f"pass@1 {label.replace('_', ' ')}", [f"eval@{label}:pass@1"], "rate"))
        elif column in COLUMNS:
            header, parts, fmt = COLUMNS[column]
            resolved.append(Column(header, parts, fmt))
        else:
            resolved.append(Column(column, [column], "value"))
    return resolved


def eval_labels(runs: list[RunData]) -> list[str]:
    """Every evaluation label of the runs, by step (zero_shot first, final last)."""
    steps: dict[str, float] = {}
    for run in runs:
        for row in run.evals:
            step = -1.0 if row["label"] == "zero_shot" else math.inf if row["label"] == "final" else row["step"]
            steps[row["label"]] = min(steps.get(row["label"], math.inf), step)
    return sorted(steps, key=lambda label: (steps[label], label))


def part_value(run: RunData, part: str) -> float | None:
    """One figure of one run: final:<key>, zero_shot:<key>, eval@<label>:<key>, improvement:<key> (final minus
    zero-shot), last_epoch:<key> (the last epoch record's epoch/<key>), wall_seconds, steps."""
    if part == "wall_seconds":
        return _number_or_none(run.wall_seconds)
    if part == "steps":
        return float(run.steps[-1].get("step", 0)) if run.steps else None
    source, _, key = part.partition(":")
    if source == "final":
        return _number_or_none((run.final or {}).get(key))
    if source == "zero_shot":
        return _number_or_none((run.zero_shot or {}).get(key))
    if source.startswith("eval@"):
        return _number_or_none((run.eval(source.removeprefix("eval@")) or {}).get(key))
    if source == "improvement":
        after, before = part_value(run, f"final:{key}"), part_value(run, f"zero_shot:{key}")
        return None if after is None or before is None else after - before
    if source == "last_epoch":
        if run.epochs:
            return _number_or_none(run.epochs[-1].get(f"epoch/{key}"))
        epochs = (run.summary or {}).get("epochs") or []
        return _number_or_none(epochs[-1].get(key)) if epochs else None
    return None


# ----------------------------------------------------------------------------------------------------------------
# Config differences


def config_differences(runs: list[RunData]) -> list[str]:
    """The dotted config keys whose values differ between the runs (logging.* and output.* left out)."""
    flats = [flatten_config(run.config) for run in runs]
    keys: list[str] = []
    for flat in flats:
        keys += [key for key in flat if key not in keys]
    return [
        key
        for key in keys
        if not key.startswith(IGNORED_CONFIG_PREFIXES)
        and len({json.dumps(flat.get(key, "<unset>"), sort_keys=True, default=str) for flat in flats}) > 1
    ]


def short_key(key: str, keys: list[str]) -> str:
    """The last part of a dotted key (loss_type), or the whole key when two keys share their last part."""
    last = key.rsplit(".", 1)[-1]
    return last if sum(k.rsplit(".", 1)[-1] == last for k in keys) == 1 else key


def format_config_value(value: Any) -> str:
    """A config value in a cell: rewards as name(weight) lists, other lists and maps as compact JSON."""
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        return ", ".join(_reward_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _reward_text(spec: dict[str, Any]) -> str:
    text = str(spec["name"])
    extras = [f"{k}={v}" for k, v in (spec.get("params") or {}).items()]
    if spec.get("weight", 1.0) != 1.0:
        extras.insert(0, f"w={spec['weight']:g}")
    return f"{text}({', '.join(extras)})" if extras else text


# ----------------------------------------------------------------------------------------------------------------


def format_stat(stat: Stat | None, fmt: str) -> str:
    if stat is None:
        return "-"
    text = format_number(stat.mean, fmt)
    if stat.std is not None:
        text += f" ± {format_number(stat.std, fmt).lstrip('+')}"
    return text


def format_number(value: float, fmt: str) -> str:
    if fmt == "rate":
        return f"{value:.3f}"
    if fmt == "delta":
        return f"{value:+.3f}"
    if fmt == "count":
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    if fmt in ("tokens", "sum"):
        return f"{value:.1f}"
    if fmt == "seconds":
        return f"{value:.0f}"
    if fmt == "reward":
        return f"{value:.3f}"
    return f"{value:.4g}"


def _part_header(column: Column, part: str) -> str:
    if len(column.parts) == 1:
        return column.header
    return part.partition(":")[2] or part  # outcomes -> correct, partial, failed


def _status(runs: list[RunData]) -> str:
    statuses = [run.status for run in runs]
    return statuses[0] if len(set(statuses)) == 1 else ", ".join(sorted(set(statuses)))


def _best(rows: list[Row], best_by: str | None) -> int | None:
    if not best_by or len(rows) < 2:
        return None
    lower = best_by.startswith("-")
    column = best_by.lstrip("-")
    parts = COLUMNS[column][1] if column in COLUMNS else [column]
    part = parts[0]
    scored = []
    for index, row in enumerate(rows):
        stat = row.values.get(part) or Stat.of([part_value(run, part) for run in row.runs])
        if stat is not None:
            scored.append((stat.mean, index))
    if not scored:
        return None
    # Ties go to the first row.
    return min(scored, key=lambda item: (item[0] if lower else -item[0], item[1]))[1]


def _number(value: float) -> str:
    return f"{value:.6g}"


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
