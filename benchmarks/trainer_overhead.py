"""What our trainer costs per step over plain `trl.GRPOTrainer`: the subclass, and the subclass with our callbacks.

Three arms train the same tiny random Qwen2 (train.models.builtin, hidden 64, 2 layers, saved to a temp dir and
loaded from there by each trainer) on the same prompts with the same rewards (countdown_reward, mark_reward), the same
GRPOConfig (built by `train.grpo.arguments.resolve` from one ExperimentConfig: beta 0.04, loss grpo, 4 generations,
batch 8, 16 new tokens, logging every step, bf16 off, report_to none) and the same seed:
- plain: `trl.GRPOTrainer`;
- ours: `train.grpo.trainer.GRPOLabTrainer` with its RewardLedger (baseline "mean", so TRL's advantages are kept);
- ours+callbacks: the same plus MetricsCallback and EpochCallback writing metrics.jsonl (fsync'd every step).

Design choices:
- A step is timed from one `on_step_begin` to the next, so it holds data loading, generation, rewards, the update
  and the logging after `on_step_end` (where MetricsCallback writes). The first --warmup steps of a run and its last
  step (which holds the trainer's wrap-up) are not timed.
- This machine has 2 cores that other jobs share, so drift is the enemy. In every round the three trainers run in
  threads that pass one baton: only the holder runs. With --interleave step (the default) the baton passes at every
  step boundary (A B C A B C ...), so step i of every arm runs within a fraction of a second of the others; with
  --interleave run it passes when a run ends (A B C, then C B A in the next round). Each arm's RNG state is saved
  and restored at every hand-over, so every arm samples exactly the completions it would sample alone: the same
  work in every arm (checked: each round stops if an arm's per-step reward or completion length differs from plain's).
- Reported: the median step time of each arm over every round, its ratio to plain, and as the spread the median
  and range of the per-round ratios, plus the median of step-by-step paired ratios (arm step i / plain step i);
  and the time of ours+callbacks' metrics.jsonl write per step (train.records.tracking.MetricsLog fsyncs every record).

    uv run python benchmarks/trainer_overhead.py                       # 10 rounds x 60 steps, about 2 min on 2 cores
    uv run python benchmarks/trainer_overhead.py --rounds 4 --steps 30 --interleave run --threads 2
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml
from datasets import Dataset
from rich.console import Console
from rich.table import Table
from transformers import PrinterCallback, TrainerCallback
from transformers.utils import logging as hf_logging
from trl import GRPOTrainer

from rewards import get_reward
from train.config import ExperimentConfig
from train.grpo.arguments import resolve
from train.grpo.callbacks import EpochCallback, MetricsCallback
from train.grpo.ledger import RewardLedger
from train.grpo.trainer import GRPOLabTrainer
from train.models.builtin import build_tokenizer, random_tiny_model
from train.records.tracking import MetricsLog

TINY_CONFIG = Path(__file__).resolve().parent.parent / "experiment_configs" / "tiny.yaml"

ARMS = ("plain", "ours", "ours+callbacks")
TARGET_RATIO = 1.05
TURN_TIMEOUT = 600.0  # seconds a trainer waits for its turn before the benchmark gives up


class Baton:
    """Lets one trainer thread run at a time; the holder passes it to the next unfinished arm in `order`."""

    def __init__(self, order: list[str]):
        self.order = order
        self.holder = order[0]
        self.finished: set[str] = set()
        self.condition = threading.Condition()

    def wait(self, arm: str) -> None:
        with self.condition:
            if not self.condition.wait_for(lambda: self.holder == arm, timeout=TURN_TIMEOUT):
                raise TimeoutError(f"{arm} waited {TURN_TIMEOUT:.0f} s for its turn")

    def pass_on(self, arm: str, finished: bool = False) -> None:
        with self.condition:
            if finished:
                self.finished.add(arm)
            if self.holder != arm:
                return
            start = self.order.index(arm)
            for offset in range(1, len(self.order) + 1):
                candidate = self.order[(start + offset) % len(self.order)]
                if candidate not in self.finished:
                    self.holder = candidate
                    break
            self.condition.notify_all()


class StepTimer(TrainerCallback):
    """Times every optimizer step (one on_step_begin to the next) and hands the baton over between steps."""

    def __init__(self, arm: str, baton: Baton, per_step: bool):
        self.arm = arm
        self.baton = baton
        self.per_step = per_step
        self.seconds: list[float] = []
        self.work: list[tuple] = []  # (reward, mean completion length) per step: the same in every arm
        self.rng_state = capture_rng()
        self._started: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._take_turn()

    def on_step_begin(self, args, state, control, **kwargs):
        if self._started is not None:
            self.seconds.append(time.perf_counter() - self._started)
            if self.per_step:
                self.rng_state = capture_rng()
                self.baton.pass_on(self.arm)
                self._take_turn()
        self._started = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "reward" in logs:
            self.work.append((logs["reward"], logs["completions/mean_length"]))

    def _take_turn(self) -> None:
        self.baton.wait(self.arm)
        restore_rng(self.rng_state)


class TimedMetricsLog(MetricsLog):
    """metrics.jsonl written as the entry point writes it (append, flush, fsync), timing every write."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.seconds: list[float] = []

    def write(self, record: dict) -> None:
        start = time.perf_counter()
        super().write(record)
        self.seconds.append(time.perf_counter() - start)


