"""Evaluation: greedy pass@1, unbiased pass@k, the outcome breakdown and every reward, from one pass of generation.

For each batch of prompts the generator is asked twice: once greedy (the headline pass@1), once for n samples at
`eval.eval_temperature` (n = `eval.samples_per_prompt`, at least the largest k). The same n samples give pass@k
for every k (Chen et al. 2021's unbiased estimator, `train.passk.pass_at_k`), so an evaluation costs n + 1
completions per prompt in two batched calls, not one call per sample per k.

    metrics = evaluate(generator, task, rows, reward_funcs, reward_weights, cfg.eval, max_new_tokens=256,
                       samples_path=run_dir / "samples_eval.jsonl")
    console.print(eval_table(zero_shot, metrics, title="epoch 1"))

Metric keys (all floats): `pass@1` (greedy), `pass@1_sampled`, `pass@5`, ... (one per k in `eval.pass_k`);
`correct`, `partial`, `failed` (counts of greedy outcomes: correct; an answer block but wrong; no answer block)
and their `*_frac`; `mean_output_tokens`, `budget_utilization` (mean tokens / max_new_tokens), `truncated_frac`
(greedy completions that hit the budget); `reward/<name>` (mean over greedy completions, None scores left out)
and `reward/total` (mean weighted sum, None counted as 0 as TRL does); `num_prompts`, `samples_generated`,
`eval_seconds`. The samples file holds one JSON line per completion, greedy and sampled.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from train.config import EvalConfig
from train.models.generation import Completion, Generator
from train.passk import pass_at_k
from train.records import EVAL, eval_fields, eval_metrics
from train.tasks.base import Row, Task
from train.tracking import MetricsLog

if TYPE_CHECKING:
    from datasets import Dataset

RewardFunc = Callable[..., list[float | None]]
COUNT_KEYS = ("correct", "partial", "failed", "num_prompts", "samples_generated")


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
    tally = _Tally(names, n)
    progress = _progress(show_progress, console)
    progress_task = progress.add_task(label, total=len(rows), rate="", pass1=0.0)
    # eval.batch_size prompts per call for transformers; vLLM takes them all in one call per pass.
    per_call = getattr(generator, "prompts_per_call", cfg.batch_size) or len(rows)
    with _samples_writer(samples_path) as write_samples, progress:
        for first in range(0, len(rows), per_call):
            batch = [rows[i] for i in range(first, min(first + per_call, len(rows)))]
            prompts = [row["prompt"] for row in batch]
            greedy = generator.generate(prompts, n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=cfg.seed)
            sampled: list[list[Completion]] = [[] for _ in batch]
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
                tally.add(records)
                write_samples(records)
            done = first + len(batch)
            rate = tally.samples / (time.perf_counter() - start)
            progress.update(
                progress_task, completed=done, rate=f"{rate:.1f} samples/s", pass1=tally.greedy_correct / done
            )
    return tally.metrics(cfg.pass_k, max_new_tokens, time.perf_counter() - start)


def reward_names(reward_funcs: Sequence[RewardFunc]) -> list[str]:
    """Each reward's `__name__`; a name used twice (the same reward with other params) gets _2, _3, ..."""
    names: list[str] = []
    for func in reward_funcs:
        name = getattr(func, "__name__", type(func).__name__)
        unique, count = name, 1
        while unique in names:
            count += 1
            unique = f"{name}_{count}"
        names.append(unique)
    return names


