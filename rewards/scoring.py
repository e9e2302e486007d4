"""Scoring completions with reward functions outside training, as TRL scores them inside it.

One runtime for evaluation (train/evaluation/evaluate.py), the reward ledger's figures and experiments/score_rewards.py:
- `trl_arguments`, `call_rewards`: every reward called as TRL's GRPOTrainer calls it, `f(prompts=...,
  completions=..., completion_ids=..., **columns)`, one batch per call (a batch-level reward such as len_reward
  compares the completions it is given together);
- `weighted_total`: the total reward of one completion, sum_f w_f * r_f over the rewards that scored it (None and NaN
  left out, i.e. counted as 0, as TRL's nansum does). train/grpo/ledger.py's `weighted_rewards` is the same sum on the
  trainer's float32 tensors (tests/test_scoring.py checks they agree);
- `score`: rows (JSON objects: completion, prompt, gold columns) scored in batches, with each reward's cost;
- `summarize` and `spread`: per reward (mean, std, zeros, not applicable) and per prompt's group (the weighted
  total's mean, std, min, max, and whether all are equal: GRPO's advantage is then 0 for the whole group).

The group statistic is `group_std`: the unbiased (n - 1) standard deviation GRPO divides advantages by, 0 for a
group of one. It lives here, in pure Python, because rewards/ may not import torch or train/; train/grpo/advantages.py
computes the same statistic on tensors for training (float32, as TRL does, so a run's figures stay TRL's) and
tests/test_scoring.py checks the two agree. ADVANTAGE_EPS is the eps both use.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# TRL's constant in A_i = (r_i - mean) / (std + eps) (trl GRPOTrainer; train/grpo/advantages.py).
ADVANTAGE_EPS = 1e-4
# Row fields that are not gold columns: the text itself, and what a samples file records about it.
NOT_COLUMNS = {
    "prompt",
    "completion",
    "completion_ids",
    "num_tokens",
    "prompts",
    "completions",
    *("label", "kind", "index", "sample", "truncated", "rewards", "reward_total", "correct", "outcome"),
}

Score = float | None


def trl_arguments(
    prompts: list[Any] | None,
    completions: list[Any],
    completion_ids: list[list[int]] | None,
    columns: dict[str, list[Any]],
) -> dict[str, Any]:
    """The keyword arguments TRL's GRPOTrainer calls a reward with: prompts, completions, completion_ids and every
    dataset column but the prompt, each a list aligned with the completions."""
    return {"prompts": prompts, "completions": completions, "completion_ids": completion_ids, **columns}


def call_rewards(functions: Sequence[Callable[..., list[Score]]], arguments: dict[str, Any]) -> list[list[Score]]:
    """Each function's scores of one batch (`trl_arguments`); one list per function."""
    return [function(**arguments) for function in functions]


def weighted_total(scores: Sequence[Score], weights: Sequence[float]) -> float:
    """sum_f w_f * r_f over the rewards that scored the completion (None or NaN: left out, as TRL's nansum)."""
    return sum(w * r for w, r in zip(weights, scores, strict=True) if r is not None and not math.isnan(r))


def weighted_totals(scores: list[list[Score]], weights: Sequence[float]) -> list[float]:
    """The weighted total of every completion, from per-reward score lists (scores[f][i])."""
    return [weighted_total(column, weights) for column in zip(*scores, strict=True)]


def group_std(values: Sequence[float]) -> float:
    """The unbiased (Bessel-corrected, n - 1) standard deviation of a group's rewards, GRPO's s in
    A_i = (r_i - mean) / (s + eps) (Shao et al. 2024, eq. 3; torch.std in TRL); 0 for a single value."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


# --- rows: what a JSONL row of completions holds ---


def columns_in(rows: list[dict[str, Any]]) -> set[str]:
    """The gold columns of the rows (every field but the completion's own and the samples file's bookkeeping)."""
    return {key for row in rows for key in row if key not in NOT_COLUMNS and not key.startswith("_")}


def call_arguments(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The keyword arguments of one reward call over `rows`: prompts, completions, token ids and gold columns."""
    return trl_arguments(
        prompts=[row.get("prompt") for row in rows] if any("prompt" in row for row in rows) else None,
        completions=[row["completion"] for row in rows],
        completion_ids=token_ids(rows),
        columns={column: [row.get(column) for row in rows] for column in sorted(columns_in(rows))},
    )


