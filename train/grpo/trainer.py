"""TRL's GRPOTrainer, built from our config, plus the two things TRL lacks: a no-baseline arm and reward ledgers.

`GRPOLabTrainer` subclasses `trl.GRPOTrainer` and changes nothing about how GRPO learns except when asked (its
GRPOConfig and its extra arguments come from one place, train/grpo/arguments.py's `resolve`):
- `train.baseline: none` replaces TRL's advantages (which always subtract the group mean) with the raw reward
  (scaled as `train.scale_rewards` says) through `train.grpo.advantages.group_advantages`;
- every batch of rewards TRL computes for training is also handed to a `RewardLedger`, which the callbacks turn into
  per-step reward sums and the epoch summary (epoch/accumulated_reward, epoch/mean_reward, epoch/num_samples).

Both hooks wrap private TRL methods (`_calculate_rewards`, `_generate_and_score_completions`); trl is pinned below
1.15 and tests/test_trainer.py pins their behaviour, so an upgrade that moves them fails a test, not a run. One more
wraps transformers' `_run_epoch`, so a resume from the checkpoint of the last step trains nothing
(tests/test_resume_exact.py).
The ledger and the records it feeds are train/records/format.py's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from train.config import HYBRID_FULL_BUDGET
from train.errors import writing
from train.grpo.advantages import group_advantages
from train.records.format import RewardLedger, weighted_rewards


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
            self._stop_at_single_tokens(stop_strings)
        if self.use_vllm and self.vllm_mode == "colocate" and _vllm_runs_on_cpu():
            self.vllm_generation.sync_weights = self._push_weights_into_cpu_vllm

    def _push_weights_into_cpu_vllm(self) -> None:
        """TRL's colocated weight push (VLLMGeneration.sync_weights), for vLLM's CPU backend.

        TRL copies each parameter into the engine with the model's `load_weights`, which needs every vLLM parameter
        to keep its weight loader. vLLM's CPU backend repacks each linear layer's weight for its oneDNN kernels after
        loading and drops the original parameter (vllm/model_executor/layers/utils.py,
        dispatch_cpu_unquantized_gemm), so TRL's push fails with "'Parameter' object has no attribute
        'weight_loader'". vLLM's own in-place reload (`reload_weights` of the model runner) restores the layers,
        loads the weights and repacks them; fed TRL's own iterator (LoRA merged, names mapped, then unmerged), it
        pushes the same weights. tests/test_vllm_cpu.py compares the served weights and log-probs with the policy's
        after every push.
        """
        generation = self.vllm_generation
        runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
        runner.reload_weights(weights_iterator=generation._iter_named_params(), is_checkpoint_format=True)
        generation.llm.reset_prefix_cache()

    def _stop_at_single_tokens(self, stop_strings: tuple[str, ...]) -> None:
        """Stop transformers rollouts after a stop string that is one token, by making that token end a completion.

        TRL's generate call cannot stop on text (transformers needs the tokenizer passed to generate for that), but
        a one-token stop string can end a completion as an end-of-sequence id does: generation stops after it, it
        is kept, and TRL's completion mask ends there. A longer stop string leaves the rollouts as they are (the
        evaluation still stops there), and the run says so once.
        """
        ids = [self.processing_class(text=stop, add_special_tokens=False)["input_ids"] for stop in stop_strings]
        if any(len(token_ids) != 1 for token_ids in ids):
            warnings.warn(
                f"the stop strings {list(stop_strings)} are not single tokens of this tokenizer: training rollouts on "
                "transformers run to end-of-sequence or the token budget (evaluation and vLLM rollouts stop there). "
                "Set data.stop_strings: [] to make evaluation match, or train with vLLM (the unsloth backend).",
                stacklevel=3,
            )
            return
        self.eos_token_ids = [*self.eos_token_ids, *(token_ids[0] for token_ids in ids)]
        self.generation_config.eos_token_id = self.eos_token_ids
        self.generation_kwargs["eos_token_id"] = self.eos_token_ids

    def _run_epoch(self, *args: Any, **kwargs: Any) -> None:
        # transformers checks max_steps only after a step: resumed from the checkpoint of the last step, it would
        # train one step past max_steps and end that epoch (its record, its evaluation) a second time.
        if self.state.global_step >= self.state.max_steps > 0:
            self.control.should_training_stop = True
            return
        super()._run_epoch(*args, **kwargs)

    def _save_checkpoint(self, model, trial) -> None:
        # A full disk mid-save is named with the checkpoint it cut short (torch and safetensors name no path); the
        # save lacks trainer_state.json (written last), so a resume sets it aside (train/records/rundir.py).
        name = f"checkpoint-{self.state.global_step}"
        with writing(Path(self.args.output_dir) / name, f"the trainer's {name}"):
            super()._save_checkpoint(model, trial)

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


def _vllm_runs_on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()
