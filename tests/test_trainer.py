"""GRPOLabTrainer's hooks into TRL, run for real on a tiny random model: advantages and the reward ledger."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset
from trl import GRPOTrainer

from train.config import validate_config
from train.grpo.advantages import group_advantages
from train.grpo.arguments import resolve
from train.grpo.ledger import RewardLedger
from train.grpo.trainer import GRPOLabTrainer
from train.models.builtin import build_tokenizer, random_tiny_model

GENERATIONS = 4


def length_reward(completion_ids, **kwargs):
    """Reward = completion length in tokens: recomputable from the trainer's output, varied across a group."""
    return [float(len(ids)) for ids in completion_ids]


def half_reward(completions, **kwargs):
    return [0.5 for _ in completions]


def tiny_train_config(**train):
    """A config for the tiny model: no KL (no reference model), groups of GENERATIONS, plus the given train keys."""
    return validate_config(
        {"model": {"max_seq_length": 64}, "train": {"beta": 0.0, "num_generations": GENERATIONS, **train}}
    )


def make_trainer(tmp_path, baseline: str, scale: str, stop_strings: tuple[str, ...] = ()) -> GRPOLabTrainer:
    tokenizer = build_tokenizer()
    model = random_tiny_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=0)
    cfg = tiny_train_config(
        baseline=baseline, scale_rewards=scale, per_device_train_batch_size=8, max_completion_length=10, temperature=1.5
    )
    weights = [1.0, 2.0]
    dataset = Dataset.from_list([{"prompt": f"{a} {b} -> {a + b}\n"} for a, b in [(1, 2), (3, 4)]])
    return GRPOLabTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[length_reward, half_reward],
        args=resolve(cfg, "hf", output_dir=tmp_path, reward_weights=weights).grpo_config(),
        train_dataset=dataset,
        baseline=baseline,
        ledger=RewardLedger(["length_reward", "half_reward"], weights),
        stop_strings=stop_strings,
    )


def generate_and_score(trainer: GRPOLabTrainer) -> tuple[dict, torch.Tensor]:
    rows = [{"prompt": row["prompt"]} for row in trainer.train_dataset for _ in range(GENERATIONS)]
    trainer.model.train()
    torch.manual_seed(0)
    output = trainer._generate_and_score_completions(rows)
    lengths = output["completion_mask"].sum(dim=1).float()
    return output, lengths + 2.0 * 0.5  # the weighted total reward of each completion


@pytest.mark.parametrize("scale", ["batch", "none"])  # group scaling without a baseline is refused by the config
def test_no_baseline_advantage_is_the_raw_reward_scaled(tmp_path, scale):
    trainer = make_trainer(tmp_path, baseline="none", scale=scale)
    output, rewards = generate_and_score(trainer)
    expected = group_advantages(rewards, GENERATIONS, baseline="none", scale=scale)
    torch.testing.assert_close(output["advantages"], expected)
    if scale == "none":
        torch.testing.assert_close(output["advantages"], rewards)  # A_i = r_i: nothing subtracted or divided


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_mean_baseline_leaves_trl_advantages_equal_to_group_advantages(tmp_path, scale):
    trainer = make_trainer(tmp_path, baseline="mean", scale=scale)
    output, rewards = generate_and_score(trainer)
    expected = group_advantages(rewards, GENERATIONS, baseline="mean", scale=scale)
    torch.testing.assert_close(output["advantages"], expected, atol=1e-5, rtol=1e-5)


def test_ledger_records_each_generated_completion_once_with_weights(tmp_path):
    trainer = make_trainer(tmp_path, baseline="mean", scale="group")
    _, rewards = generate_and_score(trainer)
    totals = trainer.ledger.take_epoch()
    assert totals.num_samples == 2 * GENERATIONS
    assert totals.reward_sum == pytest.approx(float(rewards.sum()))
    assert totals.func_means()["half_reward"] == pytest.approx(0.5)


def test_ledger_ignores_scoring_outside_training(tmp_path):
    trainer = make_trainer(tmp_path, baseline="mean", scale="group")
    trainer.model.eval()  # TRL's eval mode scores completions too: they are not training samples
    rows = [{"prompt": row["prompt"]} for row in trainer.train_dataset for _ in range(GENERATIONS)]
    trainer._calculate_rewards(rows, [r["prompt"] for r in rows], ["x"] * len(rows), [[1]] * len(rows))
    assert trainer.ledger.take_epoch().num_samples == 0


