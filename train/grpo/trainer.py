"""TRL's GRPOTrainer, built from our config, plus the two things TRL lacks: a no-baseline arm and reward ledgers.

`GRPOLabTrainer` subclasses `trl.GRPOTrainer` and changes nothing about how GRPO learns except when asked (its
GRPOConfig and its extra arguments come from one place, train/grpo/arguments.py's `resolve`):
- `train.baseline: none` replaces TRL's advantages (which always subtract the group mean) with the raw reward
  (scaled as `train.scale_rewards` says) through `train.grpo.advantages.group_advantages`;
- every batch of rewards TRL computes for training is also handed to a `RewardLedger`, which the callbacks turn into
  per-step reward sums and the epoch summary (epoch/accumulated_reward, epoch/mean_reward, epoch/num_samples).

Both hooks wrap private TRL methods (`_calculate_rewards`, `_generate_and_score_completions`); trl is pinned below
1.15 and tests/test_trainer.py pins their behaviour, so an upgrade that moves them fails a test, not a run.
The ledger is train/grpo/ledger.py's. What this class does only to work around TRL's or vLLM's behaviour (stop
strings on transformers rollouts, the CPU vLLM weight push, the epoch-seeded sampler, no step past max_steps on a
resume) is train/grpo/workarounds.py's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from train.config import HYBRID_FULL_BUDGET
from train.errors import writing
from train.grpo import workarounds
from train.grpo.advantages import group_advantages
from train.grpo.ledger import RewardLedger, weighted_rewards
from train.records.resume import unloadable_checkpoint
from train.records.rundir import checkpoint_before


class GRPOLabTrainer(GRPOTrainer):
    """trl.GRPOTrainer with a selectable baseline and a reward ledger (see the module docstring)."""

    def __init__(
        self,
        *args: Any,
        baseline: str = "mean",
        ledger: RewardLedger | None = None,
        stop_strings: tuple[str, ...] = (),
        hybrid_loss: bool = False,
        completion_budget: Callable[[int], int] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.hybrid_loss = hybrid_loss  # TRL runs its dr_grpo loss; see hybrid_scale
        if completion_budget is not None:
            self.add_callback(_BudgetCurriculum(self, completion_budget))
        self.baseline = baseline
        self.ledger = ledger
        self._last_rewards_per_func: torch.Tensor | None = None
        if stop_strings and not self.use_vllm:  # vLLM stops through generation_kwargs (train.grpo.arguments)
            workarounds.stop_at_single_tokens(self, stop_strings)
        if self.use_vllm and self.vllm_mode == "colocate" and workarounds.vllm_runs_on_cpu():
            # Looked up at each push, so a test can wrap it.
            self.vllm_generation.sync_weights = lambda: workarounds.push_weights_into_cpu_vllm(self)

    def _run_epoch(self, *args: Any, **kwargs: Any) -> None:
        if not workarounds.at_max_steps(self):
            super()._run_epoch(*args, **kwargs)

    def _save_checkpoint(self, model, trial) -> None:
        # A full disk mid-save is named with the checkpoint it cut short (torch and safetensors name no path); the
        # save lacks trainer_state.json (written last), so a resume sets it aside (train/records/rundir.py).
        name = f"checkpoint-{self.state.global_step}"
        with writing(Path(self.args.output_dir) / name, f"the trainer's {name}"):
            super()._save_checkpoint(model, trial)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        # Weights that do not fit the model (an edited checkpoint, another model's run): one paragraph naming the
        # checkpoint and the way back, instead of torch's list of size mismatches from deep inside train().
        try:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
        except (RuntimeError, ValueError) as error:
            checkpoint = Path(resume_from_checkpoint)
            raise unloadable_checkpoint(checkpoint, checkpoint_before(checkpoint), error) from None

    def _get_train_sampler(self, dataset=None):
        sampler = super()._get_train_sampler(dataset)
        # The trainer replaces its state object when it starts or resumes: read it at iteration time.
        return (
            workarounds.EpochSampler(sampler, lambda: self.state.epoch)
            if isinstance(sampler, RepeatSampler)
            else sampler
        )

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
        if self.hybrid_loss:
            output["advantages"] = output["advantages"] * self.hybrid_scale(output["completion_mask"].sum(-1))
        if self.model.training:  # the budget in force, in every step record (the curriculum changes it)
            self._metrics["train"]["completions/budget"].append(float(self.max_completion_length))
            # TRL's completions/clipped_ratio counts a completion as clipped when its last token is not EOS, so
            # every completion that stops after a stop string (</answer>, on vLLM) counts; this one counts only
            # the completions that used the whole token budget (train/records/format.py).
            lengths = self.accelerator.gather(output["completion_mask"].sum(-1))
            hit = (lengths >= self.max_completion_length).float().mean().item()
            self._metrics["train"]["completions/budget_hit_ratio"].append(hit)
        return output

    def set_completion_budget(self, tokens: int) -> None:
        """Change the rollouts' token budget between steps (the curriculum): TRL's length, the transformers
        generation config and the vLLM generator read it; Dr. GRPO's normalizer follows it."""
        self.max_completion_length = tokens
        if getattr(self, "generation_config", None) is not None:
            self.generation_config.max_new_tokens = tokens
            self.generation_kwargs["max_new_tokens"] = tokens
        if getattr(self, "vllm_generation", None) is not None:
            self.vllm_generation.max_completion_length = tokens

    def hybrid_scale(self, lengths: torch.Tensor) -> torch.Tensor:
        """Per-sequence advantage scale that turns TRL's Dr. GRPO loss into the hybrid GRPO / Dr. GRPO loss.

        With L_i the completion's length, L the token budget and alpha = min(1, L / 512) (HYBRID_FULL_BUDGET, the
        countdown study's
        weight on the Dr. GRPO term):
            hybrid = alpha * sum_i sum_t l_it / (B * L) + (1 - alpha) * (1 / B) * sum_i sum_t l_it / L_i
                   = sum_i sum_t s_i * l_it / (B * L),   s_i = alpha + (1 - alpha) * L / L_i,
        i.e. Dr. GRPO's normalization of a per-token loss scaled by s_i. The clipped policy term is linear in the
        advantage (s_i > 0), so scaling advantage i by s_i is exact for it; the KL term (beta > 0) keeps Dr. GRPO's
        normalization. tests/test_trainer.py checks it against TRL's own grpo and dr_grpo losses on a batch.
        """
        budget = self.max_completion_length
        alpha = min(1.0, budget / HYBRID_FULL_BUDGET)
        return alpha + (1 - alpha) * budget / lengths.clamp(min=1).to(torch.float32)

    def _advantages_without_baseline(self, local_count: int) -> torch.Tensor:
        rewards_per_func = self._last_rewards_per_func
        weights = self.reward_weights.to(rewards_per_func.device)
        rewards = weighted_rewards(rewards_per_func, weights.unsqueeze(0), dim=1)
        advantages = group_advantages(rewards, self.num_generations, baseline=self.baseline, scale=self.scale_rewards)
        # Completions no reward could score carry no signal, as in TRL.
        unscorable = torch.isnan(rewards_per_func).all(dim=1)
        advantages = torch.where(unscorable, torch.zeros_like(advantages), advantages)
        start = self.accelerator.process_index * local_count
        return advantages[start : start + local_count]


class _BudgetCurriculum(TrainerCallback):
    """Sets the token budget of each epoch's rollouts at its start (train.curriculum)."""

    def __init__(self, trainer: GRPOLabTrainer, budget_for_epoch: Callable[[int], int]):
        self.trainer = trainer
        self.budget_for_epoch = budget_for_epoch

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = math.floor((state.epoch or 0.0) + 1e-6) + 1  # 1-based, as the config counts them
        self.trainer.set_completion_budget(self.budget_for_epoch(epoch))
