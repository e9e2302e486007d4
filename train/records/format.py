"""The metrics record format: what a `step`, `epoch`, `eval` and `train` record of metrics.jsonl holds, and the summary.

A record is one JSON object with a `type` and the optimizer `step` it belongs to:
- `step`: one optimizer step: TRL's logged values (see the clipped-ratio note below), plus `reward_sum`,
  `num_completions`, `completions/budget` and `completions/budget_hit_ratio` (train/grpo/trainer.py) and, per reward,
  `rewards/<f>/sum` and `rewards/<f>/count` (so the steps of an epoch add up to the epoch's figures), and
  `timing/reward/<f>` (seconds spent in each reward that step);
- `epoch`: `epoch/accumulated_reward`, `epoch/mean_reward`, `epoch/num_samples`, `epoch/rewards/<f>/mean`;
- `eval`: `label` (zero_shot, epoch_N, step_N, final) and `eval/<metric>` for each metric of train.evaluation.evaluate;
- `train`: the trainer's closing `train_runtime` and `train_loss`, once per run (of the session that ended training).

TRL's `completions/clipped_ratio` (trl 1.14.2 grpo_trainer.py, `is_truncated = ids[-1] not in eos_and_pad`) counts
a completion as clipped whenever its last token is not end-of-sequence or padding. A completion that stops after a
stop string ends on that string's tokens, so on vLLM rollouts (stop strings through SamplingParams) every
completion that stops on `</answer>` counts as clipped, and the ratio reads near 1 for a model that answers well
within its budget. (Transformers rollouts stop on a one-token `</answer>` as an end-of-sequence id, so there it is
right.) `completions/budget_hit_ratio` is the share that really used the whole budget; the report plots it.

The reward sums come from the `RewardLedger`, which the trainer feeds with every batch of rewards it computes.
summary.json is `build_summary` of the records (each evaluation once, read back with `summary_eval`); the console
tables, wandb and the reports read the same records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch only where tensors come in: the reports read records without it
    import torch

STEP, EPOCH, EVAL, TRAIN = "step", "epoch", "eval", "train"
EPOCH_PREFIX = "epoch/"
EVAL_PREFIX = "eval/"


@dataclass
class RewardTotals:
    """Sums over a stretch of training: completions seen, their summed weighted reward, each reward's sum/count."""

    num_samples: int = 0
    reward_sum: float = 0.0
    func_sums: dict[str, float] = field(default_factory=dict)
    func_counts: dict[str, int] = field(default_factory=dict)

    def add(self, other: RewardTotals) -> None:
        self.num_samples += other.num_samples
        self.reward_sum += other.reward_sum
        for name, value in other.func_sums.items():
            self.func_sums[name] = self.func_sums.get(name, 0.0) + value
            self.func_counts[name] = self.func_counts.get(name, 0) + other.func_counts.get(name, 0)

    @property
    def mean_reward(self) -> float:
        """reward_sum / num_samples; NaN before any completion."""
        return self.reward_sum / self.num_samples if self.num_samples else math.nan

    def func_means(self) -> dict[str, float]:
        # A reward that scored no completion (all None) has no mean: NaN, as TRL's nanmean logs it.
        return {
            name: total / count if (count := self.func_counts.get(name, 0)) else math.nan
            for name, total in self.func_sums.items()
        }


class RewardLedger:
    """Accumulates the total weighted reward of every completion generated for training.

    The total reward of a completion is sum_f w_f * r_f over the reward functions that scored it (None/NaN skipped,
    as TRL's nansum does). TRL computes the rewards once per generated batch, gathered from all processes, so
    recording there (on the main process only) counts every completion exactly once: across processes, with
    gradient accumulation (one generation feeds several micro-steps) and with num_iterations > 1 (the generated
    batch is reused for several optimizer passes but scored once). tests/test_trainer.py pins those counts.
    """

    def __init__(self, names: list[str], weights: list[float]):
        self.names = names
        import torch

        self.weights = torch.tensor(weights, dtype=torch.float32)
        self.since_step = RewardTotals()
        self.since_epoch = RewardTotals()

    def record(self, rewards_per_func: torch.Tensor) -> None:
        import torch

        rewards = rewards_per_func.detach().float().cpu()
        batch = RewardTotals(num_samples=rewards.shape[0])
        batch.reward_sum = float(weighted_rewards(rewards, self.weights).item())
        for i, name in enumerate(self.names):
            column = rewards[:, i]
            present = ~torch.isnan(column)
            batch.func_sums[name] = float(column[present].sum().item())
            batch.func_counts[name] = int(present.sum().item())
        self.since_step.add(batch)
        self.since_epoch.add(batch)

    def take_step(self) -> RewardTotals:
        totals, self.since_step = self.since_step, RewardTotals()
        return totals

    def take_epoch(self) -> RewardTotals:
        totals, self.since_epoch = self.since_epoch, RewardTotals()
        return totals

    def restore_epoch(self, step_records: list[dict[str, Any]], epoch_records: list[dict[str, Any]]) -> None:
        """On resume, start the current epoch's totals from its step records already in metrics.jsonl."""
        epoch_start = max((row["step"] for row in epoch_records), default=0)
        self.since_epoch = totals_from_step_records([row for row in step_records if row["step"] > epoch_start])


