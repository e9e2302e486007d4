"""TRL's GRPOTrainer, built from our config, plus the two things TRL lacks: a no-baseline arm and reward ledgers.

`GRPOLabTrainer` subclasses `trl.GRPOTrainer` and changes nothing about how GRPO learns except when asked:
- `train.baseline: none` replaces TRL's advantages (which always subtract the group mean) with the raw reward
  (scaled as `train.scale_rewards` says) through `train.advantages.group_advantages`;
- every batch of rewards TRL computes for training is also handed to a `RewardLedger`, which the callbacks turn into
  per-step reward sums and the epoch summary (epoch/accumulated_reward, epoch/mean_reward, epoch/num_samples).

Both hooks wrap private TRL methods (`_calculate_rewards`, `_generate_and_score_completions`); trl is pinned below
1.15 and tests/test_trainer.py pins their behaviour, so an upgrade that moves them fails a test, not a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer

from train.advantages import group_advantages
from train.config import ExperimentConfig


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
        return self.reward_sum / self.num_samples if self.num_samples else float("nan")

    def func_means(self) -> dict[str, float]:
        # A reward that scored no completion (all None) has no mean: NaN, as TRL's nanmean logs it.
        return {
            name: total / count if (count := self.func_counts.get(name, 0)) else math.nan
            for name, total in self.func_sums.items()
        }


class RewardLedger:
    """Accumulates the total weighted reward of every completion generated for training.

    The total reward of a completion is sum_f w_f * r_f over the reward functions that scored it (None/NaN skipped,
    as TRL's nansum does). TRL calls `_calculate_rewards` once per generated batch with the rewards gathered from
    all processes, so recording there (on the main process only) counts every completion exactly once: across
    processes, with gradient accumulation (one generation feeds several micro-steps) and with num_iterations > 1
    (the generated batch is reused for several optimizer passes but scored once).
    """

    def __init__(self, names: list[str], weights: list[float]):
        self.names = names
        self.weights = torch.tensor(weights, dtype=torch.float32)
        self.since_step = RewardTotals()
        self.since_epoch = RewardTotals()

    def record(self, rewards_per_func: torch.Tensor) -> None:
        rewards = rewards_per_func.detach().float().cpu()
        batch = RewardTotals(num_samples=rewards.shape[0])
        batch.reward_sum = float((rewards * self.weights).nansum().item())
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


def step_record_fields(totals: RewardTotals) -> dict[str, float]:
    """What a step record carries so its figures add up to the epoch's: sums and counts, not just TRL's means."""
    fields: dict[str, float] = {"reward_sum": totals.reward_sum, "num_completions": totals.num_samples}
    for name, value in totals.func_sums.items():
        fields[f"rewards/{name}/sum"] = value
        fields[f"rewards/{name}/count"] = totals.func_counts[name]
    return fields


def totals_from_step_records(records: list[dict[str, Any]]) -> RewardTotals:
    """Rebuild the running totals of an epoch from its step records (used when a run resumes mid-epoch)."""
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


class GRPOLabTrainer(GRPOTrainer):
    """trl.GRPOTrainer with a selectable baseline and a reward ledger (see the module docstring)."""

    def __init__(self, *args: Any, baseline: str = "mean", ledger: RewardLedger | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.baseline = baseline
        self.ledger = ledger
        self._last_rewards_per_func: torch.Tensor | None = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.model.training:
            self._last_rewards_per_func = rewards_per_func
            if self.ledger is not None and self.accelerator.is_main_process:
                self.ledger.record(rewards_per_func)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.baseline != "mean" and self.model.training and self._last_rewards_per_func is not None:
            output["advantages"] = self._advantages_without_baseline(len(inputs)).to(output["advantages"].device)
        return output

    def _advantages_without_baseline(self, local_count: int) -> torch.Tensor:
        rewards_per_func = self._last_rewards_per_func
        weights = self.reward_weights.to(rewards_per_func.device)
        rewards = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
        advantages = group_advantages(rewards, self.num_generations, baseline=self.baseline, scale=self.scale_rewards)
        # Completions no reward could score carry no signal, as in TRL.
        unscorable = torch.isnan(rewards_per_func).all(dim=1)
        advantages = torch.where(unscorable, torch.zeros_like(advantages), advantages)
        start = self.accelerator.process_index * local_count
        return advantages[start : start + local_count]


def grpo_config(cfg: ExperimentConfig, output_dir: Path, reward_weights: list[float], backend: str) -> GRPOConfig:
    """GRPOConfig from our schema. Every GRPO knob is passed explicitly so no library default decides silently."""
    t = cfg.train
    on_gpu = torch.cuda.is_available()
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=t.num_epochs,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of total steps
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=_optimizer(t.optim, on_gpu),
        beta=t.beta,
        epsilon=t.clip_eps,
        epsilon_high=t.clip_eps_high if t.clip_eps_high is not None else t.clip_eps,
        loss_type=t.loss_type,
        scale_rewards=t.scale_rewards,
        num_generations=t.num_generations,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_iterations=t.num_iterations,
        max_completion_length=t.max_completion_length,
        temperature=t.temperature,
        top_p=t.top_p,
        seed=t.seed,
        reward_weights=reward_weights,
        gradient_checkpointing=t.gradient_checkpointing,
        logging_steps=cfg.logging.logging_steps,
        # Checkpoints at every epoch end come from our EpochCallback; save_steps adds mid-epoch ones for --resume.
        save_strategy="steps" if t.save_steps else "no",
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        report_to="none",  # metrics go through train.tracking (metrics.jsonl first, then wandb)
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        fp16=False,
        disable_tqdm=False,
        log_completions=False,
        dataloader_num_workers=0,
    )
    if backend == "unsloth":
        from train.unsloth_backend import grpo_config_overrides

        kwargs.update(grpo_config_overrides(t))
    return GRPOConfig(**kwargs)


def _optimizer(setting: str, on_gpu: bool) -> str:
    if setting != "auto":
        return setting
    return "adamw_8bit" if on_gpu else "adamw_torch"


def epoch_summary_fields(totals: RewardTotals) -> dict[str, float]:
    """The epoch record: accumulated reward (sum over every completion), mean, sample count, per-reward means."""
    fields = {
        "epoch/accumulated_reward": totals.reward_sum,
        "epoch/mean_reward": totals.mean_reward if totals.num_samples else math.nan,
        "epoch/num_samples": totals.num_samples,
    }
    fields.update({f"epoch/rewards/{name}/mean": mean for name, mean in totals.func_means().items()})
    return fields
