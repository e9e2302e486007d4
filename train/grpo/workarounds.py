"""Every place grpo-lab works around a library's behaviour, in one module: what it works around, the version it was
written against, and how to tell it is no longer needed.

- `push_weights_into_cpu_vllm`: vLLM 0.32.0's CPU backend under TRL 1.14.2's colocated rollouts. No longer needed
  when tests/test_vllm_cpu.py passes with TRL's own `VLLMGeneration.sync_weights` (drop the assignment in
  `GRPOLabTrainer.__init__`).
- `stop_at_single_tokens`: TRL 1.14.2's transformers rollouts, which cannot stop on a string. No longer needed when
  TRL passes stop strings and the tokenizer to `generate` (grep `stop_strings` in trl/trainer/grpo_trainer.py).
- `EpochSampler`: TRL 1.14.2's `RepeatSampler`, one permutation per iteration, restarted on resume. No longer needed
  when TRL's sampler draws by epoch: tests/test_training.py's resumed-run prompt order passes with TRL's sampler.
- `at_max_steps`: transformers 5.17's Trainer checks max_steps only after a step, so a resume from the checkpoint
  of the last step trains one more and ends its epoch again. No longer needed when tests/test_resume_exact.py's
  resume from the last checkpoint passes with `GRPOLabTrainer._run_epoch` removed.
- `unsloth_grpo_config`: unsloth 2026.10.9's GRPOConfig `__init__`, which rewrites values from others. No longer
  needed when tests/test_unsloth_backend.py sees unsloth's GRPOConfig keep the values it is given.

The algorithm changes themselves (no-baseline arm, hybrid loss, reward ledger) hook two private TRL methods,
`_calculate_rewards` and `_generate_and_score_completions` (train/grpo/trainer.py); tests/test_trainer.py pins their
behaviour. trl stays below 1.15 for those hooks and because trl 1.15.0's GRPO loss always runs a Triton kernel and
fails on a CPU ("0 active drivers", STACK.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def at_max_steps(trainer: Any) -> bool:
    """True (and training told to stop) when the trainer has already made max_steps steps: transformers' epoch loop
    would otherwise train one step past max_steps on a resume from the last step's checkpoint, and end that epoch
    (its record, its evaluation) a second time."""
    if trainer.state.global_step >= trainer.state.max_steps > 0:
        trainer.control.should_training_stop = True
        return True
    return False


def vllm_runs_on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def push_weights_into_cpu_vllm(trainer: Any) -> None:
    """TRL's colocated weight push (VLLMGeneration.sync_weights), for vLLM's CPU backend.

    TRL 1.14.2 copies each parameter into the engine with the model's `load_weights`, which needs every vLLM
    parameter to keep its weight loader. vLLM 0.32.0's CPU backend repacks each linear layer's weight for its oneDNN
    kernels after loading and drops the original parameter (vllm/model_executor/layers/utils.py,
    dispatch_cpu_unquantized_gemm), so TRL's push fails with "'Parameter' object has no attribute 'weight_loader'".
    vLLM's own in-place reload (`reload_weights` of the model runner) restores the layers, loads the weights and
    repacks them; fed TRL's own iterator (LoRA merged, names mapped, then unmerged), it pushes the same weights.
    tests/test_vllm_cpu.py compares the served weights and log-probs with the policy's after every push.
    """
    generation = trainer.vllm_generation
    runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
    runner.reload_weights(weights_iterator=generation._iter_named_params(), is_checkpoint_format=True)
    generation.llm.reset_prefix_cache()


def stop_at_single_tokens(trainer: Any, stop_strings: tuple[str, ...]) -> None:
    """Stop transformers rollouts after a stop string that is one token, by making that token end a completion.

    TRL 1.14.2's generate call cannot stop on text (transformers needs the tokenizer passed to generate for that),
    but a one-token stop string can end a completion as an end-of-sequence id does: generation stops after it, it is
    kept, and TRL's completion mask ends there. A longer stop string leaves the rollouts as they are (the evaluation
    still stops there), and the run says so once.
    """
    ids = [trainer.processing_class(text=stop, add_special_tokens=False)["input_ids"] for stop in stop_strings]
    if any(len(token_ids) != 1 for token_ids in ids):
        from train.records.voice import warn

        warn(
            f"the stop strings {list(stop_strings)} are not single tokens of this tokenizer: training rollouts on "
            "transformers run to end-of-sequence or the token budget (evaluation and vLLM rollouts stop there). "
            "Set data.stop_strings: [] to make evaluation match, or train with vLLM (the unsloth backend)."
        )
        return
    trainer.eos_token_ids = [*trainer.eos_token_ids, *(token_ids[0] for token_ids in ids)]
    trainer.generation_config.eos_token_id = trainer.eos_token_ids
    trainer.generation_kwargs["eos_token_id"] = trainer.eos_token_ids


class EpochSampler:
    """TRL's RepeatSampler made to shuffle by the epoch it serves, so a resumed run trains the same prompts.

    TRL 1.14.2's sampler seeds its generator once and draws one permutation each time it is iterated: epoch e gets
    the e-th permutation of an uninterrupted run. A run resumed from a checkpoint builds a new sampler, which would
    give the resumed epoch the first permutation again (so a mid-epoch resume skips the wrong batches, and later
    epochs are reordered). This wrapper reseeds TRL's sampler and draws the permutations of the epochs before
    e = floor(state.epoch) before each iteration: the same order as TRL's uninterrupted run, and the same again after
    a resume. tests/test_training.py compares a killed-and-resumed run's per-step prompts with an uninterrupted run's.
    """

    def __init__(self, sampler: Any, current_epoch: Callable[[], float | None]):
        self.sampler = sampler
        self.current_epoch = current_epoch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        if self.sampler.shuffle:
            import torch

            self.sampler.generator.manual_seed(self.sampler.seed)
            epochs_before = math.floor((self.current_epoch() or 0.0) + 1e-6)
            for _ in range(epochs_before):  # the permutations of the epochs before this one
                torch.randperm(self.sampler.num_samples, generator=self.sampler.generator)
        return iter(self.sampler)


def unsloth_grpo_config(resolved: dict[str, Any], bf16_supported: bool | None = None) -> dict[str, Any]:
    """What the unsloth path changes in the GRPOConfig arguments `resolved` (train.grpo.arguments.resolve's, which
    merges them in): only unsloth's own choices and its GRPOConfig's quirks; every other value is the resolved one.

    Importing unsloth (2026.10.9) replaces trl's GRPOConfig with one whose `__init__` rewrites some values from others
    (tests/test_unsloth_backend.py checks them on the real class). beta, loss_type and epsilon_high are always in
    `resolved`, so unsloth's loss-dependent defaults never apply; besides them:
    - an explicit loss_type "dapo" would turn on mask_truncated_completions: pinned off, as on the hf backend.
    - dr_grpo turns group scaling off; scale_rewards=None is unsloth's way to keep it (trl then reads "group").
    - vllm_importance_sampling_correction: trl defaults it on, unsloth off; `resolved` always carries ours
      (`train.vllm_importance_sampling`; unset, off on unsloth: train.grpo.arguments.vllm_importance_sampling).
    Unsloth's own choices: bf16 where supported, else fp16 (the dtype unsloth loads in); gradient_checkpointing on,
    as in every unsloth notebook. Not here: use_vllm and vllm_mode, which unsloth's trainer sets itself when the
    model has a vLLM engine.
    """
    if bf16_supported is None:
        from unsloth import is_bfloat16_supported

        bf16_supported = is_bfloat16_supported()
    dr_grpo_keeps_scaling = resolved["loss_type"] == "dr_grpo" and resolved["scale_rewards"] == "group"
    return {
        "bf16": bf16_supported,
        "fp16": not bf16_supported,
        "gradient_checkpointing": True,
        "mask_truncated_completions": False,
        "scale_rewards": None if dr_grpo_keeps_scaling else resolved["scale_rewards"],
    }
