"""The epoch reward ledger: every training completion's weighted reward, summed per step and per epoch.

    ledger = RewardLedger(names=["hard_format_reward", "correctness_reward"], weights=[1.0, 1.0])
    ledger.record(rewards_per_func)          # the trainer, for each batch of rewards TRL computes for training
    step_fields(ledger.take_step())          # what a step record adds (sums and counts)
    epoch_fields(ledger.take_epoch())        # the epoch record: epoch/accumulated_reward, epoch/mean_reward, ...

The records these fields go into are train/records/format.py's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from train.records.format import EPOCH_PREFIX

if TYPE_CHECKING:
    import torch


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
