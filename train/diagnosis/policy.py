"""Findings about how far the policy moves: not at all (KL near 0 and rewards flat), too far (KL growing while
accuracy falls), and its sampling entropy collapsing early.

TRL logs `kl` (the mean per-token k3 estimate of KL(policy || reference), Schulman 2020; only when beta > 0) and
`entropy` (the mean per-token entropy of the completions, in nats) at every logged step.
"""

from __future__ import annotations

from train.diagnosis.base import (
    PROBLEM,
    REWARD_RISE_SHARE,
    WATCH,
    Finding,
    Plot,
    RunRecords,
    Series,
    mean,
    num,
    window_means,
)
from train.diagnosis.outcomes import pass1_difference

# Steps a trend needs before "not moving" or "collapsed early" means anything (ten optimizer updates).
POLICY_MIN_STEPS = 10
# Per-token KL to the reference below this at the end: the policy has not moved (1e-4 nats a token is a change of
# about 1% in the probability of one token in a hundred; runs that learn reach 1e-3 to 1e-1 within 100 steps, e.g.
# our quickstart 0.05 by step 60).
KL_STILL = 1e-4
# ... while the mean reward changed by less than this share of its spread between completions (reward_std): flat.
REWARD_FLAT_SHARE = 0.1
# KL at the end at least this many times its first logged value, and above KL_HIGH (0.1 nats a token: a tenth of
# the policy's log-probability mass moved per token, where learning runs stay at 1e-3 to a few 1e-1): runs away.
KL_RUNAWAY_GROWTH = 10.0
KL_HIGH = 0.1
# KL at the end above this (a nat a token: the policy's samples are mostly ones the start would rarely draw) with
# accuracy not up is a problem even where a fall cannot be measured (pass@1 already near 0).
KL_EXTREME = 1.0
# Entropy at a third of training at most this share of its start: collapsing early. DAPO (Yu et al. 2025,
# arXiv:2503.14476, section 3.1) and Cui et al. 2025 (arXiv:2505.22617) show entropy falling fastest in the first
# steps and the accuracy the run can still reach falling with it.
ENTROPY_COLLAPSE_SHARE = 0.2
ENTROPY_EARLY_SHARE = 1 / 3


def policy_not_moving(run: RunRecords) -> list[Finding]:
    """KL near 0 and the reward flat for many steps."""
    steps, kls = run.series("kl")
    if len(kls) < POLICY_MIN_STEPS:
        return []
    kl = window_means(steps, kls)
    reward = window_means(*run.series("reward"))
    spread = mean(run.series("reward_std")[1])
    if kl is None or reward is None or kl.late >= KL_STILL:
        return []
    if abs(reward.change) >= REWARD_FLAT_SHARE * (spread if spread == spread and spread > 0 else 1.0):
        return []
    rate = run.config_value("train.learning_rate")
    return [
        Finding(
            name="policy_not_moving",
            severity=PROBLEM,
            title="the policy is not moving",
            evidence=(
                f"KL to the reference {kl.late:.2g} per token at {kl.late_where()}, and the mean reward "
                f"{num(reward.early)} -> {num(reward.late)} ({reward.where()}), less than "
                f"{pct_of(REWARD_FLAT_SHARE)} of its spread between completions ({num(spread)})"
                + (f"; train.learning_rate {rate}" if rate is not None else "")
            ),
            meaning=(
                "The updates are too small to change what the model samples: the reward cannot rise when the "
                "policy stays where it started."
            ),
            to_try=(
                "a higher train.learning_rate (TRL's default 1e-6 is for full fine-tuning; LoRA usually needs 1e-5 to "
                "1e-4), a larger LoRA (model.lora_rank, model.lora_alpha, model.target_modules), and groups that "
                "carry signal (see groups without signal)"
            ),
            plot=Plot("KL to the reference per step", "KL (nats/token)", (Series("kl", tuple(steps), tuple(kls)),)),
        )
    ]


