"""rewards/scoring.py: the one reward-scoring runtime (TRL's call, the weighted total, the group statistic), and
the tensor versions training uses agreeing with it."""

from __future__ import annotations

import math

import pytest
import torch

from rewards.scoring import (
    ADVANTAGE_EPS,
    call_arguments,
    call_rewards,
    group_std,
    spread,
    trl_arguments,
    weighted_total,
    weighted_totals,
)
from train.grpo.advantages import group_advantages
from train.grpo.ledger import weighted_rewards


def test_the_weighted_total_leaves_out_rewards_that_did_not_score():
    # 2 x 0.5 + 0.5 x 1.0 = 1.5; the None and the NaN count as 0, as TRL's nansum counts them
    assert weighted_total([0.5, 1.0, None], [2.0, 0.5, 3.0]) == 1.5
    assert weighted_total([math.nan, 1.0], [2.0, 0.5]) == 0.5
    assert weighted_totals([[1.0, None], [0.25, 0.5]], [1.0, 2.0]) == [1.5, 1.0]


def test_the_trainers_tensor_total_is_the_same_sum():
    scores = [[1.0, None, 0.25], [0.5, 0.5, None]]  # scores[f][i]: two rewards, three completions
    weights = [1.0, 2.0]
    tensor = torch.tensor([[math.nan if s is None else s for s in column] for column in zip(*scores, strict=True)])
    per_completion = weighted_rewards(tensor, torch.tensor(weights), dim=1)
    assert per_completion.tolist() == weighted_totals(scores, weights) == [2.0, 1.0, 0.25]
    assert float(weighted_rewards(tensor, torch.tensor(weights))) == 3.25


def test_group_std_is_the_unbiased_std_grpo_divides_by():
    # [1, 2, 3, 6]: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, / (n - 1) = 14 / 3
    assert group_std([1.0, 2.0, 3.0, 6.0]) == pytest.approx(math.sqrt(14 / 3))
    assert group_std([5.0]) == 0.0
    rewards = [1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 1.0, 1.0]
    advantages = group_advantages(torch.tensor(rewards), 4).tolist()
    for start in (0, 4):
        group = rewards[start : start + 4]
        mean = sum(group) / 4
        expected = [(r - mean) / (group_std(group) + ADVANTAGE_EPS) for r in group]
        assert advantages[start : start + 4] == pytest.approx(expected, rel=1e-5)


def test_rewards_are_called_with_trls_keyword_arguments():
    seen = {}

    def reward(prompts, completions, completion_ids, answer, **kwargs):
        seen.update(prompts=prompts, completion_ids=completion_ids, answer=answer, extra=kwargs)
        return [float(c == a) for c, a in zip(completions, answer, strict=True)]

    arguments = call_arguments([{"prompt": "p", "completion": "4", "answer": "4", "num_tokens": 2, "kind": "greedy"}])
    assert arguments == trl_arguments(["p"], ["4"], [[0, 0]], {"answer": ["4"]})
    assert call_rewards([reward], arguments) == [[1.0]]
    assert seen == {"prompts": ["p"], "completion_ids": [[0, 0]], "answer": ["4"], "extra": {}}


def test_the_spread_counts_groups_whose_totals_are_all_equal():
    rows = [{"prompt": "a"}, {"prompt": "a"}, {"prompt": "b"}, {"prompt": "b"}, {"prompt": "c"}]
    groups = spread(rows, list(range(5)), [1.0, 3.0, 2.0, 2.0, 9.0])
    assert (groups["prompts"], groups["all_equal"], groups["fraction_all_equal"]) == (2, 1, 0.5)
    first = groups["per_prompt"][0]
    # [1, 3]: mean 2, unbiased std sqrt(2)
    assert (first["mean"], first["std"], first["min"], first["max"]) == (2.0, pytest.approx(math.sqrt(2)), 1.0, 3.0)
    assert groups["mean_std"] == pytest.approx(math.sqrt(2) / 2)
