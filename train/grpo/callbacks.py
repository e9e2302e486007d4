"""Trainer callbacks: per-step records, the epoch summary with its evaluation, and evaluations on a schedule.

The callbacks only move figures: rewards are summed by the trainer's `RewardLedger`, records are shaped by
train/records/format.py, evaluation is `train.evaluation.evaluate.Evaluator`, and every figure is written through
`train.records.tracking.MetricsLog`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from transformers import TrainerCallback

from train.config import EvalConfig
from train.grpo.ledger import RewardLedger, epoch_fields, step_fields
from train.records.distributed import decided_by_main
from train.records.format import EPOCH, EVAL, STEP, TRAIN
from train.records.tracking import MetricsLog
from train.records.voice import warn

# Evaluate the current policy and record it: (label, step, epoch) -> metrics.
EvaluateFn = Callable[[str, int, float], dict[str, float]]


class MetricsCallback(TrainerCallback):
    """Writes one `step` record per TRL log: TRL's values, our reward sums, and seconds spent in each reward."""

    def __init__(self, *, log: MetricsLog, ledger: RewardLedger, reward_funcs: list[Callable]):
        self.log = log
        self.ledger = ledger
        self.reward_funcs = reward_funcs
        # Running totals the reward wrappers keep, reported per step as the change since the last record.
        self._counters = {
            "timing/reward": "seconds_total",
            "rewards/non_finite": "non_finite_count",
            "rewards/errors": "error_count",  # scores lost to a user reward that raised (rewards/registry.py)
            "rewards/printed_chars": "printed_chars",  # what a user reward printed, captured, not shown
        }
        self._seen = {
            (key, f.__name__): getattr(f, attr, 0) for key, attr in self._counters.items() for f in reward_funcs
        }

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "train_runtime" in logs:  # the closing summary the Trainer logs once after training
            # A resume of a run whose training had ended (killed in the final evaluation) trains nothing: the record
            # of that training is already there.
            if not any(row["step"] == state.global_step for row in self.log.records(TRAIN)):
                self.log.write({"type": TRAIN, "step": state.global_step, "epoch": state.epoch, **logs})
            return
        record = {"type": STEP, "step": state.global_step, "epoch": state.epoch, **logs}
        record.update(step_fields(self.ledger.take_step()))
        record.update(self._reward_counters())
        self.log.write(record)

    def _reward_counters(self) -> dict[str, float]:
        """Seconds spent in each reward this step (TRL sends its profiling only to wandb), and the inf/NaN scores
        each reward returned, the scores lost to its exceptions and the characters it printed this step (only the
        ones that happened are written)."""
        fields: dict[str, float] = {}
        for key, attr in self._counters.items():
            for func in self.reward_funcs:
                total = getattr(func, attr, None)
                if total is None:
                    continue
                change = total - self._seen[key, func.__name__]
                self._seen[key, func.__name__] = total
                if key == "timing/reward" or change:
                    fields[f"{key}/{func.__name__}"] = change
        return fields


class EpochCallback(TrainerCallback):
    """At each epoch end: the epoch summary record and console block, the epoch's evaluation, a checkpoint.

    The checkpoint is requested after the records are written, so a run killed in between redoes the epoch on
    --resume and the records it redoes are cut from metrics.jsonl first (no epoch record lost or duplicated). A
    checkpoint saved before the epoch end's records (train.save_steps at the epoch's last step, or max_steps) is
    resumed past that epoch end by transformers, so `on_train_begin` makes whichever of them the kill cut off.
    """

    def __init__(
        self,
        *,
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

    def on_train_begin(self, args, state, control, **kwargs):
        """A resumed run whose checkpoint sits at an epoch end or a step evaluation: the records there that the kill
        cut off (the epoch record, its evaluation, the step's evaluation) are made now, from the checkpoint's model,
        before training goes on (each is made once: `_record_epoch_end`, `_evaluate_once`)."""
        if state.global_step == 0:
            return control
        self._evaluate_step(state)
        at_epoch_end = state.epoch >= 1 and abs(state.epoch - round(state.epoch)) < 1e-9
        if at_epoch_end or state.global_step >= state.max_steps:
            self._record_epoch_end(state)
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        self._record_epoch_end(state)
        control.should_save = True
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self._evaluate_step(state)
        return control

    def _record_epoch_end(self, state) -> None:
        # 1-based, a last partial epoch (max_steps) counted as one: epoch 2.25 is the third, never a second "2".
        epoch = max(1, math.ceil(state.epoch - 1e-6))
        totals = self.ledger.take_epoch()
        recorded = any(row["epoch"] == epoch for row in self.log.records(EPOCH))
        if state.is_world_process_zero and not recorded:
            self.log.write({"type": EPOCH, "step": state.global_step, "epoch": epoch, **epoch_fields(totals)})
            self.console.print(
                f"[bold]=== Epoch {epoch}/{math.ceil(state.num_train_epochs)} Summary ===[/] "
                f"Accumulated Reward: {totals.reward_sum:.4g} | Mean Reward: {totals.mean_reward:.4g} | "
                f"Total Samples: {totals.num_samples}",
                highlight=False,
                soft_wrap=True,
            )
        if self.eval_cfg.when == "epoch":
            self._evaluate_once(f"epoch_{epoch}", state.global_step, float(epoch))

    def _evaluate_step(self, state) -> None:
        every = self.eval_cfg.every_steps
        if self.eval_cfg.when == "steps" and every and state.global_step % every == 0:
            self._evaluate_once(f"step_{state.global_step}", state.global_step, state.epoch)

    def _evaluate_once(self, label: str, step: int, epoch: float) -> None:
        # Every process asks the main one (it alone writes records), so all of them take the same branch.
        done = decided_by_main(lambda: any(row.get("label") == label for row in self.log.records(EVAL)))
        if not done:
            self.evaluate(label, step, epoch)


class ReportCallback(TrainerCallback):
    """Rebuilds the run's report (report.md, report.html, plots) after every epoch, from what the run has logged."""

    def __init__(self, *, run_dir: Path):
        self.run_dir = run_dir

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_report(self.run_dir)


def write_report(run_dir: Path) -> None:
    """The run's report, never raising: train.lab.reports' own guard covers building it, and this one its import
    (matplotlib missing or broken, say on a machine that has only what training needs): one warning, and the run
    goes on. experiments/report.py rebuilds it later."""
    try:
        from train.lab.reports import write_run_report  # matplotlib, only when a report is written
    except Exception as error:  # noqa: BLE001 - a report must never stop training
        warn(
            f"the run report for {run_dir} cannot be written here ({type(error).__name__}: {error}); training goes "
            f"on. Rebuild it where matplotlib imports: experiments/report.py {run_dir}"
        )
        return
    write_run_report(run_dir)
