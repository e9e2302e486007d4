"""The run's adapter/: saved at the end of every epoch and at the end of training, each time replaced whole.

A run killed mid-training keeps its latest epoch's adapter (or, for a full fine-tune, its weights) and tokenizer,
ready for experiments/evaluate.py --adapter and experiments/export.py. The new save is written beside the old one
and renamed into place (`train.records.files.replace_dir`), so a reader never finds half an adapter.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from train.errors import writing
from train.records.distributed import is_main_process, num_processes, wait_for_everyone
from train.records.files import replace_dir

if TYPE_CHECKING:
    from train.models import Policy


def save_run_adapter(policy: Policy, directory: Path, trainer: Any = None) -> None:
    """Save the policy's adapter (or full weights) and tokenizer to `directory`, replacing what is there whole.

    Every process calls it. In a multi-process run the trainer's `save_model` does the writing: it gathers DeepSpeed
    ZeRO-3 shards (a collective) and writes on the main process only. A single process saves as
    `train.models.save_policy` always has (unsloth's save_lora on the unsloth backend).
    """
    directory = Path(directory)
    partial = directory.with_name(f".{directory.name}.partial")
    if is_main_process():
        shutil.rmtree(partial, ignore_errors=True)
    try:
        with writing(partial, f"the run's adapter (the last whole one stays in {directory})"):
            if num_processes() > 1 and trainer is not None:
                trainer.save_model(str(partial))
            elif is_main_process():
                from train.models import save_policy

                save_policy(policy, partial)
    except BaseException:
        if is_main_process():  # half an adapter is never kept, and its space is given back
            shutil.rmtree(partial, ignore_errors=True)
        raise
    if is_main_process():
        replace_dir(partial, directory)
    wait_for_everyone()


class EpochAdapterCallback(TrainerCallback):
    """Saves the run's adapter at every epoch end; `save_final` saves it unless that epoch end already did at this
    step (a run that stops at an epoch boundary, as most do). `trainer` is set once the trainer exists (it saves a
    multi-process run's weights)."""

    def __init__(self, policy: Policy, directory: Path, trainer: Any = None):
        self.policy = policy
        self.directory = Path(directory)
        self.trainer = trainer
        self.saved_step: int | None = None

    def on_epoch_end(self, args, state, control, **kwargs):
        self.save(state.global_step)
        return control

    def save_final(self, step: int) -> None:
        if self.saved_step != step:
            self.save(step)

    def save(self, step: int) -> None:
        save_run_adapter(self.policy, self.directory, self.trainer)
        self.saved_step = step
