"""Evaluation: generate for the test prompts, score every completion, record it; the figures come from the samples.

For each batch of prompts the generator is asked twice: once greedy (the headline pass@1), once for n samples at
`eval.eval_temperature` (n = `eval.samples_per_prompt`, at least the largest k), so an evaluation costs n + 1
completions per prompt in two batched calls, not one call per sample per k. Each completion is scored by the
rewards as TRL scores them (rewards/scoring.py) and graded by the task, and becomes one sample record.

    metrics = evaluate(generator, task, rows, reward_funcs, reward_weights, cfg.eval, max_new_tokens=256,
                       samples_path=run_dir / "samples" / "final.jsonl")

The evaluation's jobs live apart: the metrics are a pure function of the samples (train/evaluation/metrics.py, which
lists every key), the samples file is train/evaluation/samples.py's and the eval record train/records/format.py's, and
what the console shows is train/records/console.py's. `Evaluator` is a run's evaluator: it evaluates under a label,
records the result once in metrics.jsonl and prints it beside zero-shot, then the diagnosis' new findings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rewards.scoring import call_rewards, trl_arguments, weighted_total
from train.config import EvalConfig
from train.evaluation.metrics import metrics_from_samples
from train.evaluation.samples import copy_samples, reward_names, samples_path, samples_writer
from train.models.generation import GeneratedCompletion, Generator
from train.records.console import (
    eval_title,
    finding_lines,
    finding_width,
    headline_table,
    run_summary_table,
    sample_lines,
)
from train.records.format import EVAL, eval_metrics, eval_record
from train.records.tracking import MetricsLog
from train.tasks.base import Row, Task

if TYPE_CHECKING:
    from datasets import Dataset

RewardFunc = Callable[..., list[float | None]]


def _leaves_the_random_state_alone(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run `function` on a fork of torch's random state: sampling inside draws from its own seeded generator, and
    the training rollouts after it draw exactly what they would have drawn without it."""

    @wraps(function)
    def forked(*args: Any, **kwargs: Any) -> Any:
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            return function(*args, **kwargs)

    return forked


@_leaves_the_random_state_alone
def evaluate(
    generator: Generator,
    task: Task,
    rows: Dataset,
    reward_funcs: Sequence[RewardFunc],
    reward_weights: Sequence[float],
    cfg: EvalConfig,
    *,
    max_new_tokens: int,
    samples_path: Path | None = None,
    label: str = "eval",
    show_progress: bool = True,
    console: Console | None = None,
) -> dict[str, float]:
    """Evaluate the generator's policy on `rows` (a task split with its `prompt` column); see the module docstring.

    The progress bar is drawn on `console` (the run's, so it nests under a live training line) and cleared at the end.
    torch's random state is left as it was found (tests/test_evaluation_generation.py pins it).
    """
    if len(rows) == 0:
        raise ValueError("no rows to evaluate")
    if len(reward_funcs) != len(reward_weights):
        raise ValueError(f"{len(reward_funcs)} reward functions but {len(reward_weights)} weights")
    start = time.perf_counter()
    generator.snapshot_policy()
    n = cfg.samples_per_prompt
    names = reward_names(reward_funcs)
    samples: list[dict[str, Any]] = []
    greedy_correct = 0
    progress = _progress(show_progress, console)
    progress_task = progress.add_task(label, total=len(rows), rate="", pass1=0.0)
    # eval.batch_size prompts per call for transformers; vLLM takes them all in one call per pass.
    per_call = getattr(generator, "prompts_per_call", cfg.batch_size) or len(rows)
    with samples_writer(samples_path) as write_samples, progress:
        for first in range(0, len(rows), per_call):
            batch = [rows[i] for i in range(first, min(first + per_call, len(rows)))]
            prompts = [row["prompt"] for row in batch]
            greedy = generator.generate(prompts, n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=cfg.seed)
            sampled: list[list[GeneratedCompletion]] = [[] for _ in batch]
            if n:
                # A different seed per batch, so two batches do not share their random draws.
                sampled = generator.generate(
                    prompts, n=n, temperature=cfg.eval_temperature, max_new_tokens=max_new_tokens, seed=cfg.seed + first
                )
            if len(greedy) != len(batch) or any(len(group) != n for group in sampled):
                # pass@k divides by n: a backend that returns fewer samples would inflate it silently.
                raise RuntimeError(f"{type(generator).__name__} did not return 1 greedy and {n} sampled per prompt")
            for kind, completions in (("greedy", greedy), ("sampled", sampled)):
                records = _score(task, batch, completions, reward_funcs, reward_weights, names, first, kind, label)
                samples += records
                greedy_correct += sum(record["correct"] for record in records if record["kind"] == "greedy")
                write_samples(records)
            done = first + len(batch)
            rate = len(samples) / (time.perf_counter() - start)
            progress.update(progress_task, completed=done, rate=f"{rate:.1f} samples/s", pass1=greedy_correct / done)
    return metrics_from_samples(
        samples,
        reward_names=names,
        samples_per_prompt=n,
        pass_k=cfg.pass_k,
        max_new_tokens=max_new_tokens,
        seconds=time.perf_counter() - start,
    )


