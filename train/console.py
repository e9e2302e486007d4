"""What a run prints while it trains, and what it keeps off the screen.

- `ProgressLine` (a trainer callback) replaces transformers' ProgressCallback/PrinterCallback, which print every
  logged dict (TRL logs about 30 figures a step: they all go to metrics.jsonl and wandb instead). On a terminal it
  is one live line that updates in place (rich): step/total, epoch, elapsed and remaining time, the mean reward and
  each reward's mean, the KL, the completion length and completions per second. When stdout is not a terminal
  (CI, a log file) the same figures are one plain line every `every` steps.
- `quiet_third_party` filters, once, what libraries print that tells the user of a run nothing: progress bars of
  weight loading and saving and of data set maps, transformers' notes on file mtimes and on a tied lm_head missing
  from a checkpoint, torch's pin_memory warning on a CPU, and wandb's "URL not available in offline run" (TRL's
  model card asks for the URL at every checkpoint).
A Ctrl-C prints one line instead of a traceback: `train.rundir.RunDir.interrupted_message`.

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
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import PrinterCallback, ProgressCallback, TrainerCallback

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