def _score(
    task: Task,
    batch: list[Row],
    completions: list[list[Completion]],
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
    prompts = [row["prompt"] for _, _, row, _ in flat]
    # Completions reach the rewards as TRL gives them: text for text prompts, a message list for chat prompts.
    texts = [
        c.text if isinstance(row["prompt"], str) else [{"role": "assistant", "content": c.text}]
        for _, _, row, c in flat
    ]
    ids = [list(c.token_ids) for *_, c in flat] if all(c.token_ids for *_, c in flat) else None
    columns = {key: [row[key] for _, _, row, _ in flat] for key in batch[0] if key != "prompt"}
    scores = [func(prompts=prompts, completions=texts, completion_ids=ids, **columns) for func in reward_funcs]
    records = []
    for position, (i, sample, row, completion) in enumerate(flat):
        rewards = {name: score[position] for name, score in zip(names, scores, strict=True)}
        total = sum(w * r for w, r in zip(reward_weights, rewards.values(), strict=True) if r is not None)
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


class _Tally:
    """Running sums over the records of one evaluation, turned into the flat metrics at the end."""

    def __init__(self, names: list[str], n: int) -> None:
        self.names, self.n = names, n
        self.greedy: list[dict[str, Any]] = []
        self.correct_samples: dict[int, int] = {}
        self.samples = 0

    @property
    def greedy_correct(self) -> int:
        return sum(record["correct"] for record in self.greedy)

    def add(self, records: list[dict[str, Any]]) -> None:
        self.samples += len(records)
        for record in records:
            if record["kind"] == "greedy":
                self.greedy.append(record)
            else:
                index = record["index"]
                self.correct_samples[index] = self.correct_samples.get(index, 0) + record["correct"]

    def metrics(self, pass_k: list[int], max_new_tokens: int, seconds: float) -> dict[str, float]:
        prompts = len(self.greedy)
        metrics: dict[str, float] = {"pass@1": self.greedy_correct / prompts}
        for k in pass_k if self.n else []:
            per_prompt = [pass_at_k(self.n, self.correct_samples.get(r["index"], 0), k) for r in self.greedy]
            metrics["pass@1_sampled" if k == 1 else f"pass@{k}"] = sum(per_prompt) / prompts
        for outcome in ("correct", "partial", "failed"):
            count = sum(record["outcome"] == outcome for record in self.greedy)
            metrics[outcome] = float(count)
            metrics[f"{outcome}_frac"] = count / prompts
        mean_tokens = sum(record["num_tokens"] for record in self.greedy) / prompts
        metrics["mean_output_tokens"] = mean_tokens
        metrics["budget_utilization"] = mean_tokens / max_new_tokens
        metrics["truncated_frac"] = sum(record["truncated"] for record in self.greedy) / prompts
        for name in self.names:
            scores = [record["rewards"][name] for record in self.greedy if record["rewards"][name] is not None]
            metrics[f"reward/{name}"] = sum(scores) / len(scores) if scores else math.nan
        metrics["reward/total"] = sum(record["reward_total"] for record in self.greedy) / prompts
        metrics["num_prompts"] = float(prompts)
        metrics["samples_generated"] = float(self.samples)
        metrics["eval_seconds"] = seconds
        return metrics


@contextmanager
def _samples_writer(path: Path | None) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """A function that appends records to the samples file as JSON lines (a no-op without a path)."""
    if path is None:
        yield lambda records: None
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        # Written batch by batch: an interrupted evaluation keeps the samples it made.
        yield lambda records: file.writelines(json.dumps(record, default=str) + "\n" for record in records)


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
    """Evaluates the live policy under a label, records it as an `eval` record and prints it beside zero-shot."""

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
            console=self.console,
        )
        self._record(label, step, epoch, metrics)
        self.console.print(
            headline_table(None if label == "zero_shot" else self.zero_shot_metrics, metrics, _title(label, step))
        )
        for line in sample_lines(self.samples_dir / f"{label}.jsonl", width=self.console.width):
            self.console.print(line, highlight=False, soft_wrap=True, markup=False)
        return metrics

    def _record(self, label: str, step: int, epoch: float, metrics: dict[str, float], **extra: Any) -> None:
        self.log.write({"type": EVAL, "label": label, "step": step, "epoch": epoch, **extra, **eval_fields(metrics)})

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
            same = self.samples_dir / f"{evals[-1]['label']}.jsonl"
            if same.exists():  # so samples/final.jsonl is always there to score or read
                shutil.copyfile(same, self.samples_dir / "final.jsonl")
            self._record("final", step, epoch, metrics, same_as=evals[-1]["label"])
            self.console.print(
                f"final evaluation = the {_title(evals[-1]['label'], step)} evaluation (the same model): pass@1 "
                f"{metrics['pass@1']:.3f}",
                highlight=False,
                soft_wrap=True,
            )
            return metrics
        return self("final", step, epoch)

    def print_summary(self, summary: dict[str, Any]) -> None:
        """One table of the run, by epoch (its evaluations' tables were printed as they happened)."""
        table = Table(
            title="Run summary",
            caption=f"wall time {summary['wall_seconds']:.0f} s; every figure: metrics.jsonl, summary.json",
            **COMPACT,
        )
        for column in ("epoch", "accumulated reward", "mean reward", "samples", "pass@1"):
            table.add_column(column, justify="right")
        zero_shot = (summary.get("zero_shot") or {}).get("pass@1")
        if zero_shot is not None:
            table.add_row("zero-shot", "", "", "", f"{zero_shot:.3f}")
        for epoch in summary["epochs"]:
            pass_1 = (epoch.get("eval") or {}).get("pass@1")
            table.add_row(
                str(epoch["epoch"]),
                f"{epoch['accumulated_reward']:.4g}",
                f"{epoch['mean_reward']:.4g}" if epoch["mean_reward"] is not None else "-",
                str(epoch["num_samples"]),
                f"{pass_1:.3f}" if pass_1 is not None else "-",
            )
        final = (summary.get("final") or {}).get("pass@1")
        if final is not None:
            table.add_row("final", "", "", "", f"{final:.3f}")
        self.console.print(table)


def _title(label: str, step: int) -> str:
    if label == "zero_shot":
        return "zero-shot"
    return f"{label.replace('_', ' ')} (step {step})" if label.startswith("epoch") else label.replace("_", " ")


# ----------------------------------------------------------------------------------------------------------------
# What a run prints after an evaluation: the headline table and a few samples

# A table without its frame: title, header, one rule, rows, caption.
COMPACT: dict[str, Any] = {
    "box": box.SIMPLE_HEAD,
    "show_edge": False,
    "title_justify": "left",
    "caption_justify": "left",
}
OUTCOMES = ("correct", "partial", "failed")


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
        records = [json.loads(line) for line in Path(samples_path).read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []
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


# ----------------------------------------------------------------------------------------------------------------
# The comparison table

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
