"""An evaluation's figures from its samples: pure (sample records in, metrics out), no model, no torch.

An evaluation (train/evaluation/evaluate.py) generates, for each test prompt, one greedy completion and n sampled ones
at `eval.eval_temperature`, and records each as one sample (a line of samples/<label>.jsonl: kind, prompt index,
rewards, weighted total, outcome, tokens). `metrics_from_samples` turns those samples into the flat metrics:

`pass@1` (greedy), `pass@1_sampled`, `pass@5`, ... (one per k in `eval.pass_k`, from the same n samples: Chen et al.
2021's unbiased estimator, `train.evaluation.passk.pass_at_k`); `correct`, `partial`, `failed` (counts of greedy
outcomes: correct; an answer block but wrong; no answer block) and their `*_frac`; `mean_output_tokens`,
`budget_utilization` (mean tokens / max_new_tokens), `truncated_frac` (greedy completions that hit the budget);
`reward/<name>` (mean over greedy completions, None scores left out) and `reward/total` (mean weighted sum, None counted
as 0 as TRL does); `num_prompts`, `samples_generated`, `eval_seconds`. All floats.
"""

from __future__ import annotations

import math
from typing import Any

from train.evaluation.passk import pass_at_k

OUTCOMES = ("correct", "partial", "failed")
# Metrics that count things (shown without decimals).
COUNT_KEYS = ("correct", "partial", "failed", "num_prompts", "samples_generated")


def metrics_from_samples(
    samples: list[dict[str, Any]],
    *,
    reward_names: list[str],
    samples_per_prompt: int,
    pass_k: list[int],
    max_new_tokens: int,
    seconds: float,
) -> dict[str, float]:
    """The metrics of one evaluation (see the module docstring) from its sample records, in generation order."""
    greedy = [sample for sample in samples if sample["kind"] == "greedy"]
    correct_samples: dict[int, int] = {}
    for sample in samples:
        if sample["kind"] != "greedy":
            correct_samples[sample["index"]] = correct_samples.get(sample["index"], 0) + sample["correct"]
    prompts = len(greedy)
    n = samples_per_prompt
    metrics: dict[str, float] = {"pass@1": sum(sample["correct"] for sample in greedy) / prompts}
    for k in pass_k if n else []:
        per_prompt = [pass_at_k(n, correct_samples.get(sample["index"], 0), k) for sample in greedy]
        metrics["pass@1_sampled" if k == 1 else f"pass@{k}"] = sum(per_prompt) / prompts
    for outcome in OUTCOMES:
        count = sum(sample["outcome"] == outcome for sample in greedy)
        metrics[outcome] = float(count)
        metrics[f"{outcome}_frac"] = count / prompts
    mean_tokens = sum(sample["num_tokens"] for sample in greedy) / prompts
    metrics["mean_output_tokens"] = mean_tokens
    metrics["budget_utilization"] = mean_tokens / max_new_tokens
    metrics["truncated_frac"] = sum(sample["truncated"] for sample in greedy) / prompts
    for name in reward_names:
        scores = [sample["rewards"][name] for sample in greedy if sample["rewards"][name] is not None]
        metrics[f"reward/{name}"] = sum(scores) / len(scores) if scores else math.nan
    metrics["reward/total"] = sum(sample["reward_total"] for sample in greedy) / prompts
    metrics["num_prompts"] = float(prompts)
    metrics["samples_generated"] = float(len(samples))
    metrics["eval_seconds"] = seconds
    return metrics