def token_ids(rows: list[dict[str, Any]]) -> list[list[int]] | None:
    """Token ids, or stand-ins of the recorded length, when every row has them; None lets rewards estimate."""
    if all(isinstance(row.get("completion_ids"), list) for row in rows):
        return [row["completion_ids"] for row in rows]
    if all(type(row.get("num_tokens")) is int for row in rows):
        return [[0] * row["num_tokens"] for row in rows]
    return None


def token_source(rows: list[dict[str, Any]]) -> str:
    if all(isinstance(row.get("completion_ids"), list) for row in rows):
        return "completion_ids"
    if all(type(row.get("num_tokens")) is int for row in rows):
        return "num_tokens"
    return "estimated at 4 characters a token"


# --- scoring rows in batches ---


@dataclass
class Part:
    """The rows of one kind of completion in a samples file ("greedy", "sampled"), or all rows (kind None)."""

    kind: str | None
    indices: list[int]


def split_by_kind(rows: list[dict[str, Any]]) -> list[Part]:
    if not any("kind" in row for row in rows):
        return [Part(None, list(range(len(rows))))]
    parts: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        parts.setdefault(str(row.get("kind", "no kind")), []).append(i)
    return [Part(kind, indices) for kind, indices in parts.items()]


@dataclass
class Cost:
    """What scoring one part cost one reward: seconds inside it, golds it could not score, inf/NaN scores."""

    seconds: float = 0.0
    invalid_gold: int = 0
    non_finite: int = 0

    @classmethod
    def so_far(cls, function: Any) -> Cost:
        """The running totals a reward function (rewards.registry.RewardFunction) keeps."""
        return cls(function.seconds_total, function.invalid_gold_count, function.non_finite_count)


@dataclass
class Scored:
    """Every reward's score per row (None: not applicable), its reasons with `explain` ("" from a reward that
    gives none), and the cost per part."""

    scores: list[list[Score]]
    reasons: list[list[str]] | None
    costs: dict[str | None, list[Cost]] = field(default_factory=dict)


def score(rows: list[dict[str, Any]], functions: list[Any], parts: list[Part], explain: bool) -> Scored:
    """Every reward called as TRL calls it, one batch per evaluation (label) and kind: a batch-level reward
    (len_reward) then compares the completions of one prompt as in training, not greedy with sampled ones."""
    scored = Scored([[None] * len(rows) for _ in functions], [[""] * len(rows) for _ in functions] if explain else None)
    for part in parts:
        before = [Cost.so_far(f) for f in functions]
        batches: dict[Any, list[int]] = {}
        for i in part.indices:
            batches.setdefault(rows[i].get("label"), []).append(i)
        for batch in batches.values():
            arguments = call_arguments([rows[i] for i in batch])
            for r, function in enumerate(functions):
                for i, value in zip(batch, function(**arguments), strict=True):
                    scored.scores[r][i] = value
                if scored.reasons is not None and function.explains:
                    for i, reason in zip(batch, function.explain(**arguments), strict=True):
                        scored.reasons[r][i] = reason
        scored.costs[part.kind] = [
            Cost(f.seconds_total - b.seconds, f.invalid_gold_count - b.invalid_gold, f.non_finite_count - b.non_finite)
            for f, b in zip(functions, before, strict=True)
        ]
    return scored