def capture_rng() -> tuple:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()


def restore_rng(state: tuple) -> None:
    torch.set_rng_state(state[0])
    random.setstate(state[1])
    np.random.set_state(state[2])


def countdown_prompts(count: int, seed: int = 0) -> Dataset:
    """`count` two-number sums in the quickstart's compact style ("3 5 -> 8\\n"), with the gold columns."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        numbers = [rng.randint(1, 9), rng.randint(1, 9)]
        target = sum(numbers)
        rows.append({"prompt": f"{numbers[0]} {numbers[1]} -> {target}\n", "target": target, "numbers": numbers})
    return Dataset.from_list(rows)


def experiment(steps: int) -> ExperimentConfig:
    """experiment_configs/tiny.yaml with this benchmark's batch, budget and step count."""
    raw = yaml.safe_load(TINY_CONFIG.read_text())
    raw["name"] = "trainer_overhead"
    raw["model"]["max_seq_length"] = 128
    raw["train"].update(max_steps=steps, max_completion_length=16, learning_rate=1e-4, temperature=0.9, seed=42)
    raw["logging"]["logging_steps"] = 1
    return ExperimentConfig.model_validate(raw)


def rewards() -> list[Callable]:
    # Fresh instances per trainer: our reward wrappers count the seconds they spend.
    return [get_reward("countdown_reward"), get_reward("mark_reward")]


def build_trainer(arm: str, cfg: ExperimentConfig, model_dir: Path, tokenizer, dataset: Dataset, output_dir: Path):
    reward_funcs = rewards()
    weights = [1.0] * len(reward_funcs)
    args = resolve(cfg, "hf", output_dir=output_dir, reward_weights=weights).grpo_config()
    args.disable_tqdm = True
    common = dict(model=str(model_dir), processing_class=tokenizer, reward_funcs=reward_funcs, args=args)
    if arm == "plain":
        trainer = GRPOTrainer(**common, train_dataset=dataset)
    else:
        ledger = RewardLedger([f.__name__ for f in reward_funcs], weights)
        callbacks: list[TrainerCallback] = []
        if arm == "ours+callbacks":
            output_dir.mkdir(parents=True, exist_ok=True)
            log = TimedMetricsLog(output_dir / "metrics.jsonl")
            eval_cfg = cfg.eval.model_copy(update={"when": "end"})  # no evaluation inside the timed steps
            callbacks += [
                MetricsCallback(log=log, ledger=ledger, reward_funcs=reward_funcs),
                EpochCallback(
                    log=log, ledger=ledger, eval_cfg=eval_cfg, evaluate=lambda *_: {}, console=Console(quiet=True)
                ),
            ]
        trainer = GRPOLabTrainer(
            **common, train_dataset=dataset, callbacks=callbacks, baseline=cfg.train.baseline, ledger=ledger
        )
    trainer.remove_callback(PrinterCallback)  # disable_tqdm makes the Trainer print every log dict instead
    return trainer, (log if arm == "ours+callbacks" else None)


