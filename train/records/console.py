"""What a run prints while it trains, and what it keeps off the screen.

- `ProgressLine` (a trainer callback) replaces transformers' ProgressCallback/PrinterCallback, which print every
  logged dict (TRL logs about 30 figures a step: they all go to metrics.jsonl and wandb instead). On a terminal it
  is one live line that updates in place (rich): step/total, epoch, elapsed and remaining time, the mean reward and
  each reward's mean, the KL, the completion length and completions per second. When stdout is not a terminal
  (CI, a log file) the same figures are one plain line every `every` steps.
- After each evaluation: `headline_table` (its figures beside zero-shot), `sample_lines` (two of its greedy
  completions) and `finding_lines` (at most three new findings of the diagnosis); at the end `run_summary_table`
  and `verdict_lines`; `eval_table` (every metric) for experiments/evaluate.py. The diagnosis' lines (and
  `print_diagnosis` for experiments/diagnose.py) are train/records/diagnosis_console.py's, re-exported here: it
  imports rich only, so that command starts in a second. Every console table of a run is here; the figures are
  train/evaluation/metrics.py's.
- `quiet_third_party` filters, once, what libraries print that tells the user of a run nothing: progress bars of
  weight loading and saving and of data set maps, transformers' notes on file mtimes and on a tied lm_head missing
  from a checkpoint, torch's pin_memory warning on a CPU, and wandb's "URL not available in offline run" (TRL's
  model card asks for the URL at every checkpoint).
A Ctrl-C prints one line instead of a traceback: `train.records.rundir.RunDir.interrupted_message`.

`--verbose` on the entry point keeps the libraries' own output instead of all of this.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from rewards.jsonl import JsonlError
from train.evaluation.metrics import COUNT_KEYS, OUTCOMES
from train.evaluation.samples import read_samples
from train.records.diagnosis_console import (  # noqa: F401 - re-exported: the run's console helpers in one place
    finding_lines,
    finding_width,
    print_diagnosis,
    verdict_lines,
)
from train.records.format import summary_eval

# Plain lines per run when stdout is not a terminal (one every total_steps / LINES_PER_RUN steps).
LINES_PER_RUN = 10


class ProgressLine(TrainerCallback):
    """The training progress: a live line on a terminal, a plain line every `every` steps elsewhere."""

    def __init__(self, console: Console, name: str, reward_names: list[str], every: int | None = None):
        self.console = console
        self.name = name
        self.reward_names = reward_names
        self.every = every
        self.live = console.is_terminal and not console.is_dumb_terminal
        self._progress: Progress | None = None
        self._task = None
        self._figures: dict[str, float] = {}
        self._started = 0.0
        self._first_step = 0
        self._printed_step = 0
        self._completions_per_step = 0.0

    # -- trainer events --------------------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self._started = time.monotonic()
        self._first_step = self._printed_step = state.global_step
        # New completions per optimizer step: one generation batch feeds num_iterations passes.
        self._completions_per_step = (
            args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        ) / max(getattr(args, "num_iterations", 1), 1)
        if self.every is None:
            self.every = max(1, math.ceil(state.max_steps / LINES_PER_RUN))
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("epoch {task.fields[epoch]}"),
                TimeElapsedColumn(),
                TextColumn("<"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[figures]}"),
                console=self.console,
                transient=False,
            )
            self._task = self._progress.add_task(
                self.name, total=state.max_steps, completed=state.global_step, epoch=self._epoch(state), figures=""
            )
            self._progress.start()

    def on_step_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.update(self._task, completed=state.global_step, epoch=self._epoch(state))

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return
        self._figures = {key: value for key, value in logs.items() if isinstance(value, int | float)}
        if self._progress is not None:
            self._progress.update(self._task, figures=self.figures_text(state.global_step))
        elif state.global_step - self._printed_step >= self.every or state.global_step >= state.max_steps:
            self._printed_step = state.global_step
            self.console.print(self.plain_line(state), highlight=False, soft_wrap=True)

    def on_train_end(self, args, state, control, **kwargs):
        self.stop()

    def stop(self) -> None:
        """End the live line (idempotent; the entry point also calls it when a run is interrupted)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -- what the line says ------------------------------------------------------------------------------------------

    def _epoch(self, state) -> str:
        return f"{state.epoch or 0:.2f}/{state.num_train_epochs:g}"

    def figures_text(self, step: int) -> str:
        """reward 1.51 (hard_format 0.50 mark 0.50 countdown 0.51)  kl 0.132  length 14.9  5.9 completions/s"""
        figures = self._figures
        parts = []
        if "reward" in figures:
            means = [
                f"{name.removesuffix('_reward')} {figures[key]:.2f}"
                for name in self.reward_names
                if (key := f"rewards/{name}/mean") in figures and figures[key] is not None
            ]
            parts.append(f"reward {figures['reward']:.2f}" + (f" ({' '.join(means)})" if means else ""))
        if "kl" in figures:
            parts.append(f"kl {figures['kl']:.3g}")
        if "completions/mean_length" in figures:
            parts.append(f"length {figures['completions/mean_length']:.1f}")
        elapsed = time.monotonic() - self._started
        done = step - self._first_step
        if done > 0 and elapsed > 0:
            parts.append(f"{done * self._completions_per_step / elapsed:.1f} samples/s")
        return "  ".join(parts)

    def plain_line(self, state) -> str:
        """step 60/600  epoch 0.60/6  0:00:18 elapsed  0:02:42 left  reward ...: the line for a log file."""
        elapsed = time.monotonic() - self._started
        done = state.global_step - self._first_step
        left = elapsed / done * (state.max_steps - state.global_step) if done > 0 else None
        when = f"{_clock(elapsed)} elapsed" + (f"  {_clock(left)} left" if left is not None else "")
        return (
            f"{self.name} step {state.global_step}/{state.max_steps}  epoch {self._epoch(state)}  {when}  "
            f"{self.figures_text(state.global_step)}"
        )


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def take_over_progress(trainer, line: ProgressLine) -> None:
    """The trainer prints through `line` only: transformers' tqdm bar and log-dict printers are removed."""
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(line)


