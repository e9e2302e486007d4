"""Findings about the learning signal: groups that teach nothing, a reward that never varies, format learned
without content, the zero loss at the start, and an arm without a baseline.

GRPO's advantage of a completion is (r - mean of its group) / (std of its group + eps) (Shao et al. 2024,
arXiv:2402.03300; TRL 1.14.2 `_generate_and_score_completions`): a group whose completions all score the same gives
every completion advantage 0, and a reward that gives every completion of a group the same score adds the same to
each of them, which the group mean removes. Neither teaches anything.
"""

from __future__ import annotations

from train.diagnosis.base import (
    NOTE,
    PROBLEM,
    WATCH,
    Finding,
    Plot,
    RunRecords,
    Series,
    excerpt,
    is_number,
    mean,
    num,
    pct,
    reward_kind,
    step_span,
    steps_by_epoch,
    window_means,
)
from train.diagnosis.noise import compare_rates

# Share of prompt groups whose completions all scored the same (TRL's frac_reward_zero_std, averaged over the run).
# At 0.8 GRPO learns from at most one group in five: DAPO (Yu et al. 2025, arXiv:2503.14476, "dynamic sampling")
# found such groups shrink the effective batch enough to stall training and over-samples to keep every group mixed.
NO_SIGNAL_PROBLEM = 0.8
# At half the groups the batch is already halved; worth knowing, not yet a stall.
NO_SIGNAL_WATCH = 0.5

# A step's standard deviation of one reward below this is "no variation" (TRL logs float32: 0.0 exactly, or noise
# around 1e-8 for sums of equal floats).
CONSTANT_STD = 1e-6
# An epoch needs this many step records, an evaluation this many samples, before "never varies" means anything.
CONSTANT_MIN_STEPS = 2
CONSTANT_MIN_SAMPLES = 10

# A format reward "rises towards its ceiling" when its mean per step grew by this much from the first to the last
# fifth of the steps (our format rewards pay 0 to 0.5 or 0 to 1, open-r1's 0 to 1: 0.1 is a fifth or a tenth of
# their range, more than batch-to-batch noise on 16+ completions).
FORMAT_RISE = 0.1
# Correctness that grew by less than this is flat: greedy pass@1 from zero-shot to the last evaluation, or without
# evaluations a correctness reward's mean per step (a twentieth of a 0-1 scale: one more right answer in 20).
CORRECTNESS_RISE = 0.05

# |loss| at the first logged step below this is "zero" (the policy term's value is exactly 0 on-policy; beta * KL
# starts at 0 and is of the order beta * 1e-3 after a step).
ZERO_LOSS = 1e-4


def groups_without_signal(run: RunRecords) -> list[Finding]:
    """The share of prompt groups whose completions all scored the same, per epoch (TRL's frac_reward_zero_std)."""
    steps, shares = run.series("frac_reward_zero_std")
    if not shares:
        return []
    overall = mean(shares)
    if overall < NO_SIGNAL_WATCH:
        return []
    per_epoch = []
    for epoch, rows in steps_by_epoch(run.steps).items():
        values = [row["frac_reward_zero_std"] for row in rows if is_number(row.get("frac_reward_zero_std"))]
        if values:
            per_epoch.append(f"{pct(mean(values))} in epoch {epoch} ({step_span(rows)})")
    shown = per_epoch if len(per_epoch) <= 6 else [*per_epoch[:3], "...", *per_epoch[-2:]]
    reward_steps, rewards = run.series("reward")
    mean_reward = f"; the mean reward was {num(mean(rewards))}" if rewards else ""
    return [
        Finding(
            name="groups_without_signal",
            severity=PROBLEM if overall >= NO_SIGNAL_PROBLEM else WATCH,
            title="groups without signal",
            evidence=(
                f"{pct(overall)} of prompt groups had every completion score the same ({'; '.join(shown)}), so "
                f"GRPO learned from the other {pct(1 - overall)} only{mean_reward}"
            ),
            meaning=(
                "A group whose completions all score alike (all right, or all wrong) gives each of them advantage "
                "0: it costs a rollout and teaches nothing. The fewer mixed groups, the slower or stiller training."
            ),
            to_try=(
                "more completions per prompt (train.num_generations), more varied ones (train.temperature), a "
                "graduated reward instead of a pass/fail one (countdown_reward rather than countdown_binary_reward, "
                "rewards[].params), or prompts nearer the model's level (data.options, data.train_samples)"
            ),
            plot=Plot(
                "Share of prompt groups with no reward spread (frac_reward_zero_std)",
                "share of groups",
                (Series("frac_reward_zero_std", tuple(steps), tuple(shares)),),
                threshold=NO_SIGNAL_PROBLEM,
            ),
        )
    ]


