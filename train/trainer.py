"""TRL's GRPOTrainer, built from our config, plus the two things TRL lacks: a no-baseline arm and reward ledgers.

`GRPOLabTrainer` subclasses `trl.GRPOTrainer` and changes nothing about how GRPO learns except when asked:
- `train.baseline: none` replaces TRL's advantages (which always subtract the group mean) with the raw reward
  (scaled as `train.scale_rewards` says) through `train.advantages.group_advantages`;
- every batch of rewards TRL computes for training is also handed to a `RewardLedger`, which the callbacks turn into
  per-step reward sums and the epoch summary (epoch/accumulated_reward, epoch/mean_reward, epoch/num_samples).

Both hooks wrap private TRL methods (`_calculate_rewards`, `_generate_and_score_completions`); trl is pinned below
1.15 and tests/test_trainer.py pins their behaviour, so an upgrade that moves them fails a test, not a run.
The ledger and the records it feeds are train/records.py's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import RepeatSampler

from train.advantages import group_advantages
from train.config import ExperimentConfig
from train.records import RewardLedger


class GRPOLabTrainer(GRPOTrainer):
    """trl.GRPOTrainer with a selectable baseline and a reward ledger (see the module docstring)."""

    def __init__(self, *args: Any, baseline: str = "mean", ledger: RewardLedger | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.baseline = baseline
        self.ledger = ledger
        self._last_rewards_per_func: torch.Tensor | None = None

    def _get_train_sampler(self, dataset=None):
        sampler = super()._get_train_sampler(dataset)
        # The trainer replaces its state object when it starts or resumes: read it at iteration time.
        return EpochSampler(sampler, lambda: self.state.epoch) if isinstance(sampler, RepeatSampler) else sampler

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


class EpochSampler(RepeatSampler):
    """TRL's RepeatSampler whose shuffle depends on the epoch it serves, so a resumed run trains the same prompts.

    TRL's sampler seeds its generator once and draws one permutation each time it is iterated: epoch e gets the
    e-th permutation of an uninterrupted run. A run resumed from a checkpoint builds a new sampler, which would give
    the resumed epoch the first permutation again (so a mid-epoch resume skips the wrong batches, and later epochs
    are reordered). This one reseeds and draws the e-th permutation for epoch e = floor(state.epoch) at each
    iteration: the same order as TRL's uninterrupted run, and the same again after a resume.
    tests/test_training.py compares a killed-and-resumed run's per-step prompts with an uninterrupted run's.
    """

    def __init__(self, sampler: RepeatSampler, current_epoch: Callable[[], float | None]):
        self.__dict__.update(sampler.__dict__)
        self.current_epoch = current_epoch

    def __iter__(self):
        if self.shuffle:
            self.generator.manual_seed(self.seed)
            epochs_before = math.floor((self.current_epoch() or 0.0) + 1e-6)
            for _ in range(epochs_before):  # the permutations of the epochs before this one
                torch.randperm(self.num_samples, generator=self.generator)
        return super().__iter__()


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
        vllm_importance_sampling_correction=t.vllm_importance_sampling,
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
        dataloader_pin_memory=on_gpu,  # pinned memory is for copies to a GPU; on a CPU torch warns every epoch
    )
    if backend == "unsloth":
        from train.models.unsloth import grpo_config_overrides

        kwargs.update(grpo_config_overrides(t))
    return GRPOConfig(**kwargs)


def _optimizer(setting: str, on_gpu: bool) -> str:
    if setting != "auto":
        return setting
    return "adamw_8bit" if on_gpu else "adamw_torch"