# ----------------------------------------------------------------------------------------------------------------
# Third-party noise


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


# (logger, message fragment) pairs dropped: each says nothing a user of a run can act on.
NOISY_LOGS = [
    # Checkpoint rotation on filesystems whose mtimes are coarse; it sorts by step number instead, which is right.
    ("transformers.trainer_utils", "mtime may not be reliable"),
    # A resume of a model with tied input and output embeddings (the built-in model, Qwen): the checkpoint does not
    # store lm_head.weight twice, and the loaded embeddings are the output layer's too.
    ("transformers.trainer", "missing keys in the checkpoint model loaded: ['lm_head.weight']"),
]
# Warnings (message regex) dropped.
NOISY_WARNINGS = [
    # torch's DataLoader on a CPU-only machine (the trainer asks for pinned memory; there is no GPU to pin for).
    r".*'pin_memory' argument is set as true but no accelerator is found",
]
# wandb terminal warnings dropped.
NOISY_WANDB = [
    # TRL's model card asks wandb for the run URL at every checkpoint; an offline run has none (its path and the
    # sync command are printed once at the end instead).
    "URL not available in offline run",
]

_quieted: set[str] = set()


def quiet_third_party() -> None:
    """Filter the libraries' noise listed above, once per process (call after the backend is imported)."""
    if "libraries" not in _quieted:
        _quieted.add("libraries")
        import datasets
        from huggingface_hub.utils import disable_progress_bars
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights", "Writing model shards"
        datasets.disable_progress_bars()  # the warm start's data set maps
        disable_progress_bars()
        for name, fragment in NOISY_LOGS:
            logging.getLogger(name).addFilter(_DropMessages(fragment))
        for pattern in NOISY_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
    if "wandb" not in _quieted and "wandb" in sys.modules:
        _quieted.add("wandb")
        _drop_wandb_warnings(sys.modules["wandb"])