def _score(
    task: Task,
    batch: list[Row],
    completions: list[list[GeneratedCompletion]],
    reward_funcs: Sequence[RewardFunc],
    reward_weights: Sequence[float],
    names: list[str],
    first_index: int,
    kind: str,
    label: str,
) -> list[dict[str, Any]]:
    """One record per completion: the completion, its row's columns, every reward, correctness and outcome."""
    flat = [
        (i, s, row, c)
        for i, (row, group) in enumerate(zip(batch, completions, strict=True))
        for s, c in enumerate(group)
    ]
    if not flat:
        return []
    # Completions reach the rewards as TRL gives them: text for text prompts, a message list for chat prompts.
    texts = [
        c.text if isinstance(row["prompt"], str) else [{"role": "assistant", "content": c.text}]
        for _, _, row, c in flat
    ]
    ids = [list(c.token_ids) for *_, c in flat] if all(c.token_ids for *_, c in flat) else None
    columns = {key: [row[key] for _, _, row, _ in flat] for key in batch[0] if key != "prompt"}
    prompts = [row["prompt"] for _, _, row, _ in flat]
    scores = call_rewards(reward_funcs, trl_arguments(prompts, texts, ids, columns))
    records = []
    for position, (i, sample, row, completion) in enumerate(flat):
        rewards = {name: score[position] for name, score in zip(names, scores, strict=True)}
        total = weighted_total(list(rewards.values()), reward_weights)
        outcome = task.outcome(completion.text, row)
        records.append(
            {
                "label": label,
                "kind": kind,
                "index": first_index + i,
                "sample": sample,
                "prompt": row["prompt"],
                "completion": completion.text,
                "num_tokens": completion.num_tokens,
                "truncated": completion.truncated,
                **{key: values[position] for key, values in columns.items()},
                "rewards": rewards,
                "reward_total": total,
                "correct": outcome == "correct",
                "outcome": outcome,
            }
        )
    return records


def _progress(show: bool, console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("prompts"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("pass@1 {task.fields[pass1]:.3f}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # the table printed after it has the same figures
        disable=not show or (console is not None and not console.is_terminal),  # a log file gets the table only
    )


# ----------------------------------------------------------------------------------------------------------------
# The evaluator of a run


class Evaluator:
    """Evaluates the live policy under a label, records it as an `eval` record and prints it beside zero-shot, then
    at most three findings of the diagnosis not shown before (`new_findings`, a train.diagnosis.NewFindings that
    train/run.py sets; None prints none)."""

    def __init__(
        self,
        *,
        generator: Generator,
        task: Task,
        rows: Dataset,
        reward_funcs: list[RewardFunc],
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
        self.new_findings: Callable[[], list[Any]] | None = None

    def __call__(self, label: str, step: int, epoch: float) -> dict[str, float]:
        self.log.guard()  # the run dir is still this run's: samples/ is written before the record
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        samples = samples_path(self.samples_dir, label)
        metrics = evaluate(
            self.generator,
            self.task,
            self.rows,
            self.reward_funcs,
            self.reward_weights,
            self.eval_cfg,
            max_new_tokens=self.max_new_tokens,
            samples_path=samples,
            label=label,
            console=self.console,
        )
        self._record(label, step, epoch, metrics)
        self.console.print(
            headline_table(None if label == "zero_shot" else self.zero_shot_metrics, metrics, eval_title(label, step))
        )
        for line in sample_lines(samples, width=self.console.width):
            self.console.print(line, highlight=False, soft_wrap=True, markup=False)
        self._print_new_findings()
        return metrics

    def _print_new_findings(self) -> None:
        if self.new_findings is None:
            return
        try:
            findings = self.new_findings()
        except Exception as error:  # noqa: BLE001 - a diagnosis must never stop training (summary.json has it later)
            self.console.print(f"(the diagnosis could not run: {type(error).__name__}: {error})", markup=False)
            return
        for line in finding_lines(findings, width=finding_width(self.console)):
            self.console.print(line, highlight=False, soft_wrap=True)

    def _record(self, label: str, step: int, epoch: float, metrics: dict[str, float], **extra: Any) -> None:
        self.log.write(eval_record(label, step, epoch, metrics, **extra))

    def zero_shot(self) -> dict[str, float]:
        """The baseline before any training; a resumed run keeps the one it already has."""
        done = [row for row in self.log.records(EVAL) if row["label"] == "zero_shot"]
        self.zero_shot_metrics = eval_metrics(done[-1]) if done else self("zero_shot", 0, 0.0)
        return self.zero_shot_metrics

    def final(self, step: int, epoch: float) -> dict[str, float]:
        """The final evaluation; when the last eval already evaluated this very model (same step), it is reused."""
        evals = self.log.records(EVAL)
        if evals and evals[-1]["step"] == step:
            metrics = eval_metrics(evals[-1])
            copy_samples(self.samples_dir, evals[-1]["label"], "final")  # samples/final.jsonl, always there to read
            self._record("final", step, epoch, metrics, same_as=evals[-1]["label"])
            self.console.print(
                f"final evaluation = the {eval_title(evals[-1]['label'], step)} evaluation (the same model): pass@1 "
                f"{metrics['pass@1']:.3f}",
                highlight=False,
                soft_wrap=True,
            )
            return metrics
        return self("final", step, epoch)

    def print_summary(self, summary: dict[str, Any]) -> None:
        self.console.print(run_summary_table(summary))
