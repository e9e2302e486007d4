"""One run in several processes (`accelerate launch`, torchrun): the main process owns the run dir.

Every process of a multi-process launch runs experiments/run_eval_test.py from the top. Only the main process
(rank 0) chooses, creates, locks and writes the run dir; the others take its decisions (which dir, which checkpoint,
or the user error that stops the run), write nothing, and join every collective step: training (TRL gathers the
rewards of all processes, so the main process's `RewardLedger` counts every completion once), the evaluation
barrier, and the DeepSpeed ZeRO-3 parameter gather around an evaluation and an adapter save.

    run = decided_by_main(lambda: RunDir.choose(...))     # one dir, one timestamp, for every process
    checkpoint = decided_by_main(run.open)                # created and locked by the main process only
    evaluate = MainProcessEvaluator(Evaluator(...))       # evaluates once, on the main process

In a single process (no WORLD_SIZE above 1) every helper here is a plain call: nothing is started, nothing waits.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Any, TypeVar

from train.errors import EXIT_USER_ERROR, UserError

T = TypeVar("T")

# The other processes wait at a barrier while the main process evaluates (zero-shot, each epoch, final): a long
# evaluation of a big model must not trip the collective timeout (torch's default is 10 to 30 minutes).
COLLECTIVE_TIMEOUT = timedelta(hours=2)


def num_processes() -> int:
    """Processes in this launch (torchrun and accelerate launch set WORLD_SIZE; 1 for a plain python run)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 of a launch, or the only process. Read from the launcher's environment, so it needs no set-up."""
    return int(os.environ.get("RANK", "0")) == 0


def _state() -> Any:
    """accelerate's process state, starting the process group once (the trainer reuses it later)."""
    import torch
    from accelerate import PartialState

    if not torch.cuda.is_available():
        # Without a GPU accelerate only starts a CPU (gloo) group when told to (its launcher says so with --cpu, which
        # then starts one process); transformers' TrainingArguments reads the same flag, so both agree.
        os.environ["ACCELERATE_USE_CPU"] = "true"
    return PartialState(cpu=not torch.cuda.is_available(), timeout=COLLECTIVE_TIMEOUT)


def wait_for_everyone() -> None:
    if num_processes() > 1:
        _state().wait_for_everyone()


def decided_by_main(decide: Callable[[], T]) -> T:
    """`decide()` run on the main process only; every other process gets its result (it must pickle).

    A UserError on the main process stops every process: the main one prints it (exit code 2), the others exit with
    the same code silently, so the paragraph is printed once.
    """
    if num_processes() == 1:
        return decide()
    from accelerate.utils import broadcast_object_list

    state = _state()
    outcome: list[Any] = [None, None]
    if state.is_main_process:
        try:
            outcome = [decide(), None]
        except UserError as error:
            outcome = [None, str(error)]
    broadcast_object_list(outcome, from_process=0)
    result, error = outcome
    if error is not None:
        stop_every_process(error)
    return result


def stop_every_process(message: str) -> None:
    """A user error every process meets: the main process raises it (printed once, exit code 2), the others exit
    with the same code silently."""
    if is_main_process():
        raise UserError(message)
    sys.exit(EXIT_USER_ERROR)


def check_backend_scales(backend: str) -> None:
    """Several processes train on the hf backend only: stop an unsloth run launched as several."""
    if backend == "unsloth" and num_processes() > 1:
        stop_every_process(
            f"this launch starts {num_processes()} processes, but the run uses the unsloth backend, which trains on "
            "one GPU here: its vLLM engine runs beside the model in the training process (fast_inference) and the "
            "model is loaded on the first GPU. Run it with plain python on one GPU, or set model.backend: hf (and "
            "model.load_in_4bit: false) to train on several GPUs with accelerate launch (docs/scale_out.md)."
        )


class MainProcessEvaluator:
    """The run's Evaluator, run once per evaluation on the main process while the other processes wait.

    Every process calls it at the same points (before training, at each epoch end, at the end); only the main
    process generates, scores and writes the eval record and samples, so metrics.jsonl holds one record per
    evaluation and samples/ one file. Once `trainer` has wrapped the model (training started), the evaluation runs
    inside TRL's `unwrap_model_for_generation`, which every process enters: under DeepSpeed ZeRO-3 it gathers the
    sharded weights (a collective), under DDP it only unwraps. The other processes get an empty dict back.
    """

    def __init__(self, evaluator: Any):
        self.evaluator = evaluator
        self.trainer: Any = None

    def __call__(self, label: str, step: int, epoch: float) -> dict[str, float]:
        return self._on_main(lambda: self.evaluator(label, step, epoch))

    def zero_shot(self) -> dict[str, float]:
        return self._on_main(self.evaluator.zero_shot)

    def final(self, step: int, epoch: float) -> dict[str, float]:
        return self._on_main(lambda: self.evaluator.final(step, epoch))

    def print_summary(self, summary: dict[str, Any]) -> None:
        if is_main_process():
            self.evaluator.print_summary(summary)

    def _on_main(self, evaluate: Callable[[], dict[str, float]]) -> dict[str, float]:
        if num_processes() == 1:
            return evaluate()
        with self._whole_model():
            metrics = evaluate() if is_main_process() else {}
            wait_for_everyone()
        return metrics

    def _whole_model(self) -> AbstractContextManager[Any]:
        # Before training (no trainer, or one that has not wrapped the model for its processes yet) every process
        # holds the whole model as it was loaded.
        if self.trainer is None or self.trainer.model_wrapped is self.trainer.model:
            return nullcontext()
        from trl.models.utils import unwrap_model_for_generation

        return unwrap_model_for_generation(self.trainer.model_wrapped, self.trainer.accelerator)