def scoring_warnings(functions: list[Any]) -> list[str]:
    """What scoring left out besides rows without gold: golds a reward cannot score, and inf/NaN scores."""
    warnings = []
    for function in functions:
        if function.invalid_gold_count:
            warnings.append(
                f"{function.__name__}: {function.invalid_gold_count} row(s) with a gold it cannot score, left out "
                f"as not applicable (e.g. {'; '.join(function.invalid_gold_examples)})"
            )
        if function.non_finite_count:
            warnings.append(
                f"{function.__name__}: {function.non_finite_count} score(s) were inf or NaN, left out as not applicable"
            )
    return warnings


# --- summaries: per reward, and the spread of the total within each prompt's group ---


def summarize(
    names: list[str], weights: list[float], scores: list[list[Score]], indices: list[int], costs: list[Cost]
) -> list[dict[str, Any]]:
    """Per reward over the rows `indices`: mean, population std, min, max, fraction of zeros, not applicable."""
    summary = []
    for name, weight, values, cost in zip(names, weights, scores, costs, strict=True):
        scored = [values[i] for i in indices if values[i] is not None]
        summary.append(
            {
                "name": name,
                "weight": weight,
                "mean": statistics.fmean(scored) if scored else None,
                "std": statistics.pstdev(scored) if scored else None,
                "min": min(scored) if scored else None,
                "max": max(scored) if scored else None,
                "fraction_zero": sum(value == 0 for value in scored) / len(scored) if scored else None,
                "not_applicable": len(indices) - len(scored),
                "invalid_gold": cost.invalid_gold,
                "non_finite": cost.non_finite,
                "seconds": cost.seconds,
            }
        )
    return summary


def group_key(row: dict[str, Any]) -> Any:
    """What makes completions one GRPO group: a samples file's evaluation, kind and prompt index, else the prompt
    text; None for a row without a prompt (not grouped)."""
    if "kind" in row and "index" in row:
        return (row.get("label"), row["kind"], row["index"])
    prompt = row.get("prompt")
    if prompt is None:
        return None
    return prompt if isinstance(prompt, str) else repr(prompt)  # repr: chat prompts are lists of dicts


def prompt_groups(rows: list[dict[str, Any]], indices: list[int]) -> list[list[int]]:
    """The row indices of each prompt's group, in order of first appearance (groups of one included)."""
    groups: dict[Any, list[int]] = {}
    for i in indices:
        key = group_key(rows[i])
        if key is not None:
            groups.setdefault(key, []).append(i)
    return list(groups.values())


def spread(rows: list[dict[str, Any]], indices: list[int], totals: list[float]) -> dict[str, Any] | None:
    """The weighted total's spread within each prompt's group of 2 or more among the rows `indices`, and how many
    groups have all-equal totals (GRPO advantage 0: no learning signal); None when no group has 2 or more.

    std is `group_std`, the s of A_i = (r_i - mean) / (s + eps) in train/grpo/advantages.py.
    """
    per_prompt = []
    for members in prompt_groups(rows, indices):
        if len(members) < 2:
            continue
        values = [totals[i] for i in members]
        low, high = min(values), max(values)
        per_prompt.append(
            {
                "prompt": rows[members[0]].get("prompt"),
                "lines": [rows[i].get("_line") for i in members],
                "n": len(values),
                "mean": statistics.fmean(values),
                "std": group_std(values),
                "min": low,
                "max": high,
                # GRPO sees exact equality (every advantage is then 0), but weighted sums of floats differ in the
                # last bits (0.1 + 0.2 != 0.3) and such a difference gives an advantage of ~1e-13 (std + eps,
                # eps = ADVANTAGE_EPS, in the divisor): no signal either, so totals within 1e-9 count as equal.
                "all_equal": math.isclose(low, high, abs_tol=1e-9),
            }
        )
    if not per_prompt:
        return None
    all_equal = sum(group["all_equal"] for group in per_prompt)
    return {
        "prompts": len(per_prompt),
        "all_equal": all_equal,
        "fraction_all_equal": all_equal / len(per_prompt),
        "mean_std": statistics.fmean(group["std"] for group in per_prompt),
        "per_prompt": per_prompt,
    }
