"""How many CPU threads torch uses in a run: one for small models, one per physical core for the others.

The rule (`choose_num_threads`), measured by benchmarks/threads.py (figures in docs/threads.md):
- `train.num_threads` set (> 0): that many;
- a model under SMALL_MODEL_PARAMETERS parameters (the built-in model): 1. Its matrix products are too small to
  split: a second thread gains about a fifth on an idle machine, and when other processes hold the cores every
  OpenMP barrier waits a scheduler time slice, so a step slows down many times over (0.15 s -> 4.5-9 s on 2 busy
  cores);
- anything larger: one thread per physical core that is idle when the run starts (the cores this process may use,
  SMT siblings left out, minus the 1-minute load average; at least 1). On an idle machine that is torch's default;
  on a busy one it keeps the run off the cores other jobs hold, where the same barrier waits cost 5x and more.
On a GPU the thread count is left to torch unless `train.num_threads` is set: the CPU does little there.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from train.errors import UserError

if TYPE_CHECKING:
    from train.config import ExperimentConfig

# Models below this many parameters train on one thread (see the module docstring and docs/threads.md).
SMALL_MODEL_PARAMETERS = 5_000_000


def cpu_threads() -> int:
    """Logical CPUs this process may run on: its CPU affinity, SMT siblings included."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_cores() -> int:
    """Physical cores this process may run on: its CPU affinity, without SMT siblings where that is known."""
    available = cpu_threads()
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or available
    except ImportError:
        physical = available
    return max(1, min(available, physical))


def parameter_count(model: Any) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def choose_num_threads(
    setting: int | None, parameters: int | None, *, on_gpu: bool, load: float | None = None
) -> tuple[int | None, str]:
    """(threads, why): the thread count for a model of `parameters` (None: not known before loading, so large),
    or None to leave torch's default (on a GPU without a setting). `load`: the 1-minute load average (None: now)."""
    if setting:
        if setting > cpu_threads():  # torch's thread pool fails to start (or thrashes) with more threads than CPUs
            raise UserError(
                f"train.num_threads {setting} is more than the {cpu_threads()} CPU threads this process may run on "
                f"({cpu_cores()} physical cores). Set it to {cpu_cores()} or fewer, or leave it unset (0) for the rule "
                "in train/models/threads.py."
            )
        return setting, "train.num_threads"
    if on_gpu:
        return None, "torch's default on a GPU machine"
    if parameters is not None and parameters < SMALL_MODEL_PARAMETERS:
        return 1, f"one for a {parameters / 1e6:.2f}M-parameter model"
    cores, idle = cpu_cores(), idle_cores(load)
    return idle, "one per idle physical core" if idle == cores else f"{idle} of {cores} cores idle at the start"


def idle_cores(load: float | None = None) -> int:
    """Physical cores not busy with other processes: cores minus the 1-minute load average (now, unless given),
    at least 1."""
    cores = cpu_cores()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average (Windows)
            return cores
    return max(1, min(cores, cores - math.floor(load)))


def set_num_threads(cfg: ExperimentConfig) -> tuple[int, str]:
    """Apply the rule (see `choose_num_threads`) for the run's model to torch; returns the thread count in use and
    why. Call it after the backend is imported and before the model is built or loaded."""
    import torch

    parameters = None  # a hub model's size is known only once loaded: it counts as large
    if cfg.model.is_builtin_tiny:
        from train.models.builtin import builtin_parameter_count

        parameters = builtin_parameter_count(cfg)
    threads, why = choose_num_threads(cfg.train.num_threads, parameters, on_gpu=torch.cuda.is_available())
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads(), why