def _drop_wandb_warnings(wandb: Any) -> None:
    termwarn: Callable[..., None] = wandb.termwarn

    def filtered(string: str, *args: Any, **kwargs: Any) -> None:
        if not any(fragment in string for fragment in NOISY_WANDB):
            termwarn(string, *args, **kwargs)

    wandb.termwarn = filtered


# ----------------------------------------------------------------------------------------------------------------
# What a run prints after an evaluation: the headline table and a few samples; the run's summary

# A table without its frame: title, header, one rule, rows, caption.
COMPACT: dict[str, Any] = {
    "box": box.SIMPLE_HEAD,
    "show_edge": False,
    "title_justify": "left",
    "caption_justify": "left",
}


def headline_table(zero_shot: dict[str, float] | None, current: dict[str, float], title: str) -> Table:
    """The figures a run shows after each evaluation, beside zero-shot: every pass@k, the outcome shares in one
    row, the mean total reward and output length; the counts and time in the caption. Every metric of the
    evaluation (each reward's mean, budget use, ...) is in metrics.jsonl and in `eval_table`."""
    table = Table(title=title, **COMPACT)
    table.add_column("metric")
    table.add_column("zero-shot", justify="right")
    table.add_column("current", justify="right")
    table.add_column("delta", justify="right")
    before = zero_shot or {}
    for key in [key for key in current if key.startswith("pass@")]:
        _add_row(table, key, before.get(key), current[key])
    keys = [f"{outcome}_frac" for outcome in OUTCOMES]
    if all(key in current for key in keys):
        shares = "/".join(f"{current[key]:.2f}" for key in keys)
        base_shares = "/".join(f"{before[key]:.2f}" for key in keys) if all(k in before for k in keys) else "-"
        deltas = "/".join(_delta(key, current[key] - before[key], ".2f") for key in keys) if zero_shot else ""
        table.add_row("correct/partial/failed", base_shares, shares, deltas)
    for key in ("reward/total", "mean_output_tokens"):
        if key in current:
            _add_row(table, key, before.get(key), current[key])
    table.caption = (
        f"{current.get('num_prompts', 0):.0f} prompts, {current.get('samples_generated', 0):.0f} completions in "
        f"{current.get('eval_seconds', 0):.1f} s; {current.get('truncated_frac', 0):.0%} hit the token budget"
    )
    return table


def _add_row(table: Table, key: str, before: float | None, value: float) -> None:
    comparable = before is not None and not math.isnan(before) and not math.isnan(value)
    table.add_row(key, _format(key, before), _format(key, value), _delta(key, value - before) if comparable else "")


# Columns a sample record has that are not the gold answer (the gold is `answer`, or countdown's `target`).
GOLD_COLUMNS = ("answer", "target")


def sample_lines(samples_path: Path, width: int = 100) -> list[str]:
    """Two greedy completions of an evaluation: the first correct one and the first partial (else failed) one, or
    a partial and a failed one when none is correct; each as two lines: outcome, question, gold and reward scores,
    then the completion, elided to `width`."""
    try:
        records = read_samples(samples_path)
    except (OSError, JsonlError):  # two completions on the screen are never worth stopping a run for
        records = []
    greedy = [record for record in records if record.get("kind") == "greedy"]
    first = {outcome: next((r for r in greedy if r.get("outcome") == outcome), None) for outcome in OUTCOMES}
    chosen = [first["correct"], first["partial"] or first["failed"]]
    if first["correct"] is None:
        chosen = [first["partial"], first["failed"]]
    lines = []
    for record in filter(None, chosen):
        question = _one_line(str(record.get("question", record.get("prompt", ""))))
        gold = next((record[column] for column in GOLD_COLUMNS if column in record), None)
        scores = "  ".join(
            f"{name.removesuffix('_reward')} {score:.2f}" if score is not None else f"{name.removesuffix('_reward')} -"
            for name, score in record.get("rewards", {}).items()
        )
        head = f"  {record['outcome']:<8}{_elide(question, 60)}"
        head += f"  gold {gold}" if gold is not None else ""
        lines.append(f"{head}  reward {record.get('reward_total', 0):.2f} ({scores})")
        lines.append(f"  {'':<8}{_elide(_one_line(str(record.get('completion', ''))), max(width - 12, 20))}")
    return lines


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _elide(text: str, width: int) -> str:
    """`text` cut to `width` characters in the middle (the start shows the reasoning, the end the answer)."""
    if len(text) <= width:
        return text
    head = (width - 3) * 2 // 5
    return f"{text[:head]} … {text[-(width - 3 - head) :]}"


