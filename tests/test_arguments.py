"""`train.grpo.arguments.resolve`: the one translation of the config into TRL's GRPOConfig and GRPOLabTrainer's
arguments, pinned for every loss type on both backends (hand-written expected values: what each config key must
become)."""

from __future__ import annotations

import pytest

from train.config import CurriculumStage, load_config
from train.grpo.arguments import resolve
from train.lab.memory_plan import settings_from_config

QUICKSTART = "experiment_configs/quickstart.yaml"

# The quickstart's arguments on the hf backend on a CPU, key by key from experiment_configs/quickstart.yaml and the
# schema's defaults (train/config.py).
HF_CPU = {
    "output_dir": "out",
    "num_train_epochs": 6,
    "max_steps": -1,
    "learning_rate": 2e-4,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0.0,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "optim": "adamw_torch",  # auto on a CPU
    "beta": 0.04,
    "epsilon": 0.2,
    "epsilon_high": 0.2,  # clip_eps_high unset: clip_eps
    "loss_type": "grpo",
    "scale_rewards": "group",
    "num_generations": 8,
    "per_device_train_batch_size": 16,
    "gradient_accumulation_steps": 1,
    "num_iterations": 1,
    "max_completion_length": 32,
    "temperature": 1.0,
    "top_p": 1.0,
    "vllm_importance_sampling_correction": True,  # unset: on, TRL's default, off the unsloth backend
    "seed": 42,
    "reward_weights": [1.0, 1.0, 1.0],
    "gradient_checkpointing": False,
    "logging_steps": 1,
    "save_strategy": "no",
    "save_steps": 500,
    "save_total_limit": 2,
    "report_to": "none",
    "bf16": False,
    "fp16": False,
    "disable_tqdm": False,
    "log_completions": False,
    "dataloader_num_workers": 0,
    "dataloader_pin_memory": False,
}
# What the unsloth backend changes (bf16 supported): 8-bit AdamW for auto, its mixed precision and checkpointing,
# mask_truncated_completions pinned off, and the vLLM importance-sampling correction off when unset (unsloth's default).
UNSLOTH = {
    "optim": "adamw_8bit",
    "vllm_importance_sampling_correction": False,
    "bf16": True,
    "fp16": False,
    "gradient_checkpointing": True,
    "mask_truncated_completions": False,
}
# The loss types: the key changes each makes, on hf and on unsloth (where dr_grpo with group scaling passes
# scale_rewards=None, unsloth's way to keep group scaling).
LOSSES = {
    "grpo": ({}, {}),
    "bnpo": ({"loss_type": "bnpo"}, {"loss_type": "bnpo"}),
    "dapo": ({"loss_type": "dapo"}, {"loss_type": "dapo"}),
    "dr_grpo": ({"loss_type": "dr_grpo"}, {"loss_type": "dr_grpo", "scale_rewards": None}),
    "hybrid": ({"loss_type": "dr_grpo"}, {"loss_type": "dr_grpo", "scale_rewards": None}),
}


def quickstart(**train):
    cfg = load_config(QUICKSTART)
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=train)})


@pytest.mark.parametrize("loss_type", list(LOSSES))
@pytest.mark.parametrize("backend", ["hf", "unsloth"])
def test_every_loss_type_resolves_to_these_arguments_on_each_backend(loss_type, backend):
    hf_changes, unsloth_changes = LOSSES[loss_type]
    expected = HF_CPU | hf_changes if backend == "hf" else HF_CPU | UNSLOTH | unsloth_changes
    resolved = resolve(
        quickstart(loss_type=loss_type),
        backend,
        output_dir="out",
        reward_weights=[1.0, 1.0, 1.0],
        on_gpu=False,
        bf16_supported=True,
    )
    assert resolved.grpo == expected
    assert resolved.trainer == {
        "baseline": "mean",
        "stop_strings": (),
        "hybrid_loss": loss_type == "hybrid",
        "completion_budget": None,
    }


def test_on_a_gpu_auto_is_8bit_adamw_with_bf16_and_pinned_memory():
    grpo = resolve(quickstart(), "hf", on_gpu=True, bf16_supported=True).grpo
    assert (grpo["optim"], grpo["bf16"], grpo["fp16"], grpo["dataloader_pin_memory"]) == (
        "adamw_8bit",
        True,
        False,
        True,
    )


def test_unsloth_without_bf16_trains_in_fp16():
    grpo = resolve(quickstart(), "unsloth", on_gpu=True, bf16_supported=False).grpo
    assert (grpo["bf16"], grpo["fp16"]) == (False, True)


def test_explicit_clip_high_optimizer_and_no_baseline_reach_their_arguments():
    resolved = resolve(
        quickstart(clip_eps_high=0.28, optim="paged_adamw_8bit", baseline="none", scale_rewards="none", beta=0.0),
        "hf",
        on_gpu=False,
    )
    assert {key: resolved.grpo[key] for key in ("epsilon", "epsilon_high", "optim", "scale_rewards", "beta")} == {
        "epsilon": 0.2,
        "epsilon_high": 0.28,
        "optim": "paged_adamw_8bit",
        "scale_rewards": "none",
        "beta": 0.0,
    }
    assert resolved.trainer["baseline"] == "none"


def test_the_curriculum_hands_the_trainer_its_budget_per_epoch():
    cfg = quickstart(curriculum=[CurriculumStage(until_epoch=2, max_completion_length=16)])
    budget = resolve(cfg, "hf", on_gpu=False).trainer["completion_budget"]
    assert [budget(epoch) for epoch in (1, 2, 3)] == [16, 16, 32]


def test_stop_strings_go_to_vllm_only_when_it_generates_the_rollouts():
    on_vllm = resolve(quickstart(), "hf", on_gpu=False, stop_strings=("</answer>",), vllm=True)
    assert on_vllm.grpo["generation_kwargs"] == {"stop": ["</answer>"], "include_stop_str_in_output": True}
    assert on_vllm.trainer["stop_strings"] == ("</answer>",)
    assert "generation_kwargs" not in resolve(quickstart(), "hf", on_gpu=False, stop_strings=("</answer>",)).grpo


@pytest.mark.parametrize("backend", ["hf", "unsloth"])
def test_the_memory_planner_plans_the_resolved_arguments(backend):
    cfg = quickstart(beta=0.1, optim="auto", gradient_checkpointing=True)
    settings = settings_from_config(cfg, backend)
    grpo = resolve(cfg, backend, on_gpu=True, bf16_supported=True).grpo
    assert (settings.optimizer, settings.beta, settings.completion_tokens) == ("adamw_8bit", 0.1, 32)
    assert (settings.optimizer, settings.beta, settings.completion_tokens) == (
        grpo["optim"],
        grpo["beta"],
        grpo["max_completion_length"],
    )