def policy_running_away(run: RunRecords) -> list[Finding]:
    """KL grown many times over its first logged value (0 on-policy: the policy starts as the reference) and high,
    while held-out accuracy fell (a problem) or did not rise (watch); quiet when accuracy, or without evaluations the
    training reward, rose: a policy that moved far and got better learned."""
    steps, kls = run.series("kl")
    kl = window_means(steps, kls)
    if kl is None or len(kls) < POLICY_MIN_STEPS:
        return []
    if kl.late < KL_HIGH or kl.late < KL_RUNAWAY_GROWTH * max(kls[0], KL_STILL):
        return []
    zero, last = run.zero_shot, run.last_eval
    fall = pass1_difference(zero, last) if zero is not None and last is not None else None
    if fall is not None and fall.beyond_noise and fall.delta > 0:
        return []
    falling = fall is not None and fall.beyond_noise and fall.delta < 0
    if fall is None:
        reward = window_means(*run.series("reward"))
        spread = mean(run.series("reward_std")[1])
        if reward is not None and reward.change > REWARD_RISE_SHARE * (spread if spread > 0 else 0.0):
            return []
        accuracy = "; no held-out evaluation, and the training reward did not rise" + (
            f" ({num(reward.early)} -> {num(reward.late)})" if reward is not None else ""
        )
    else:
        accuracy = f"; greedy pass@1 {fall.before:.3f} -> {fall.after:.3f} ({last['label']})" + (
            "" if falling else ", not up beyond its noise"
        )
    return [
        Finding(
            name="policy_running_away",
            severity=PROBLEM if falling or kl.late >= KL_EXTREME else WATCH,
            title="the policy is running away",
            evidence=(
                f"KL to the reference {num(kls[0])} at step {steps[0]:g} -> {num(kl.late)} per token at "
                f"{kl.late_where()} (highest {num(max(kls))}){accuracy}"
            ),
            meaning=(
                "The policy moved far from where it started"
                + (" and got worse on held-out prompts: " if falling else " without getting better: ")
                + "large steps can trade what the model could do for whatever the reward pays."
            ),
            to_try=(
                "a lower train.learning_rate, a larger KL penalty (train.beta), a tighter clip (train.clip_eps), "
                "fewer passes per batch (train.num_iterations 1), or train.max_grad_norm lower"
            ),
            plot=Plot(
                "KL to the reference per step",
                "KL (nats/token)",
                (Series("kl", tuple(steps), tuple(kls)),),
                threshold=KL_HIGH,
            ),
        )
    ]


def entropy_collapse(run: RunRecords) -> list[Finding]:
    """The completions' entropy, averaged over a twentieth of the steps, falls below ENTROPY_COLLAPSE_SHARE of its
    start within the first third of the steps."""
    steps, entropy = run.series("entropy")
    if len(entropy) < POLICY_MIN_STEPS:
        return []
    # Means over a twentieth of the steps (at least one): the start, and each stretch of the first third, so one
    # step's dip (entropy is a noisy per-batch mean) is no collapse.
    size = max(1, round(len(entropy) * 0.05))
    start = mean(entropy[:size])
    early_end = max(2 * size, round(len(entropy) * ENTROPY_EARLY_SHARE))
    stretches = [(mean(entropy[i : i + size]), i + size - 1) for i in range(size, early_end - size + 1)]
    if start <= 0 or not stretches:
        return []
    lowest, last_index = min(stretches)
    if lowest > ENTROPY_COLLAPSE_SHARE * start:
        return []
    at = steps[last_index]
    temperature = run.config_value("train.temperature")
    return [
        Finding(
            name="entropy_collapse",
            severity=WATCH,
            title="entropy collapsing early",
            evidence=(
                f"mean token entropy {num(start)} nats at the start -> {num(lowest)} by step {at:g} (mean of {size} "
                f"steps, within the first third of {len(entropy)} logged steps), "
                f"{num(mean(entropy[-size:]))} at the end"
                + (f"; train.temperature {temperature}" if temperature is not None else "")
            ),
            meaning=(
                "The model became nearly certain of each token early: its samples look alike, groups score alike, "
                "and exploration, hence learning, slows down."
            ),
            to_try=(
                "a higher train.temperature, clip-higher (train.clip_eps_high 0.28, DAPO), a lower "
                "train.learning_rate, or train.beta > 0 to stay near the start"
            ),
            plot=Plot(
                "Mean token entropy per step",
                "nats",
                (Series("entropy", tuple(steps), tuple(entropy)),),
                threshold=ENTROPY_COLLAPSE_SHARE * start,
            ),
        )
    ]


def pct_of(share: float) -> str:
    return f"{100 * share:.0f}%"