def eval_title(label: str, step: int) -> str:
    """How an evaluation is named on the console: zero-shot, epoch 2 (step 40), final."""
    if label == "zero_shot":
        return "zero-shot"
    return f"{label.replace('_', ' ')} (step {step})" if label.startswith("epoch") else label.replace("_", " ")


def run_summary_table(summary: dict[str, Any]) -> Table:
    """One table of the run, by epoch (its evaluations' tables were printed as they happened)."""
    table = Table(
        title="Run summary",
        caption=f"wall time {summary['wall_seconds']:.0f} s; every figure: metrics.jsonl, summary.json",
        **COMPACT,
    )
    for column in ("epoch", "accumulated reward", "mean reward", "samples", "pass@1"):
        table.add_column(column, justify="right")
    zero_shot = (summary_eval(summary, "zero_shot") or {}).get("pass@1")
    if zero_shot is not None:
        table.add_row("zero-shot", "", "", "", f"{zero_shot:.3f}")
    for epoch in summary["epochs"]:
        pass_1 = (summary_eval(summary, epoch.get("eval")) or {}).get("pass@1")
        table.add_row(
            str(epoch["epoch"]),
            f"{epoch['accumulated_reward']:.4g}",
            f"{epoch['mean_reward']:.4g}" if epoch["mean_reward"] is not None else "-",
            str(epoch["num_samples"]),
            f"{pass_1:.3f}" if pass_1 is not None else "-",
        )
    final = (summary_eval(summary, "final") or {}).get("pass@1")
    if final is not None:
        table.add_row("final", "", "", "", f"{final:.3f}")
    return table


# ----------------------------------------------------------------------------------------------------------------
# The comparison table (every metric)

# Metrics where higher is better (a positive delta is green); failed_frac is the one where lower is.
_HIGHER_IS_BETTER = ("pass@", "correct_frac", "reward/")


def eval_table(
    zero_shot: dict[str, float] | None, current: dict[str, float], title: str, *, baseline_label: str = "zero-shot"
) -> Table:
    """A rich table: metric, zero-shot, current, delta (current - zero-shot), for every metric of `current`.

    `baseline_label` names the comparison column when it is not the zero-shot evaluation (e.g. an earlier eval).
    """
    table = Table(title=title)
    table.add_column("metric")
    table.add_column(baseline_label, justify="right")
    table.add_column("current", justify="right")
    table.add_column("delta", justify="right")
    for key, value in current.items():
        before = None if zero_shot is None else zero_shot.get(key)
        if before is None or math.isnan(before) or math.isnan(value):
            table.add_row(key, _format(key, before), _format(key, value), "")
            continue
        delta = value - before
        table.add_row(key, _format(key, before), _format(key, value), _delta(key, delta))
    return table


def _format(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    if key in COUNT_KEYS:
        return f"{value:.0f}"
    if key == "eval_seconds" or key == "mean_output_tokens":
        return f"{value:.1f}"
    return f"{value:.3f}"


def _delta(key: str, delta: float, spec: str | None = None) -> str:
    text = format(delta, spec) if spec else _format(key, delta)
    if delta > 0:
        text = "+" + text
    good = key.startswith(_HIGHER_IS_BETTER) and delta > 0 or key == "failed_frac" and delta < 0
    bad = key.startswith(_HIGHER_IS_BETTER) and delta < 0 or key == "failed_frac" and delta > 0
    return f"[green]{text}[/]" if good else f"[red]{text}[/]" if bad else text
