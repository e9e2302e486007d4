"""Trainer callbacks: per-step records, the epoch summary with its evaluation, and evaluations on a schedule.

The callbacks only move figures: rewards are summed by the trainer's `RewardLedger`, evaluation is
`train.evaluation.evaluate`, and every figure is written through `train.tracking.MetricsLog`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from transformers import TrainerCallback

from train.config import EvalConfig
from train.evaluation import eval_table, evaluate
from train.generation import Generator
from train.tasks import Task
from train.tracking import MetricsLog
from train.trainer import RewardLedger, epoch_summary_fields, step_record_fields

if TYPE_CHECKING:
    from datasets import Dataset

# Evaluate the current policy and record it: (label, step, epoch) -> metrics.
EvaluateFn = Callable[[str, int, float], dict[str, float]]


class MetricsCallback(TrainerCallback):
    """Writes one `step` record per TRL log: TRL's values, our reward sums, and seconds spent in each reward."""

    def __init__(self, log: MetricsLog, ledger: RewardLedger, reward_funcs: list[Callable]):
        self.log = log
        self.ledger = ledger
        self.reward_funcs = reward_funcs
        self._seconds_seen = {f.__name__: getattr(f, "seconds_total", 0.0) for f in reward_funcs}

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "train_runtime" in logs:  # the closing summary the Trainer logs once after training
            self.log.write({"type": "train", "step": state.global_step, "epoch": state.epoch, **logs})
            return
        record = {"type": "step", "step": state.global_step, "epoch": state.epoch, **logs}
        record.update(step_record_fields(self.ledger.take_step()))
        record.update(self._reward_timings())
        self.log.write(record)

    def _reward_timings(self) -> dict[str, float]:
        # TRL sends its reward profiling only to wandb; our wrappers count seconds, so the step record has them too.
        timings = {}
        for func in self.reward_funcs:
            total = getattr(func, "seconds_total", None)
            if total is None:
                continue
            timings[f"timing/reward/{func.__name__}"] = total - self._seconds_seen[func.__name__]
            self._seconds_seen[func.__name__] = total
        return timings


class EpochCallback(TrainerCallback):
    """At each epoch end: the epoch summary record and console block, the epoch's evaluation, a checkpoint.

    The checkpoint is requested after the records are written, so a run killed in between redoes the epoch on
    --resume and the records it redoes are cut from metrics.jsonl first (no epoch record lost or duplicated).
    """

    def __init__(
        self,
        log: MetricsLog,
        ledger: RewardLedger,
        eval_cfg: EvalConfig,
        evaluate: EvaluateFn,
        console: Console,
    ):
        self.log = log
        self.ledger = ledger
        self.eval_cfg = eval_cfg
        self.evaluate = evaluate
        self.console = console

    def on_epoch_end(self, args, state, control, **kwargs):
        epoch = round(state.epoch)
        totals = self.ledger.take_epoch()
        if state.is_world_process_zero:
            self.log.write({"type": "epoch", "step": state.global_step, "epoch": epoch, **epoch_summary_fields(totals)})
            self.console.print(
                f"=== Epoch {epoch}/{round(state.num_train_epochs)} Summary ===\n"
                f"Accumulated Reward: {totals.reward_sum:.4g}\n"
                f"Mean Reward: {totals.mean_reward:.4g}\n"
                f"Total Samples: {totals.num_samples}",
                highlight=False,
            )
        if self.eval_cfg.when == "epoch":
            self.evaluate(f"epoch_{epoch}", state.global_step, float(epoch))
        control.should_save = True
        return control

    def on_step_end(self, args, state, control, **kwargs):
        every = self.eval_cfg.every_steps
        if self.eval_cfg.when == "steps" and every and state.global_step % every == 0:
            self.evaluate(f"step_{state.global_step}", state.global_step, state.epoch)
        return control