def constant_rewards(run: RunRecords) -> list[Finding]:
    """A reward with the same score on every completion of an epoch (std 0 at every step) or an evaluation (every
    sample), with one sample and the reward's reason for its score."""
    findings = []
    for name in run.reward_names:
        epochs = _constant_epochs(run, name)
        evals = _constant_evals(run, name)
        if not epochs and not evals:
            continue
        parts = []
        if epochs:
            values = sorted({value for _, _, value in epochs if value is not None})
            scored = f"scored {_values(values)} on every training completion" if values else "never varied"
            where = ", ".join(f"epoch {epoch} ({span})" for epoch, span, _ in epochs)
            parts.append(f"{scored} of {where} (std 0 at every step)")
        if evals:
            parts.append(
                "gave every sample of the "
                + ", ".join(f"{label} evaluation ({count} samples) {num(value)}" for label, count, value in evals)
            )
        example = _example(run, name, [label for label, _, _ in evals])
        every_epoch = len(epochs) == len(steps_by_epoch(run.steps)) and bool(epochs)
        findings.append(
            Finding(
                name="constant_reward",
                severity=WATCH,
                title=f"{name} never varies",
                subject=name,
                evidence=f"{name} {'; '.join(parts)}{example}",
                meaning=(
                    "A reward that gives every completion the same score adds the same amount to each, and GRPO's "
                    "group mean takes it away again: it teaches nothing"
                    + (" in this run." if every_epoch else " while it stays constant.")
                    + " At its ceiling it has been learned; at its floor the model never does what it checks."
                ),
                to_try=(
                    "at the floor: a lenient version of it (mark_reward rather than strict_mark_reward), or a "
                    "prompt that asks for what it checks (data.prompt_template, data.system_prompt); at the ceiling "
                    "or either way: lower its weight or drop it from rewards; see why it scores as it does with "
                    "experiments/score_rewards.py samples/<label>.jsonl --explain"
                ),
            )
        )
    return findings


def _constant_epochs(run: RunRecords, name: str) -> list[tuple[int, str, float | None]]:
    """(epoch, its steps, the one score or None) for each epoch in which the reward never varied within a step."""
    found = []
    for epoch, rows in steps_by_epoch(run.steps).items():
        stds = [row.get(f"rewards/{name}/std") for row in rows]
        if len(rows) < CONSTANT_MIN_STEPS or not all(is_number(std) for std in stds):
            continue
        if max(abs(std) for std in stds) > CONSTANT_STD:
            continue
        means = [row.get(f"rewards/{name}/mean") for row in rows if is_number(row.get(f"rewards/{name}/mean"))]
        same = means and max(means) - min(means) <= CONSTANT_STD
        found.append((epoch, step_span(rows), means[0] if same else None))
    return found


def _constant_evals(run: RunRecords, name: str) -> list[tuple[str, int, float]]:
    """(label, samples, the one score) for each evaluation whose samples all got the same score from the reward."""
    found = []
    for row in run.evals:
        if row.get("same_as"):  # the final evaluation that reuses the last epoch's: said once, under its label
            continue
        scores = [sample.get("rewards", {}).get(name) for sample in run.samples_of(row["label"])]
        scores = [score for score in scores if is_number(score)]
        if len(scores) >= CONSTANT_MIN_SAMPLES and max(scores) - min(scores) <= CONSTANT_STD:
            found.append((row["label"], len(scores), scores[0]))
    return found


def _example(run: RunRecords, name: str, labels: list[str]) -> str:
    """'; e.g. final greedy sample 3 "..." scored 0: <reason>' from the latest evaluation's samples."""
    if run.samples is None:
        return " (no samples in these records: the example and its reason need a grpo-lab run dir)"
    label = labels[-1] if labels else (run.last_eval or {}).get("label")
    sample = next((s for s in run.samples_of(label) if s.get("kind") == "greedy"), None) if label else None
    if sample is None:
        return ""
    score = (sample.get("rewards") or {}).get(name)
    reason = run.explain(name, sample) if run.explain is not None else None
    why = f": {reason}" if reason else ""
    return (
        f"; e.g. the {label} greedy completion of test prompt {sample.get('index')} "
        f'"{excerpt(sample.get("completion", ""), 70)}" scored {num(score) if is_number(score) else "n/a"}{why}'
    )


def _values(values: list[float]) -> str:
    return " / ".join(num(value) for value in values[:4]) + (" (by epoch)" if len(values) > 1 else "")


def layout_without_content(run: RunRecords) -> list[Finding]:
    """Format rewards rising towards their ceiling while correctness (held-out pass@1, else the correctness
    rewards) stays flat."""
    risen = []
    for name in run.reward_names:
        if reward_kind(name) != "format":
            continue
        windows = window_means(*run.series(f"rewards/{name}/mean"))
        if windows is not None and windows.change >= FORMAT_RISE:
            risen.append((name, windows))
    if not risen:
        return []
    flat = _correctness_flat(run)
    if flat is None:
        return []
    where = risen[0][1].where()
    rises = ", ".join(f"{name} {num(w.early)} -> {num(w.late)}" for name, w in risen)
    return [
        Finding(
            name="layout_without_content",
            severity=PROBLEM,
            title="layout without content",
            evidence=f"{rises} ({where}) while {flat}",
            meaning=(
                "The model learned to write the answer's layout (the tags and marks the format rewards check) but "
                "not to get the answer right: the format rewards pay for the first, and nothing made the second "
                "easier to find."
            ),
            to_try=(
                "weight correctness over format (rewards[].weight), drop the format rewards once they are learned, "
                "make the correctness reward graduated (partial credit), look at what the answer block holds "
                "(report.html's samples: a copied example or the question's first number is layout only), or start "
                "from a stronger model (model.name)"
            ),
            plot=Plot(
                "Format rewards per step",
                "mean reward",
                tuple(Series(name, *map(tuple, run.series(f"rewards/{name}/mean"))) for name, _ in risen),
            ),
        )
    ]