def weighted_rewards(rewards_per_func: torch.Tensor, weights: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """`rewards.scoring.weighted_total` on the trainer's tensors: sum_f w_f * r_f with NaN (a reward that did not
    score the completion) left out, per completion (dim=1) or summed over the whole batch (dim=None). In float32
    with torch's nansum, as TRL sums its rewards, so the ledger's figures are TRL's (tests/test_scoring.py checks it
    against the pure-Python total)."""
    products = rewards_per_func * weights
    return products.nansum() if dim is None else products.nansum(dim=dim)


def step_fields(totals: RewardTotals) -> dict[str, float]:
    """What a step record adds to TRL's values so its figures add up to the epoch's: sums and counts."""
    fields: dict[str, float] = {"reward_sum": totals.reward_sum, "num_completions": totals.num_samples}
    for name, value in totals.func_sums.items():
        fields[f"rewards/{name}/sum"] = value
        fields[f"rewards/{name}/count"] = totals.func_counts[name]
    return fields


def totals_from_step_records(records: list[dict[str, Any]]) -> RewardTotals:
    """The running totals of a stretch of steps rebuilt from their step records (a run resumed mid-epoch)."""
    totals = RewardTotals()
    for row in records:
        totals.num_samples += int(row.get("num_completions") or 0)
        totals.reward_sum += float(row.get("reward_sum") or 0.0)
        for key, value in row.items():
            if key.startswith("rewards/") and key.endswith("/sum") and value is not None:
                name = key.removeprefix("rewards/").removesuffix("/sum")
                totals.func_sums[name] = totals.func_sums.get(name, 0.0) + float(value)
                totals.func_counts[name] = totals.func_counts.get(name, 0) + int(row.get(f"rewards/{name}/count", 0))
    return totals


def epoch_fields(totals: RewardTotals) -> dict[str, float]:
    """The epoch record: accumulated reward (sum over every completion), mean, sample count, per-reward means."""
    fields = {
        f"{EPOCH_PREFIX}accumulated_reward": totals.reward_sum,
        f"{EPOCH_PREFIX}mean_reward": totals.mean_reward,
        f"{EPOCH_PREFIX}num_samples": totals.num_samples,
    }
    fields.update({f"{EPOCH_PREFIX}rewards/{name}/mean": mean for name, mean in totals.func_means().items()})
    return fields


def eval_fields(metrics: dict[str, float]) -> dict[str, float]:
    """An evaluation's metrics as an eval record's keys (`eval/pass@1`, ...)."""
    return {f"{EVAL_PREFIX}{key}": value for key, value in metrics.items()}


def eval_record(label: str, step: int, epoch: float, metrics: dict[str, float], **extra: Any) -> dict[str, Any]:
    """The `eval` record of one evaluation: its label, where it happened, `extra` (same_as) and its metrics."""
    return {"type": EVAL, "label": label, "step": step, "epoch": epoch, **extra, **eval_fields(metrics)}


def eval_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The metrics of an eval record (its `eval/` keys, unprefixed): the inverse of `eval_fields`."""
    return {key.removeprefix(EVAL_PREFIX): value for key, value in record.items() if key.startswith(EVAL_PREFIX)}


def build_summary(records: list[dict[str, Any]], wall_seconds: float) -> dict[str, Any]:
    """summary.json from the records, each evaluation stored once:

        evals       {label: metrics} of every evaluation (zero_shot, epoch_N, step_N, final)
        zero_shot   the label of the zero-shot evaluation in evals (None without one)
        final       the label of the final evaluation in evals: "final", or the evaluation it reuses (epoch_N,
                    the same model); None until the run has one, so a summary with "final" is a finished run
        epochs      per epoch: its figures (accumulated_reward, mean_reward, num_samples, rewards/<f>/mean) and
                    "eval", the label of its evaluation (None without one)
        wall_seconds

    Read an evaluation with `summary_eval`, which also reads summary.json as written before Dec 2026 (zero_shot,
    final and each epoch's eval held copies of the metrics).
    """
    evals: dict[str, dict[str, Any]] = {}
    final = None
    for row in records:
        if row.get("type") != EVAL:
            continue
        same_as = row.get("same_as")
        if row["label"] == "final" and same_as in evals:
            final = same_as  # the final evaluation is that one (the same model): stored once, under its label
            continue
        evals[row["label"]] = {
            key: value for key, value in _summary_fields(row, EVAL_PREFIX).items() if key != "same_as"
        }
        if row["label"] == "final":
            final = "final"
    epochs = []
    for row in records:
        if row.get("type") == EPOCH:
            epoch = int(row["epoch"])
            label = f"epoch_{epoch}"
            epochs.append(
                {"epoch": epoch, **_summary_fields(row, EPOCH_PREFIX), "eval": label if label in evals else None}
            )
    return {
        "zero_shot": "zero_shot" if "zero_shot" in evals else None,
        "epochs": epochs,
        "final": final,
        "evals": evals,
        "wall_seconds": round(wall_seconds, 2),
    }


def summary_eval(summary: dict[str, Any] | None, which: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """The metrics of one evaluation in a summary.json: `which` is "zero_shot", "final", an eval label (epoch_2),
    or an epoch entry's "eval"; None when the summary has none. Reads both layouts: labels into `evals` (this
    module's), and the copies of the metrics summary.json held before Dec 2026."""
    if not summary or which is None:
        return None
    if isinstance(which, dict):  # an old epoch entry's copy of its evaluation
        return which
    value = summary.get(which) if which in ("zero_shot", "final") else which
    if isinstance(value, dict):  # the old layout: zero_shot and final held the metrics themselves
        return value
    return (summary.get("evals") or {}).get(value) if isinstance(value, str) else None


def _summary_fields(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A record's figures without its prefix, and without the keys that place it (type, label, step, epoch)."""
    return {
        key.removeprefix(prefix): value for key, value in row.items() if key not in ("type", "label", "step", "epoch")
    }