class Evaluator:
    """Evaluates the live policy under a label, records it as an `eval` record and prints it beside zero-shot."""

    def __init__(
        self,
        generator: Generator,
        task: Task,
        rows: Dataset,
        reward_funcs: list[Callable],
        reward_weights: list[float],
        eval_cfg: EvalConfig,
        max_new_tokens: int,
        log: MetricsLog,
        samples_dir: Path,
        console: Console,
    ):
        self.generator = generator
        self.task = task
        self.rows = rows
        self.reward_funcs = reward_funcs
        self.reward_weights = reward_weights
        self.eval_cfg = eval_cfg
        self.max_new_tokens = max_new_tokens
        self.log = log
        self.samples_dir = samples_dir
        self.console = console
        self.zero_shot_metrics: dict[str, float] | None = None

    def __call__(self, label: str, step: int, epoch: float) -> dict[str, float]:
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        metrics = evaluate(
            self.generator,
            self.task,
            self.rows,
            self.reward_funcs,
            self.reward_weights,
            self.eval_cfg,
            max_new_tokens=self.max_new_tokens,
            samples_path=self.samples_dir / f"{label}.jsonl",
            label=label,
        )
        self._record(label, step, epoch, metrics)
        return metrics

    def _record(self, label: str, step: int, epoch: float, metrics: dict[str, float], **extra: Any) -> None:
        self.log.write({"type": "eval", "label": label, "step": step, "epoch": epoch, **extra, **_prefixed(metrics)})
        title = "zero-shot" if label == "zero_shot" else label.replace("_", " ")
        self.console.print(eval_table(None if label == "zero_shot" else self.zero_shot_metrics, metrics, title))

    def zero_shot(self) -> dict[str, float]:
        """The baseline before any training; a resumed run keeps the one it already has."""
        done = [row for row in self.log.records("eval") if row["label"] == "zero_shot"]
        self.zero_shot_metrics = _unprefixed(done[-1]) if done else self("zero_shot", 0, 0.0)
        return self.zero_shot_metrics

    def final(self, step: int, epoch: float) -> dict[str, float]:
        """The final evaluation; when the last eval already evaluated this very model (same step), it is reused."""
        evals = self.log.records("eval")
        if evals and evals[-1]["step"] == step:
            metrics = _unprefixed(evals[-1])
            same = self.samples_dir / f"{evals[-1]['label']}.jsonl"
            if same.exists():  # so samples/final.jsonl is always there to score or read
                shutil.copyfile(same, self.samples_dir / "final.jsonl")
            self._record("final", step, epoch, metrics, same_as=evals[-1]["label"])
            return metrics
        return self("final", step, epoch)

    def print_summary(self, summary: dict[str, Any]) -> None:
        table = Table(title="Run summary")
        for column in ("epoch", "accumulated reward", "mean reward", "samples", "pass@1"):
            table.add_column(column, justify="right")
        for epoch in summary["epochs"]:
            pass_1 = (epoch.get("eval") or {}).get("pass@1")
            table.add_row(
                str(epoch["epoch"]),
                f"{epoch['accumulated_reward']:.4g}",
                f"{epoch['mean_reward']:.4g}" if epoch["mean_reward"] is not None else "-",
                str(epoch["num_samples"]),
                f"{pass_1:.3f}" if pass_1 is not None else "-",
            )
        self.console.print(table)
        final = {k: v for k, v in (summary.get("final") or {}).items() if isinstance(v, int | float)}
        if final:
            self.console.print(eval_table(summary.get("zero_shot"), final, "final"))
        self.console.print(f"wall time: {summary['wall_seconds']:.0f} s")


def _prefixed(metrics: dict[str, float]) -> dict[str, float]:
    return {f"eval/{key}": value for key, value in metrics.items()}


def _unprefixed(record: dict[str, Any]) -> dict[str, float]:
    return {key.removeprefix("eval/"): value for key, value in record.items() if key.startswith("eval/")}
