"""Group-relative advantages (train/grpo/advantages.py) and the reward ledger arithmetic (train/grpo/trainer.py).

Expected values are worked out by hand in the comments. The unbiased std of n values is
sqrt(sum (r - mean)^2 / (n - 1)); eps is 1e-4 throughout, TRL's constant.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from trl.trainer.utils import nanstd

from train.grpo.advantages import group_advantages
from train.grpo.ledger import RewardLedger, RewardTotals, epoch_fields, step_fields, totals_from_step_records
from train.grpo.trainer import GRPOLabTrainer

EPS = 1e-4
SQRT_HALF = math.sqrt(0.5)  # unbiased std of a group {1, 0}: sqrt((0.5^2 + 0.5^2) / 1)
SQRT_THIRD = math.sqrt(1 / 3)  # unbiased std of {1, 0, 0, 1}: sqrt(4 * 0.5^2 / 3)


def advantages(rewards: list[float], group_size: int, **kwargs) -> list[float]:
    return group_advantages(torch.tensor(rewards), group_size, **kwargs).tolist()


# -- hand-computed values -----------------------------------------------------------------------------------------


def test_group_of_two_divides_by_each_groups_unbiased_std():
    # groups [1, 0] and [0, 1]: mean 0.5, centered +-0.5, std sqrt(0.5) = 0.70711
    # A = 0.5 / (0.70711 + 0.0001) = 0.70701
    expected = 0.5 / (SQRT_HALF + EPS)
    assert expected == pytest.approx(0.7070068, abs=1e-7)
    assert advantages([1, 0, 0, 1], 2) == pytest.approx([expected, -expected, -expected, expected], rel=1e-6)


def test_one_group_of_four_uses_bessels_n_minus_1():
    # one group [1, 0, 0, 1]: mean 0.5, centered +-0.5, var = 4 * 0.25 / 3 = 1/3, std = 0.57735
    # A = 0.5 / 0.57745 = 0.86588 (the biased std, 0.5, would give 0.9998 instead)
    expected = 0.5 / (SQRT_THIRD + EPS)
    assert expected == pytest.approx(0.8658754, abs=1e-7)
    assert advantages([1, 0, 0, 1], 4) == pytest.approx([expected, -expected, -expected, expected], rel=1e-6)


def test_batch_scale_divides_by_the_std_of_every_reward():
    # [1, 0 | 2, 2]: centered by group means 0.5 and 2 -> [0.5, -0.5, 0, 0]
    # batch std of [1, 0, 2, 2]: mean 1.25, squares 0.0625 + 1.5625 + 0.5625 + 0.5625 = 2.75, /3 -> sqrt = 0.95743
    # A = +-0.5 / 0.95753 = +-0.52218; the group scale would give +-0.70701
    batch_std = math.sqrt(2.75 / 3)
    expected = 0.5 / (batch_std + EPS)
    assert expected == pytest.approx(0.5221784, abs=1e-7)
    assert advantages([1, 0, 2, 2], 2, scale="batch") == pytest.approx([expected, -expected, 0, 0], rel=1e-6)


def test_no_scale_is_the_centered_reward_with_no_eps():
    # Dr. GRPO: A = r - group mean, exactly: [1 - 0.5, 0 - 0.5, 2 - 2, 2 - 2]
    assert advantages([1, 0, 2, 2], 2, scale="none") == [0.5, -0.5, 0.0, 0.0]


def test_no_baseline_divides_the_raw_reward_by_the_group_std():
    # baseline none: A = r / (group std + eps); group [1, 0]: std 0.70711 -> [1 / 0.70721, 0 / 0.70721]
    # group [2, 2]: std 0 -> 2 / 0.0001 = 20000 (a constant group is not neutral without a baseline)
    expected = 1 / (SQRT_HALF + EPS)
    assert expected == pytest.approx(1.4140136, abs=1e-7)
    assert advantages([1, 0, 2, 2], 2, baseline="none") == pytest.approx([expected, 0, 20000, 20000], rel=1e-6)


def test_no_baseline_with_batch_scale():
    # A = r / (batch std + eps) = [1, 0, 2, 2] / 0.95753
    scale = math.sqrt(2.75 / 3) + EPS
    got = advantages([1, 0, 2, 2], 2, baseline="none", scale="batch")
    assert got == pytest.approx([1 / scale, 0, 2 / scale, 2 / scale], rel=1e-6)


def test_no_baseline_and_no_scale_is_the_raw_reward():
    assert advantages([1, 0, 2, 2], 2, baseline="none", scale="none") == [1.0, 0.0, 2.0, 2.0]


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_equal_rewards_in_a_group_give_zero_under_a_mean_baseline(scale):
    # group [3, 3]: r - mean = 0, and 0 / (anything + eps) = 0, whatever the other group does
    got = advantages([3, 3, 0, 1], 2, scale=scale)
    assert got[:2] == [0.0, 0.0]
    assert got[2] < 0 < got[3]


def test_group_of_one_has_zero_spread_and_zero_advantage():
    # one completion per group: no std (n - 1 = 0), defined as 0, and r - mean = 0; torch.std would give NaN
    assert advantages([1, 5, 2], 1) == [0.0, 0.0, 0.0]


def test_integer_rewards_are_treated_as_floats():
    got = group_advantages(torch.tensor([1, 0, 0, 1]), 2)
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx(advantages([1.0, 0.0, 0.0, 1.0], 2))


def test_custom_eps_is_added_to_the_std():
    # group [1, 0] with eps 0.5: 0.5 / (0.70711 + 0.5) = 0.41421
    assert advantages([1, 0], 2, eps=0.5)[0] == pytest.approx(0.5 / (SQRT_HALF + 0.5), rel=1e-6)


@pytest.mark.parametrize(
    ("rewards", "group_size", "kwargs", "message"),
    [
        (torch.zeros(2, 4), 4, {}, "1-D tensor, got shape \\(2, 4\\)"),
        (torch.zeros(6), 4, {}, "6 rewards do not split into groups of 4"),
        (torch.zeros(4), 0, {}, "do not split into groups of 0"),
        (torch.zeros(4), 2, {"baseline": "median"}, "baseline must be 'mean' or 'none'"),
        (torch.zeros(4), 2, {"scale": "token"}, "scale must be 'group', 'batch' or 'none'"),
    ],
    ids=["2-D", "not-divisible", "group-0", "bad-baseline", "bad-scale"],
)
def test_bad_input_is_refused(rewards, group_size, kwargs, message):
    with pytest.raises(ValueError, match=message):
        group_advantages(rewards, group_size, **kwargs)


# -- the same as TRL's GRPOTrainer -----------------------------------------------------------------------------------


def trl_advantages(rewards: torch.Tensor, num_generations: int, scale_rewards: str) -> torch.Tensor:
    """TRL 1.14.2 GRPOTrainer._generate_and_score_completions, multi_objective_aggregation="sum_then_normalize",
    copied line for line (no unscorable rows, so rewards has no NaN)."""
    mean_grouped_rewards = torch.nanmean(rewards.view(-1, num_generations), dim=1)
    mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(num_generations, dim=0)
    if scale_rewards in ["group", "none"]:
        if num_generations > 1:
            std_rewards = nanstd(rewards.view(-1, num_generations), dim=1)
            std_rewards = std_rewards.repeat_interleave(num_generations, dim=0)
        else:
            std_rewards = torch.zeros_like(rewards)
    elif scale_rewards == "batch":
        std_rewards = nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
    advantages = rewards - mean_grouped_rewards
    if scale_rewards != "none":
        advantages = advantages / (std_rewards + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0)


@st.composite
def reward_batches(draw, values):
    group_size = draw(st.integers(2, 8))
    groups = draw(st.integers(1, 5))
    rewards = draw(st.lists(values, min_size=group_size * groups, max_size=group_size * groups))
    return torch.tensor(rewards, dtype=torch.float32), group_size


# Reward-like values (steps of 0.25, so constant groups occur) and arbitrary floats.
REWARD_LIKE = st.integers(-8, 8).map(lambda n: n / 4)
ANY_FLOAT = st.floats(-10, 10, allow_nan=False, width=32)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@settings(max_examples=150, deadline=None)
@given(batch=st.one_of(reward_batches(REWARD_LIKE), reward_batches(ANY_FLOAT)))
def test_mean_baseline_equals_trls_grpo_trainer(scale, batch):
    rewards, group_size = batch
    ours = group_advantages(rewards, group_size, baseline="mean", scale=scale)
    trl = trl_advantages(rewards, group_size, scale)
    if scale == "group":
        # A group of equal rewards: ours is exactly 0; TRL's float32 mean can miss the value by an ulp, which its
        # 1 / (0 + 1e-4) scaling magnifies (5.5781 x 3 gave 2.8e-5), so only a bound holds there.
        groups = rewards.view(-1, group_size)
        constant = (groups == groups[:, :1]).all(dim=1).repeat_interleave(group_size)
        assert (ours[constant] == 0).all()
        assert (trl[constant].abs() <= 1e-2).all()  # |r| <= 10: an ulp is < 1e-6, over 1e-4
        ours, trl = ours[~constant], trl[~constant]
    torch.testing.assert_close(ours, trl, rtol=1e-4, atol=1e-5)


# -- the trainer's no-baseline arm (GRPOLabTrainer._advantages_without_baseline on a stand-in trainer) ------------


def no_baseline_trainer(rewards_per_func: list[list[float]], weights: list[float], scale: str, process_index=0):
    return SimpleNamespace(
        _last_rewards_per_func=torch.tensor(rewards_per_func),
        reward_weights=torch.tensor(weights),
        num_generations=2,
        baseline="none",
        scale_rewards=scale,
        accelerator=SimpleNamespace(process_index=process_index),
    )


def test_no_baseline_arm_weights_and_sums_each_completions_rewards():
    # weights [1, 0.5]: totals 1 + 0.5 * 2 = 2, 0 + 0.5 * 0 = 0, 1 + NaN skipped = 1, 1 + 0.5 * 2 = 2
    stub = no_baseline_trainer([[1, 2], [0, 0], [1, math.nan], [1, 2]], [1.0, 0.5], scale="none")
    assert GRPOLabTrainer._advantages_without_baseline(stub, 4).tolist() == [2.0, 0.0, 1.0, 2.0]


def test_no_baseline_arm_gives_unscorable_completions_zero_and_slices_per_process():
    # totals [3, NaN -> 0 | 1, 1]; the unscorable one is forced to 0. Process 1 of 2 keeps rows 2..3.
    stub = no_baseline_trainer([[3], [math.nan], [1], [1]], [1.0], scale="none", process_index=1)
    assert GRPOLabTrainer._advantages_without_baseline(stub, 2).tolist() == [1.0, 1.0]
    stub.accelerator.process_index = 0
    assert GRPOLabTrainer._advantages_without_baseline(stub, 2).tolist() == [3.0, 0.0]


def test_no_baseline_arm_scales_as_configured():
    # group [1, 0] std 0.70711: [1 / 0.70721, 0]; group [2, 0] std 1.41421: [2 / 1.41431, 0]
    stub = no_baseline_trainer([[1], [0], [2], [0]], [1.0], scale="group")
    got = GRPOLabTrainer._advantages_without_baseline(stub, 4).tolist()
    assert got == pytest.approx([1 / (SQRT_HALF + EPS), 0, 2 / (2 * SQRT_HALF + EPS), 0], rel=1e-6)


# -- the reward ledger ------------------------------------------------------------------------------------------------

NAN = math.nan


def ledger_with_two_batches() -> RewardLedger:
    ledger = RewardLedger(["fmt", "acc"], [1.0, 0.5])
    # batch 1: weighted totals 1 + 0.5*2 = 2, 0 + NaN = 0, NaN + NaN = 0 -> reward_sum 2
    #          fmt: 1 + 0 = 1 over 2 scored; acc: 2 over 1 scored
    ledger.record(torch.tensor([[1.0, 2.0], [0.0, NAN], [NAN, NAN]]))
    return ledger


def test_ledger_applies_weights_and_skips_none_rewards_like_nansum():
    totals = ledger_with_two_batches().take_step()
    assert totals.num_samples == 3
    assert totals.reward_sum == 2.0
    assert totals.func_sums == {"fmt": 1.0, "acc": 2.0}
    assert totals.func_counts == {"fmt": 2, "acc": 1}
    # per-reward means over the completions each reward scored: fmt 1/2, acc 2/1
    assert totals.func_means() == {"fmt": 0.5, "acc": 2.0}
    # the mean reward counts every completion: 2 / 3
    assert totals.mean_reward == pytest.approx(2 / 3)


def test_ledger_step_totals_reset_per_step_and_epoch_totals_per_epoch():
    ledger = ledger_with_two_batches()
    first = ledger.take_step()
    # batch 2: totals 1 + 0.5*0 = 1, 0.5 + 0.5*4 = 2.5 -> 3.5; fmt 1.5 over 2, acc 4 over 2
    ledger.record(torch.tensor([[1.0, 0.0], [0.5, 4.0]]))
    second = ledger.take_step()
    assert (first.num_samples, first.reward_sum) == (3, 2.0)
    assert (second.num_samples, second.reward_sum) == (2, 3.5)
    assert ledger.take_step().num_samples == 0  # nothing since the last step

    epoch = ledger.take_epoch()  # both batches: 5 completions, 2 + 3.5 = 5.5
    assert (epoch.num_samples, epoch.reward_sum) == (5, 5.5)
    assert epoch.func_sums == {"fmt": 2.5, "acc": 6.0}
    assert epoch.func_counts == {"fmt": 4, "acc": 3}
    assert epoch.func_means() == {"fmt": 2.5 / 4, "acc": 2.0}
    assert ledger.take_epoch().num_samples == 0


def test_step_record_fields_carry_sums_and_counts():
    totals = ledger_with_two_batches().take_step()
    assert step_fields(totals) == {
        "reward_sum": 2.0,
        "num_completions": 3,
        "rewards/fmt/sum": 1.0,
        "rewards/fmt/count": 2,
        "rewards/acc/sum": 2.0,
        "rewards/acc/count": 1,
    }


def test_epoch_fields():
    totals = RewardTotals(num_samples=4, reward_sum=3.0, func_sums={"acc": 1.0}, func_counts={"acc": 2})
    assert epoch_fields(totals) == {
        "epoch/accumulated_reward": 3.0,
        "epoch/mean_reward": 0.75,  # 3 / 4
        "epoch/num_samples": 4,
        "epoch/rewards/acc/mean": 0.5,  # 1 / 2
    }


def test_epoch_summary_of_no_completions_has_no_mean():
    fields = epoch_fields(RewardTotals())
    assert fields["epoch/accumulated_reward"] == 0.0
    assert fields["epoch/num_samples"] == 0
    assert math.isnan(fields["epoch/mean_reward"])


def test_mean_of_a_reward_that_scored_no_completion_is_nan():
    ledger = RewardLedger(["acc"], [1.0])
    ledger.record(torch.tensor([[NAN], [NAN]]))  # TRL logs nanmean([NaN, NaN]) = NaN for this reward
    assert math.isnan(epoch_fields(ledger.take_epoch())["epoch/rewards/acc/mean"])


def step_row(step: int, reward_sum: float, num: int, acc_sum: float | None, acc_count: int) -> dict:
    return {
        "type": "step",
        "step": step,
        "reward_sum": reward_sum,
        "num_completions": num,
        "rewards/acc/sum": acc_sum,
        "rewards/acc/count": acc_count,
        "rewards/acc/mean": 99.0,  # TRL's logged mean: not a sum, must not be added
    }


def test_totals_from_step_records_add_the_sums_and_skip_missing_values():
    rows = [
        step_row(1, 2.0, 8, 1.5, 6),
        step_row(2, 1.0, 8, None, 0),  # null in metrics.jsonl (NaN written as null): skipped
        {"type": "step", "step": 3, "reward_sum": None, "num_completions": None},  # a step with no generation
        step_row(4, 0.5, 8, 2.0, 8),
    ]
    totals = totals_from_step_records(rows)
    assert (totals.num_samples, totals.reward_sum) == (24, 3.5)  # 8 + 8 + 8; 2 + 1 + 0.5
    assert totals.func_sums == {"acc": 3.5}  # 1.5 + 2.0
    assert totals.func_counts == {"acc": 14}  # 6 + 8


def test_step_records_round_trip_to_the_same_totals():
    ledger = ledger_with_two_batches()
    rows = [{"step": 1, **step_fields(ledger.take_step())}]
    ledger.record(torch.tensor([[1.0, 0.0], [0.5, 4.0]]))
    rows.append({"step": 2, **step_fields(ledger.take_step())})
    rebuilt, live = totals_from_step_records(rows), ledger.take_epoch()
    assert rebuilt == live


def test_restore_epoch_counts_only_the_steps_after_the_last_epoch_record():
    # epoch 1 ended at step 2, epoch 2 at step 4: the running epoch holds steps 5 and 6 only
    steps = [step_row(s, float(s), 4, float(s) / 2, 4) for s in range(1, 7)]
    epochs = [{"type": "epoch", "step": 2, "epoch": 1}, {"type": "epoch", "step": 4, "epoch": 2}]
    ledger = RewardLedger(["acc"], [1.0])
    ledger.restore_epoch(steps, epochs)
    restored = ledger.since_epoch
    assert (restored.num_samples, restored.reward_sum) == (8, 11.0)  # 4 + 4; 5 + 6
    assert restored.func_sums == {"acc": 5.5}  # 2.5 + 3
    assert restored.func_counts == {"acc": 8}
    # new batches add to the restored totals
    ledger.record(torch.tensor([[1.0]]))
    assert ledger.take_epoch().reward_sum == 12.0


def test_restore_epoch_without_epoch_records_counts_every_step():
    steps = [step_row(1, 1.0, 4, 1.0, 4), step_row(2, 2.0, 4, 2.0, 4)]
    ledger = RewardLedger(["acc"], [1.0])
    ledger.restore_epoch(steps, [])
    assert (ledger.since_epoch.num_samples, ledger.since_epoch.reward_sum) == (8, 3.0)
    assert ledger.since_step.num_samples == 0  # the step totals start empty


def test_the_public_formulas_are_importable_from_train():
    import train

    assert train.group_advantages is group_advantages
    assert train.pass_at_k(10, 10, 5) == 1.0
    with pytest.raises(AttributeError):
        _ = train.no_such_formula