def test_trl_private_methods_we_wrap_keep_their_signatures():
    # GRPOLabTrainer overrides these private TRL methods; an upgrade that changes them must fail here first.
    assert list(inspect.signature(GRPOTrainer._calculate_rewards).parameters) == [
        "self",
        "inputs",
        "prompts",
        "completions",
        "completion_ids_list",
    ]
    assert list(inspect.signature(GRPOTrainer._generate_and_score_completions).parameters) == ["self", "inputs"]


def test_grpo_config_passes_every_grpo_knob_explicitly(tmp_path):
    cfg = validate_config(
        {
            "train": {
                "beta": 0.0,
                "clip_eps": 0.3,
                "loss_type": "dr_grpo",
                "scale_rewards": False,
                "num_generations": 4,
                "per_device_train_batch_size": 8,
                "learning_rate": 3e-5,
                "temperature": 0.7,
                "num_iterations": 2,
                "warmup_ratio": 0.1,
            }
        }
    )
    args = resolve(cfg, "hf", output_dir=tmp_path, reward_weights=[1.0, 0.5]).grpo_config()
    assert (args.beta, args.epsilon, args.epsilon_high) == (0.0, 0.3, 0.3)
    assert (args.loss_type, args.scale_rewards) == ("dr_grpo", "none")
    assert (args.num_generations, args.per_device_train_batch_size) == (4, 8)
    assert (args.learning_rate, args.temperature, args.num_iterations) == (3e-5, 0.7, 2)
    assert args.warmup_steps == 0.1  # transformers 5: a float below 1 is a ratio of the total steps
    assert args.reward_weights == [1.0, 0.5]
    assert args.logging_steps == 1 and args.report_to == [] and args.bf16 is False


@pytest.mark.parametrize(
    ("per_device", "accumulation", "iterations"),
    [(8, 1, 2), (4, 2, 1), (4, 2, 2)],
    ids=["num_iterations=2", "grad_accum=2", "both"],
)
def test_epoch_counts_each_completion_once(tmp_path, per_device, accumulation, iterations):
    """Gradient accumulation splits one generation over micro-steps, num_iterations reuses it for more optimizer
    passes: neither may count a completion twice. 2 prompts x 4 generations = 8 completions per epoch."""
    tokenizer = build_tokenizer()
    cfg = tiny_train_config(
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        num_iterations=iterations,
        max_completion_length=6,
        num_epochs=1,
    )
    ledger = RewardLedger(["length_reward", "half_reward"], [1.0, 2.0])
    trainer = GRPOLabTrainer(
        model=random_tiny_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2),
        processing_class=tokenizer,
        reward_funcs=[length_reward, half_reward],
        args=resolve(cfg, "hf", output_dir=tmp_path, reward_weights=[1.0, 2.0]).grpo_config(),
        train_dataset=Dataset.from_list([{"prompt": "1 2 -> 3\n"}, {"prompt": "3 4 -> 7\n"}]),
        ledger=ledger,
    )
    trainer.train()
    assert trainer.state.global_step == iterations  # the batch was reused for num_iterations optimizer steps
    totals = ledger.take_epoch()
    assert totals.num_samples == 2 * GENERATIONS
    assert totals.func_means()["half_reward"] == pytest.approx(0.5)


def test_a_one_token_stop_string_ends_transformers_rollouts_like_end_of_sequence(tmp_path):
    trainer = make_trainer(tmp_path, "mean", "group", stop_strings=("</answer>",))
    answer_close = trainer.processing_class.convert_tokens_to_ids("</answer>")
    assert answer_close in trainer.eos_token_ids  # TRL's completion mask ends there too
    assert answer_close in trainer.generation_config.eos_token_id


def test_a_longer_stop_string_leaves_transformers_rollouts_alone_and_says_so(tmp_path, capsys):
    trainer = make_trainer(tmp_path, "mean", "group", stop_strings=("</answer>\n",))
    assert trainer.eos_token_ids == [trainer.processing_class.eos_token_id]
    assert "not single tokens" in capsys.readouterr().err


def test_vllm_rollouts_stop_through_generation_kwargs(tmp_path):
    cfg = tiny_train_config(max_completion_length=10)
    args = resolve(
        cfg, "hf", output_dir=tmp_path, reward_weights=[1.0], stop_strings=("</answer>",), vllm=True
    ).grpo_config()
    assert args.generation_kwargs == {"stop": ["</answer>"], "include_stop_str_in_output": True}
    assert resolve(cfg, "hf", output_dir=tmp_path, stop_strings=("</answer>",)).grpo_config().generation_kwargs is None


