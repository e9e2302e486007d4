"""Findings about what the trained model does on held-out prompts: accuracy falling while the reward rises, length
collapsing or hitting the budget, sampling without diversity, and differences within sampling noise.

These read the evaluations (metrics.jsonl's eval records: pass@k, correct / partial / failed, mean_output_tokens,
budget_utilization, truncated_frac; train/evaluation/metrics.py) and, where the records have them, the training
steps' completion lengths and budget hits. A plain TRL run has no evaluations: the length finding reads its steps,
the others are skipped.
"""

from __future__ import annotations

from typing import Any

from train.diagnosis.base import (
    PROBLEM,
    WATCH,
    Finding,
    Plot,
    RunRecords,
    Series,
    is_number,
    num,
    pct,
    window_means,
)
from train.diagnosis.noise import Difference, compare_rates

# Completions at most half as long at the end as at the start ("collapse"): the Countdown study's Dr. GRPO arm at
# 1,024 tokens fell to 21% of its budget while its partial answers went to 95%.
LENGTH_COLLAPSE_RATIO = 0.5
# ... while the share of partial answers (an answer block, wrong) grew by at least this much: ten more in 100.
PARTIAL_RISE = 0.1
# Completions cut off at the token budget: at half of them most answers are never reached (the Countdown study at
# 256 tokens: 94% of the budget used before an answer, zero-shot 0%); a fifth is worth watching.
BUDGET_HIT_PROBLEM = 0.5
BUDGET_HIT_WATCH = 0.2
# Sampled pass@k that gains less than this over pass@1 (a hundredth: half a prompt in 50) gains nothing.
DIVERSITY_MIN_GAIN = 0.01


def _rate(row: dict[str, Any] | None, key: str = "pass@1") -> float | None:
    value = (row or {}).get("metrics", {}).get(key)
    return float(value) if is_number(value) else None


def _prompts(row: dict[str, Any]) -> int:
    return int(row["metrics"].get("num_prompts") or 1)


def pass1_difference(before: dict[str, Any], after: dict[str, Any]) -> Difference | None:
    a, b = _rate(before), _rate(after)
    if a is None or b is None:
        return None
    return compare_rates(a, _prompts(before), b, _prompts(after))


def _outcomes(row: dict[str, Any]) -> str | None:
    """correct/partial/failed 50/971/3 (partial 95%)"""
    metrics = row["metrics"]
    counts = [metrics.get(key) for key in ("correct", "partial", "failed")]
    if not all(is_number(count) for count in counts):
        return None
    partial = metrics.get("partial_frac")
    share = f" (partial {pct(partial)})" if is_number(partial) else ""
    return "/".join(f"{count:.0f}" for count in counts) + share


def reward_hacking_or_collapse(run: RunRecords) -> list[Finding]:
    """Held-out accuracy falling beyond its noise, from zero-shot (or from its best evaluation) to the last one,
    with the outcome shares, the budget use and what the training reward did meanwhile."""
    zero, last = run.zero_shot, run.last_eval
    if last is None:
        return []
    trained = [row for row in run.evals if row["label"] not in ("zero_shot", "final") and _rate(row) is not None]
    best = max(trained, key=lambda row: _rate(row) or 0.0, default=None)
    fall = pass1_difference(zero, last) if zero is not None else None
    from_best = False
    if (fall is None or not (fall.beyond_noise and fall.delta < 0)) and best is not None and best is not last:
        fall, from_best = pass1_difference(best, last), True
    if fall is None or not fall.beyond_noise or fall.delta >= 0:
        return []
    start = best if from_best else zero
    assert start is not None
    evidence = [
        f"greedy pass@1 {pct(fall.before)} ({start['label']}) -> {pct(fall.after)} ({last['label']}) on "
        f"{fall.n_after:,} prompts, {pct(-fall.delta).removesuffix('%')} points down, beyond its noise "
        f"(+-{pct(fall.margin).removesuffix('%')} points at 95%)"
    ]
    before_outcomes, after_outcomes = _outcomes(start), _outcomes(last)
    if after_outcomes:
        evidence.append(f"correct/partial/failed {before_outcomes + ' -> ' if before_outcomes else ''}{after_outcomes}")
    budget_before, budget_after = _rate(start, "budget_utilization"), _rate(last, "budget_utilization")
    if budget_after is not None:
        before = f"{pct(budget_before)} -> " if budget_before is not None else ""
        evidence.append(f"budget use {before}{pct(budget_after)}")
    windows = window_means(*run.series("reward"))
    reward_rose = windows is not None and windows.change > 0
    if windows is not None:
        evidence.append(f"the training reward went {num(windows.early)} -> {num(windows.late)} ({windows.where()})")
    partial_now = _rate(last, "partial_frac")
    title = (
        "reward up, held-out accuracy down: reward hacking or collapse"
        if reward_rose
        else "held-out accuracy down: reward hacking or collapse"
    )
    pairs = [(row["step"], _rate(row)) for row in run.evals if _rate(row) is not None and not row.get("same_as")]
    return [
        Finding(
            name="reward_hacking_or_collapse",
            severity=PROBLEM if not from_best or fall.after <= (_rate(zero) or 0.0) else WATCH,
            title=title,
            evidence="; ".join(evidence),
            meaning=(
                "The rewards pay for something other than being right, and the model found it"
                + (
                    ": most answers are now partial, a short wrong answer that still earns partial credit."
                    if partial_now is not None and partial_now >= 0.5
                    else "; or the policy drifted until it forgot what it could do (collapse)."
                )
                + " The training reward is no longer a measure of accuracy."
            ),
            to_try=(
                "less partial credit (the correctness reward's params, or countdown_binary_reward), more weight on "
                "correctness (rewards[].weight), a KL penalty to stay near the start (train.beta > 0), a lower "
                "train.learning_rate, and evaluations every few steps (eval.when: steps, eval.every_steps) to keep "
                "the best adapter"
            ),
            plot=Plot(
                "Greedy pass@1 at each evaluation",
                "pass@1",
                (Series("greedy pass@1", tuple(float(s) for s, _ in pairs), tuple(float(v) for _, v in pairs)),),
            )
            if len(pairs) > 1
            else None,
        )
    ]


