"""How many torch threads a CPU run should use: GRPO step time with 1 thread vs every core, idle and under load.

A GRPO step on a small model is hundreds of tiny matrix products (token-by-token generation, then the policy and
reference forward and backward). With several OpenMP threads each product is split across cores and every thread
waits at a barrier for the others; when another process holds a core, the waits last a scheduler time slice
instead of microseconds, and the whole step slows down many times over. On 2 cores shared with other jobs the
quickstart went from 0.15 s to 4.5-9 s per step with torch's default (one thread per core).

Arms: the same GRPO step (train.grpo.trainer.GRPOLabTrainer built by `train.grpo.arguments.resolve`; 2 prompts x 8
generations, 32 new tokens, beta 0.04 so the reference model runs too, as in the quickstart) on random Qwen2 models of
the
built-in model's family in three sizes, each with torch.set_num_threads(1) and with one thread per core, on this
machine as it is ("idle": no load of ours) and with one busy-loop process per core beside it ("loaded").
Design choices:
- Each arm is a fresh trainer in this one process (torch's thread count is set before it trains): the import
  cost (half a minute on these machines) is paid once, and every arm runs the same code path the entry point runs.
- The arms of a round run back to back and the order alternates between rounds, so drift in the machine's other
  load hits the arms alike; a step is timed from one on_step_begin to the next, the first --warmup steps left out.
- An arm stops after --budget seconds (many threads on a loaded machine can take minutes a step); its timed steps
  are then fewer.
- Reported: per model and machine state, the median seconds per step with 1 thread and with one per core, their
  ratio, the 1-minute load average when the state began (other jobs share these machines), and the thread count
  train/models/threads.py picks for that model at that load.

    uv run python benchmarks/threads.py                     # 1 round, 3 sizes: about 30 min on 2 busy cores
    uv run python benchmarks/threads.py --steps 4 --sizes 96x3 --budget 60
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml
from datasets import Dataset
from rich.console import Console
from rich.table import Table
from transformers import PrinterCallback, ProgressCallback, TrainerCallback
from transformers.utils import logging as hf_logging

from rewards import get_reward
from train.config import ExperimentConfig
from train.grpo.arguments import resolve
from train.grpo.ledger import RewardLedger
from train.grpo.trainer import GRPOLabTrainer
from train.models.builtin import build_tokenizer, random_tiny_model
from train.models.threads import choose_num_threads, cpu_cores, parameter_count

TINY_CONFIG = Path(__file__).resolve().parent.parent / "experiment_configs" / "tiny.yaml"

BUSY_LOOP = "while True: pass"


class StepTimer(TrainerCallback):
    """Seconds of every optimizer step, from one on_step_begin to the next (the last step is not timed); stops the
    arm once it has run `budget` seconds (a many-threaded arm on a loaded machine can take minutes a step)."""

    def __init__(self, budget: float) -> None:
        self.seconds: list[float] = []
        self.budget = budget
        self._started: float | None = None
        self._first: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self._started is not None:
            self.seconds.append(now - self._started)
        self._started = now
        self._first = self._first or now

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self._first > self.budget:
            control.should_training_stop = True


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """`count` processes that spin a core each, for the length of the block."""
    load = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        time.sleep(1.0)  # let them get going
        yield
    finally:
        for process in load:
            process.kill()
        for process in load:
            process.wait()


def countdown_prompts(count: int, seed: int = 0) -> Dataset:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        numbers = [rng.randint(1, 15), rng.randint(1, 15)]
        rows.append(
            {"prompt": f"{numbers[0]} {numbers[1]} -> {sum(numbers)}\n", "target": sum(numbers), "numbers": numbers}
        )
    return Dataset.from_list(rows)


def experiment(steps: int) -> ExperimentConfig:
    """The quickstart's GRPO settings (2 prompts x 8 generations, 32 new tokens, beta 0.04) for `steps` steps."""
    raw = yaml.safe_load(TINY_CONFIG.read_text())
    raw["name"] = "threads"
    raw["model"]["max_seq_length"] = 128
    raw["train"].update(
        max_steps=steps,
        num_generations=8,
        per_device_train_batch_size=16,
        max_completion_length=32,
        learning_rate=2e-4,
        beta=0.04,
    )
    raw["logging"]["logging_steps"] = 1
    return ExperimentConfig.model_validate(raw)