def test_hybrid_loss_is_alpha_dr_grpo_plus_one_minus_alpha_grpo_on_a_hand_made_batch(tmp_path):
    """The hybrid loss built on TRL's own dr_grpo loss (advantages scaled per sequence) equals the mix of TRL's own
    grpo and dr_grpo losses, alpha = min(1, budget / 512), with beta 0."""
    trainer = make_trainer(tmp_path, "mean", "group")
    output, _ = generate_and_score(trainer)
    mask = torch.ones_like(output["completion_mask"])
    for row, length in enumerate([1, 3, 10, 6, 2, 10, 4, 7]):  # hand-made completion lengths within the budget 10
        mask[row, length:] = 0
    batch = {**output, "completion_mask": mask}
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop; one micro-batch here

    def loss(loss_type: str, advantages: torch.Tensor) -> float:
        trainer.loss_type = loss_type
        return float(trainer._compute_loss(trainer.model, {**batch, "advantages": advantages}))

    grpo, dr_grpo = loss("grpo", output["advantages"]), loss("dr_grpo", output["advantages"])
    hybrid = loss("dr_grpo", output["advantages"] * trainer.hybrid_scale(mask.sum(-1)))
    alpha = 10 / 512
    assert hybrid == pytest.approx(alpha * dr_grpo + (1 - alpha) * grpo, rel=1e-4)  # float32 sums
    assert trainer.hybrid_scale(torch.tensor([10, 5])).tolist() == pytest.approx([1.0, alpha + (1 - alpha) * 2])


def test_hybrid_is_trls_dr_grpo_loss_with_scaled_advantages(tmp_path):
    cfg = tiny_train_config(loss_type="hybrid", max_completion_length=10)
    assert resolve(cfg, "hf", output_dir=tmp_path).grpo_config().loss_type == "dr_grpo"


def test_the_curriculum_sets_each_epochs_token_budget(tmp_path):
    from train.grpo.trainer import _BudgetCurriculum

    cfg = tiny_train_config(
        max_completion_length=12,
        curriculum=[{"until_epoch": 1, "max_completion_length": 4}, {"until_epoch": 3, "max_completion_length": 8}],
    )
    assert [cfg.train.completion_budget(epoch) for epoch in (1, 2, 3, 4)] == [4, 8, 8, 12]
    trainer = make_trainer(tmp_path, "mean", "group")
    curriculum = _BudgetCurriculum(trainer, cfg.train.completion_budget)
    for start_of_epoch, budget in [(0.0, 4), (1.0, 8), (2.0, 8), (3.0, 12)]:
        curriculum.on_epoch_begin(None, SimpleNamespace(epoch=start_of_epoch), None)
        assert trainer.max_completion_length == trainer.generation_config.max_new_tokens == budget
    output, _ = generate_and_score(trainer)
    assert output["completion_ids"].shape[1] <= 12
    assert trainer._metrics["train"]["completions/budget"][-1] == 12.0


def test_curriculum_stages_must_be_in_order():
    from train.errors import UserError

    with pytest.raises(UserError, match="increasing until_epoch"):
        tiny_train_config(
            curriculum=[{"until_epoch": 3, "max_completion_length": 8}, {"until_epoch": 1, "max_completion_length": 4}]
        )


@pytest.mark.parametrize("correct", [True, False])
def test_vllm_importance_sampling_correction_is_ours_not_a_library_default(tmp_path, correct):
    """trl defaults it on and unsloth off: resolve always passes train.vllm_importance_sampling."""
    cfg = tiny_train_config(max_completion_length=10, vllm_importance_sampling=correct)
    assert resolve(cfg, "hf", output_dir=tmp_path).grpo_config().vllm_importance_sampling_correction is correct


def test_budget_hit_ratio_counts_only_completions_that_used_the_whole_budget(tmp_path):
    """TRL's clipped_ratio counts every completion whose last token is not EOS; ours counts length == budget."""
    trainer = make_trainer(tmp_path, "mean", "group")
    output, _ = generate_and_score(trainer)
    lengths = output["completion_mask"].sum(dim=1)
    expected = (lengths >= trainer.max_completion_length).float().mean().item()
    assert trainer._metrics["train"]["completions/budget_hit_ratio"][-1] == pytest.approx(expected)