def length_and_budget(run: RunRecords) -> list[Finding]:
    """Completions collapsing in length while partial answers grow, and completions cut off at the token budget."""
    return [*_length_collapse(run), *_budget_hits(run)]


def _length_collapse(run: RunRecords) -> list[Finding]:
    zero, last = run.zero_shot, run.last_eval
    tokens_before, tokens_after = _rate(zero, "mean_output_tokens"), _rate(last, "mean_output_tokens")
    partial_before, partial_after = _rate(zero, "partial_frac"), _rate(last, "partial_frac")
    steps, lengths = run.series("completions/mean_length")
    windows = window_means(steps, lengths)
    evidence, severity = [], None
    if (
        tokens_before
        and tokens_after is not None
        and tokens_after <= LENGTH_COLLAPSE_RATIO * tokens_before
        and partial_before is not None
        and partial_after is not None
        and partial_after - partial_before >= PARTIAL_RISE
    ):
        severity = PROBLEM
        evidence.append(
            f"greedy completions {num(tokens_before)} -> {num(tokens_after)} tokens on average (zero-shot -> "
            f"{last['label']}) while partial answers went {pct(partial_before)} -> {pct(partial_after)}"
        )
    if windows is not None and windows.early > 0 and windows.late <= LENGTH_COLLAPSE_RATIO * windows.early:
        severity = severity or WATCH
        evidence.append(f"training completions {num(windows.early)} -> {num(windows.late)} tokens ({windows.where()})")
    if severity is None:
        return []
    return [
        Finding(
            name="length_collapse",
            severity=severity,
            title="completions collapsing in length",
            evidence="; ".join(evidence),
            meaning=(
                "The completions got much shorter: either the model found a short answer that still earns reward "
                "(when partial answers grow with it), or a length-normalized loss favours short completions."
            ),
            to_try=(
                "less partial credit for a wrong answer (the correctness reward's params), a length-neutral loss "
                "(train.loss_type dr_grpo or dapo), a lower train.learning_rate, or a length reward that does not pay "
                "for brevity alone (rewards: cosine_scaled_reward)"
            ),
            plot=Plot("Training completion length", "tokens", (Series("mean length", tuple(steps), tuple(lengths)),))
            if lengths
            else None,
        )
    ]