def run_round(order: list[str], cfg, model_dir, tokenizer, dataset, work: Path, per_step: bool, threads: int):
    """Train every arm for cfg.train.max_steps steps, one at a time by the baton.

    Returns each arm's step times and the seconds of each metrics.jsonl write of ours+callbacks (one per step first).
    """
    baton = Baton(order)
    trainers, timers, logs = {}, {}, {}
    for arm in order:
        trainers[arm], logs[arm] = build_trainer(arm, cfg, model_dir, tokenizer, dataset, work / arm)
        timers[arm] = StepTimer(arm, baton, per_step)  # captures the RNG state the trainer's seed left
        trainers[arm].add_callback(timers[arm])
    errors: dict[str, BaseException] = {}

    def train(arm: str) -> None:
        torch.set_num_threads(threads)  # OpenMP's thread count is per thread
        try:
            baton.wait(arm)  # the trainer's own set-up in train() runs alone too
            trainers[arm].train()
        except BaseException as error:  # reported by the main thread
            errors[arm] = error
        finally:
            baton.pass_on(arm, finished=True)

    workers = [threading.Thread(target=train, args=(arm,), name=arm) for arm in order]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        arm, error = next(iter(errors.items()))
        raise RuntimeError(f"arm {arm} failed") from error
    for arm in order:
        if timers[arm].work != timers["plain"].work:
            raise RuntimeError(f"{arm} generated other completions than plain: the step times are not comparable")
    log = logs["ours+callbacks"]
    written = log.records("step")
    assert len(written) == cfg.train.max_steps, f"{len(written)} step records for {cfg.train.max_steps} steps"
    return {arm: timers[arm].seconds for arm in order}, log.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="Rounds; every round trains each arm once, afresh.")
    parser.add_argument("--steps", type=int, default=60, help="Optimizer steps per arm per round.")
    parser.add_argument("--warmup", type=int, default=3, help="Steps at the start of each run left out.")
    parser.add_argument("--interleave", choices=["step", "run"], default="step", help="Where the arms take turns.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: least disturbed by other jobs).")
    args = parser.parse_args()
    if args.steps < args.warmup + 2:
        parser.error("--steps must be at least --warmup + 2 (the last step of a run is not timed)")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("trl").setLevel(logging.ERROR)

    console = Console(width=120)
    cfg = experiment(args.steps)
    dataset = countdown_prompts(max(48, 2 * args.steps + 16))  # 2 prompts a step: no epoch ends inside a run
    tokenizer = build_tokenizer()
    times: dict[str, list[list[float]]] = {arm: [] for arm in ARMS}
    writes: list[float] = []  # seconds of the metrics.jsonl write of every timed step of ours+callbacks
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trainer_overhead-") as scratch:
        work = Path(scratch)
        model_dir = work / "model"
        random_tiny_model(tokenizer, hidden_size=64, num_layers=2, num_heads=4).save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        for index in range(args.rounds):
            order = list(ARMS if index % 2 == 0 else ARMS[::-1])
            seconds, write_seconds = run_round(
                order,
                cfg,
                model_dir,
                tokenizer,
                dataset,
                work / f"round{index}",
                args.interleave == "step",
                args.threads,
            )
            for arm in ARMS:
                times[arm].append(seconds[arm][args.warmup :])
            writes.extend(write_seconds[args.warmup : args.steps - 1])  # the step records of the timed steps
            line = ", ".join(f"{arm} {statistics.median(times[arm][-1]) * 1e3:.1f}" for arm in ARMS)
            console.print(f"round {index + 1}/{args.rounds} ({' '.join(order)}): median ms/step {line}")
    wall = time.perf_counter() - started

    timed = args.steps - args.warmup - 1
    table = Table(
        title=f"GRPO step time: tiny Qwen2 (hidden 64, 2 layers), 8 completions = 2 prompts x 4, 16 new tokens, "
        f"beta {cfg.train.beta}; {args.rounds} rounds x {timed} timed steps per arm, interleaved by {args.interleave}, "
        f"torch threads {args.threads}"
    )
    columns = ("arm", "median ms/step", "IQR ms", "vs plain", "per-round ratio: median [min, max]", "paired steps")
    for column in columns:
        table.add_column(column, justify="left" if column == "arm" else "right")
    plain_median = statistics.median(s for run in times["plain"] for s in run)
    ratios, paired_ratios = {}, {}
    for arm in ARMS:
        pooled = [s for run in times[arm] for s in run]
        q1, _, q3 = statistics.quantiles(pooled, n=4)
        rounds = zip(times[arm], times["plain"], strict=True)
        per_round = [statistics.median(mine) / statistics.median(plain) for mine, plain in rounds]
        paired = [
            mine / plain
            for run, plain_run in zip(times[arm], times["plain"], strict=True)
            for mine, plain in zip(run, plain_run, strict=True)
        ]
        ratios[arm] = statistics.median(pooled) / plain_median
        paired_ratios[arm] = statistics.median(paired)
        table.add_row(
            arm,
            f"{statistics.median(pooled) * 1e3:.1f}",
            f"{q1 * 1e3:.1f}-{q3 * 1e3:.1f}",
            f"{ratios[arm]:.3f}",
            f"{statistics.median(per_round):.3f} [{min(per_round):.3f}, {max(per_round):.3f}]",
            f"{statistics.median(paired):.3f}",
        )
    console.print(table)
    console.print(
        f"metrics.jsonl write per step (ours+callbacks; append, flush, fsync): median "
        f"{statistics.median(writes) * 1e3:.2f} ms, mean {statistics.mean(writes) * 1e3:.2f} ms",
        highlight=False,
    )
    verdicts = []
    for arm in ("ours", "ours+callbacks"):
        worst = max(ratios[arm], paired_ratios[arm])  # the larger of the two estimates decides
        verdict = "within" if worst <= TARGET_RATIO else "OVER"
        verdicts.append(f"{arm}/plain {ratios[arm]:.3f} (paired {paired_ratios[arm]:.3f}, {verdict} {TARGET_RATIO})")
    console.print(
        f"result: {'; '.join(verdicts)}; plain {plain_median * 1e3:.1f} ms/step; {args.rounds} rounds, "
        f"wall {wall:.0f} s",
        highlight=False,
    )


if __name__ == "__main__":
    main()