def _correctness_flat(run: RunRecords) -> str | None:
    """How correctness stayed flat ("greedy pass@1 0.000 -> 0.000 on 20 prompts, within its noise"), or None when
    it rose by CORRECTNESS_RISE or more (noise or not: a rise that size is no "layout only") or nothing measures it."""
    zero, last = run.zero_shot, run.last_eval
    if zero is not None and last is not None and "pass@1" in zero["metrics"] and "pass@1" in last["metrics"]:
        difference = compare_rates(
            zero["metrics"]["pass@1"],
            int(zero["metrics"].get("num_prompts") or 1),
            last["metrics"]["pass@1"],
            int(last["metrics"].get("num_prompts") or 1),
        )
        if difference.delta >= CORRECTNESS_RISE:
            return None
        return difference.describe(f"greedy pass@1 (zero-shot -> {last['label']})")
    flat = []
    for name in run.reward_names:
        if reward_kind(name) != "correctness":
            continue
        windows = window_means(*run.series(f"rewards/{name}/mean"))
        if windows is None:
            continue
        if windows.change >= CORRECTNESS_RISE:
            return None
        flat.append(f"{name} went {num(windows.early)} -> {num(windows.late)}")
    return " and ".join(flat) + " (no held-out evaluation in these records)" if flat else None


def zero_loss_at_start(run: RunRecords) -> list[Finding]:
    """The loss is 0 at the start of GRPO: expected, and why (a note)."""
    leading = []
    for row in run.steps:
        loss = row.get("loss")
        if not is_number(loss) or abs(loss) >= ZERO_LOSS:
            break
        leading.append(row)
    if not leading:
        return []
    beta = run.config_value("train.beta")
    has_kl = any(is_number(row.get("kl")) for row in run.steps)
    kl_part = (
        "the KL penalty beta * KL starts at 0 too, since the policy starts as the reference, and grows as it moves"
        if has_kl or (is_number(beta) and beta > 0)
        else "with no KL penalty (train.beta 0) that term is all there is"
    )
    return [
        Finding(
            name="zero_loss_at_start",
            severity=NOTE,
            title="loss 0 at the start is expected",
            evidence=f"|loss| < {ZERO_LOSS:g} at {step_span(leading)} (the first logged {leading[0]['loss']:.3g})",
            meaning=(
                "On-policy (train.num_iterations 1) the probability ratio is exactly 1 and the advantages of a group "
                f"sum to 0, so the policy term's value is 0 while its gradient is not; {kl_part}. The loss value is "
                "no progress signal in GRPO: watch the reward and pass@1 (open-r1 issue 239, trl issue 3452)."
            ),
            to_try="nothing; for a nonzero loss curve set train.beta > 0 (the KL term)",
        )
    ]


def no_baseline(run: RunRecords) -> list[Finding]:
    """train.baseline none: with rewards that are never negative every sampled completion is pushed up."""
    if run.config_value("train.baseline") != "none":
        return []
    steps, rewards = run.series("reward")
    lowest = min(rewards) if rewards else None
    non_negative = lowest is not None and lowest >= 0
    formats = [name for name in run.reward_names if reward_kind(name) == "format"]
    windows = window_means(steps, rewards)
    trend = f"; the mean reward went {num(windows.early)} -> {num(windows.late)} ({windows.where()})" if windows else ""
    evidence = (
        f"train.baseline none, and the lowest mean reward of a step was {num(lowest)}{trend}"
        if lowest is not None
        else "train.baseline none"
    )
    return [
        Finding(
            name="no_baseline",
            severity=WATCH if non_negative else NOTE,
            title="no baseline: every sampled completion is pushed up",
            evidence=evidence,
            meaning=(
                "Without the group mean subtracted, a completion's advantage is its reward itself; with rewards that "
                "are never negative every sampled completion is made more likely, the wrong ones too"
                + (f", and format-only completions ({', '.join(formats)} pays them) most of all." if formats else ".")
                + " In our Countdown miniature (docs/studies.md, 2a) pass@1 went 0.04 -> 0.02 without a baseline and "
                "0.04 -> 0.29 with one."
            ),
            to_try="train.baseline: mean (GRPO's group mean), or rewards that are negative for a wrong answer",
        )
    ]