def _budget_hits(run: RunRecords) -> list[Finding]:
    # Ours counts the completions that used the whole budget; TRL's clipped_ratio also counts every stop-string stop
    # on vLLM rollouts (train/records/format.py), so it is read only where ours is absent (a plain TRL run).
    ours = "completions/budget_hit_ratio"
    key = ours if run.series(ours)[1] else "completions/clipped_ratio"
    steps, hits = run.series(key)
    windows = window_means(steps, hits)
    late = windows.late if windows is not None else (hits[0] if hits else None)
    evidence, worst = [], 0.0
    if late is not None and late >= BUDGET_HIT_WATCH:
        where = windows.late_where() if windows is not None else f"step {steps[0]:g}"
        evidence.append(f"{pct(late)} of training completions hit the budget ({key}, {where})")
        worst = late
    for row in [run.zero_shot, run.last_eval]:
        truncated = _rate(row, "truncated_frac")
        if row is not None and truncated is not None and truncated >= BUDGET_HIT_WATCH:
            failed = _rate(row, "failed_frac")
            without = f", {pct(failed)} ended without an answer" if failed is not None else ""
            evidence.append(f"{pct(truncated)} of {row['label']} greedy completions were cut off{without}")
            worst = max(worst, truncated)
    if not evidence:
        return []
    budget = run.config_value("train.max_completion_length")
    return [
        Finding(
            name="budget_hits",
            severity=PROBLEM if worst >= BUDGET_HIT_PROBLEM else WATCH,
            title="completions cut off at the token budget",
            evidence="; ".join(evidence) + (f" (train.max_completion_length {budget})" if budget else ""),
            meaning=(
                "A completion cut off before its answer scores as no answer: with most of them cut off the rewards "
                "mostly measure the budget, and GRPO learns to be short rather than right."
            ),
            to_try=(
                "a larger train.max_completion_length (and eval.max_new_tokens), a prompt that asks for brief "
                "reasoning (data.prompt_template, data.system_prompt), a budget that grows by epoch "
                "(train.curriculum), or soft_overlong_punishment in rewards"
            ),
            plot=Plot("Completions that hit the budget", "share", (Series(key, tuple(steps), tuple(hits)),))
            if hits
            else None,
        )
    ]


def no_diversity(run: RunRecords) -> list[Finding]:
    """Sampled pass@k no higher than pass@1 on the latest evaluation (and zero-shot): the samples are all alike."""
    findings = []
    seen = set()
    for row in [run.last_eval, run.zero_shot]:
        if row is None or row["label"] in seen:
            continue
        seen.add(row["label"])
        metrics = row["metrics"]
        ks = sorted(int(key.removeprefix("pass@")) for key in metrics if key.removeprefix("pass@").isdigit())
        ks = [k for k in ks if k > 1]
        if not ks:
            continue
        k = ks[-1]
        top = metrics[f"pass@{k}"]
        # pass@1 of the same n samples: pass@k equals it exactly when every prompt's samples are all right or all
        # wrong (Chen et al. 2021's estimator); greedy stands in where an evaluation drew no samples for pass@1.
        one = metrics.get("pass@1_sampled", metrics.get("pass@1"))
        if not is_number(top) or not is_number(one) or top <= 0 or top >= 1 or top > one + DIVERSITY_MIN_GAIN:
            continue
        temperature = run.config_value("eval.eval_temperature")
        findings.append(
            Finding(
                name="no_diversity",
                severity=WATCH,
                title="no diversity: sampling k times finds nothing new",
                subject=row["label"],
                evidence=(
                    f"{row['label']}: sampled pass@{k} {top:.3f} against pass@1 {one:.3f} of the same samples (greedy "
                    f"{_text(metrics.get('pass@1'))}"
                    + (f", eval.eval_temperature {temperature}" if temperature is not None else "")
                    + ")"
                ),
                meaning=(
                    f"If {k} samples of a prompt solve no more prompts than one does, the samples are nearly the "
                    "same completion: a GRPO group of them scores alike and teaches little."
                ),
                to_try=(
                    "a higher sampling temperature (train.temperature for the rollouts, eval.eval_temperature for "
                    "pass@k), train.top_p 1.0, more completions per prompt (train.num_generations); if the policy "
                    "itself collapsed, a lower train.learning_rate or train.beta > 0"
                ),
            )
        )
    return findings


def _text(value: Any) -> str:
    return f"{value:.3f}" if is_number(value) else "-"


def within_noise(run: RunRecords) -> list[Finding]:
    """The change from zero-shot to the last evaluation is smaller than its sampling noise on this many prompts."""
    zero, last = run.zero_shot, run.last_eval
    if zero is None or last is None:
        return []
    difference = pass1_difference(zero, last)
    if difference is None or difference.delta == 0 or difference.beyond_noise:
        return []
    return [
        Finding(
            name="within_noise",
            severity=WATCH,
            title="the change is within sampling noise",
            evidence=difference.describe(f"greedy pass@1 (zero-shot -> {last['label']})"),
            meaning=(
                "On this many test prompts a difference this size happens by chance about one time in twenty or more "
                "often: the evaluation cannot yet say whether training helped."
            ),
            to_try=(
                f"more test prompts (data.test_samples, about {difference.prompts_to_resolve:,} for a difference this "
                "size), or train longer (train.num_epochs) and compare again"
            ),
        )
    ]