def step_seconds(
    model_dir: Path, cfg: ExperimentConfig, dataset: Dataset, threads: int, work: Path, budget: float
) -> list[float]:
    torch.set_num_threads(threads)
    reward_funcs = [get_reward("hard_format_reward"), get_reward("mark_reward"), get_reward("countdown_reward")]
    weights = [1.0] * len(reward_funcs)
    timer = StepTimer(budget)
    trainer = GRPOLabTrainer(
        model=str(model_dir),
        processing_class=build_tokenizer(),
        reward_funcs=reward_funcs,
        args=resolve(cfg, "hf", output_dir=work, reward_weights=weights).grpo_config(),
        train_dataset=dataset,
        callbacks=[timer],
        ledger=RewardLedger([f.__name__ for f in reward_funcs], weights),
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="Rounds; each runs every arm once.")
    parser.add_argument("--steps", type=int, default=6, help="Optimizer steps per arm (the last is not timed).")
    parser.add_argument("--warmup", type=int, default=1, help="Steps at the start of each arm left out.")
    parser.add_argument(
        "--sizes", default="96x3,256x4,512x8", help="Models as WIDTHxLAYERS (96x3 is the quickstart's)."
    )
    parser.add_argument(
        "--budget", type=float, default=300.0, help="Seconds an arm may run before it stops (fewer steps timed)."
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("trl").setLevel(logging.ERROR)

    cores = cpu_cores()
    thread_arms = sorted({1, cores})
    console = Console(width=120)
    cfg = experiment(args.steps)
    dataset = countdown_prompts(2 * args.steps + 16)
    tokenizer = build_tokenizer()
    sizes = [tuple(int(x) for x in size.split("x")) for size in args.sizes.split(",")]
    times: dict[tuple, list[float]] = {}
    loadavg: dict[str, list[float]] = {"idle": [], "loaded": []}
    params: dict[tuple[int, int], int] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="threads-") as scratch:
        work = Path(scratch)
        for width, layers in sizes:
            model = random_tiny_model(tokenizer, hidden_size=width, num_layers=layers, num_heads=max(4, width // 64))
            params[(width, layers)] = parameter_count(model)
            model.save_pretrained(work / f"model-{width}x{layers}")
            tokenizer.save_pretrained(work / f"model-{width}x{layers}")
        for index in range(args.rounds):
            for load in ("idle", "loaded"):
                with busy_cores(cores) if load == "loaded" else contextlib.nullcontext():
                    loadavg[load].append(os.getloadavg()[0])
                    order = thread_arms if index % 2 == 0 else thread_arms[::-1]
                    for width, layers in sizes:
                        for threads in order:
                            seconds = step_seconds(
                                work / f"model-{width}x{layers}", cfg, dataset, threads, work / "out", args.budget
                            )
                            seconds = seconds[args.warmup :] or seconds[-1:]  # a budget cut: the last step
                            times.setdefault((width, layers, threads, load), []).extend(seconds)
                            console.print(
                                f"round {index + 1}/{args.rounds} {load:6} {width}x{layers} threads {threads}: "
                                f"median {statistics.median(seconds):.3f} s/step",
                                highlight=False,
                            )
    wall = time.perf_counter() - started

    table = Table(
        title=f"GRPO step time (s, median), 2 prompts x 8 generations, 32 new tokens, beta 0.04, on {cores} cores; "
        f"{args.rounds} round(s) x up to {args.steps - args.warmup - 1} timed steps per arm"
    )
    for column in ("model", "params", "machine", "load avg", "1 thread", f"{cores} threads", f"{cores} / 1", "rule"):
        table.add_column(column, justify="left" if column in ("model", "machine") else "right")
    for width, layers in sizes:
        for load in ("idle", "loaded"):
            one = statistics.median(times[(width, layers, 1, load)])
            many = statistics.median(times[(width, layers, cores, load)])
            load_average = statistics.median(loadavg[load])
            rule, _ = choose_num_threads(None, params[(width, layers)], on_gpu=False, load=load_average)
            table.add_row(
                f"{width}x{layers}",
                f"{params[(width, layers)] / 1e6:.2f}M",
                "+ 1 busy loop per core" if load == "loaded" else "as it is",
                f"{load_average:.1f}",
                f"{one:.3f}",
                f"{many:.3f}",
                f"{many / one:.1f}x",
                str(rule),
            )
    console.print(table)
    console.print(
        f"load avg: the 1-minute load average when the condition started (other jobs share this machine); rule: "
        f"the threads train/models/threads.py picks for that model at that load; wall {wall:.0f} s",
        highlight=False,
    )


if __name__ == "__main__":
    main()
