"""Every check in order, the verdict, and which findings are new since the console last showed them.

The verdict is one line: "learning" when held-out greedy pass@1 rose beyond its sampling noise
(train/diagnosis/noise.py); "not learning" when it fell beyond it, or stayed within it; for a run with no
evaluation (a plain TRL run) the training reward decides, rising by at least REWARD_RISE_SHARE of its spread
between completions. The main why is the first problem found, in the order of CHECKS: the most specific first,
and a cause before what it causes (answers cut off at the budget before the layout learned without content).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from train.diagnosis import outcomes, policy, signal
from train.diagnosis.base import (
    NOTE,
    PROBLEM,
    REWARD_RISE_SHARE,
    SEVERITIES,
    WATCH,
    Finding,
    RunRecords,
    mean,
    num,
    window_means,
)
from train.diagnosis.outcomes import pass1_difference

# New findings the console prints after an evaluation: the most severe first.
CONSOLE_LINES = 3

# (check, what it reads): "steps" needs training records, "evals" evaluations, "samples" the evaluations' samples.
# A check whose input the records lack is skipped and said in `Diagnosis.skipped`.
CHECKS: list[tuple[Callable[[RunRecords], list[Finding]], tuple[str, ...], str]] = [
    (outcomes.reward_hacking_or_collapse, ("evals",), "reward up / held-out accuracy down"),
    (policy.policy_running_away, ("steps",), "the policy running away"),
    (outcomes.length_and_budget, ("steps", "evals"), "length collapse / budget hits"),
    (signal.layout_without_content, ("steps",), "layout without content"),
    (signal.groups_without_signal, ("steps",), "groups without signal"),
    (policy.policy_not_moving, ("steps",), "the policy not moving"),
    (signal.constant_rewards, ("steps", "samples"), "a reward that never varies"),
    (policy.entropy_collapse, ("steps",), "entropy collapsing early"),
    (outcomes.no_diversity, ("evals",), "no diversity (pass@k against pass@1)"),
    (outcomes.within_noise, ("evals",), "differences within sampling noise"),
    (signal.no_baseline, ("steps",), "no baseline"),
    (signal.zero_loss_at_start, ("steps",), "the zero loss at the start"),
]


@dataclass(frozen=True)
class Verdict:
    learning: bool | None  # None: nothing to judge by yet
    line: str

    def as_dict(self) -> dict[str, Any]:
        return {"learning": self.learning, "line": self.line}


@dataclass
class Diagnosis:
    verdict: Verdict
    findings: list[Finding]
    skipped: list[str] = field(default_factory=list)
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        """summary.json's "diagnosis": the verdict, every finding, and what could not be checked."""
        return {
            "verdict": self.verdict.line,
            "learning": self.verdict.learning,
            "findings": [finding.as_dict() for finding in self.findings],
            "skipped": self.skipped,
        }

    def counts(self) -> str:
        """1 problem, 2 watch, 1 note"""
        counts = {severity: sum(f.severity == severity for f in self.findings) for severity in SEVERITIES}
        parts = [f"{count} {severity}" for severity, count in counts.items() if count]
        return ", ".join(parts) or "no findings"


def diagnose(run: RunRecords) -> Diagnosis:
    """Every check on the records, most severe first (in CHECKS order within a severity), and the verdict."""
    has = {
        "steps": bool(run.steps),
        "evals": bool(run.evals),
        "samples": run.samples is not None and any(run.samples.values()),
    }
    findings: list[Finding] = []
    skipped = []
    for check, needs, what in CHECKS:
        if not any(has[need] for need in needs):
            skipped.append(f"{what}: needs {' or '.join(_NEEDS[need] for need in needs)}")
            continue
        findings += check(run)
    if run.samples is None and run.steps:
        skipped.append("a never-varying reward's example and its reason: needs the evaluations' samples")
    order = {severity: index for index, severity in enumerate(SEVERITIES)}
    findings.sort(key=lambda finding: order[finding.severity])  # stable: CHECKS order within a severity
    return Diagnosis(verdict(run, findings), findings, skipped, run.source)


_NEEDS = {
    "steps": "training step records",
    "evals": "held-out evaluations (a grpo-lab run dir)",
    "samples": "the evaluations' samples (samples/<label>.jsonl)",
}


def verdict(run: RunRecords, findings: list[Finding]) -> Verdict:
    problems = [finding for finding in findings if finding.severity == PROBLEM]
    why = f"; main why: {problems[0].title}" if problems else ""
    zero, last = run.zero_shot, run.last_eval
    difference = pass1_difference(zero, last) if zero is not None and last is not None else None
    windows = window_means(*run.series("reward"))
    trend = (
        f"the mean training reward went {num(windows.early)} -> {num(windows.late)} ({windows.where()})"
        if windows is not None
        else ""
    )
    if difference is not None:
        change = difference.describe(f"greedy pass@1 (zero-shot -> {last['label']})")
        if difference.beyond_noise and difference.delta > 0:
            but = f"; but {problems[0].title}" if problems else ""
            return Verdict(True, f"learning: {change}{but}")
        if difference.beyond_noise:
            return Verdict(False, f"not learning: {change}{why}")
        return Verdict(False, f"not learning measurably: {change}{'; ' + trend if trend else ''}{why}")
    if windows is None:
        return Verdict(None, "no verdict yet: no evaluation after training and fewer than 2 reward records")
    spread = mean(run.series("reward_std")[1])
    needed = REWARD_RISE_SHARE * spread if spread == spread and spread > 0 else 0.0
    no_eval = " (no held-out evaluation in these records: the training reward is all there is to judge by)"
    if windows.change > needed:
        but = f"; but {problems[0].title}" if problems else ""
        return Verdict(True, f"learning on the training reward: {trend}{but}{no_eval}")
    return Verdict(False, f"not learning: {trend}{why}{no_eval}")


class NewFindings:
    """The findings not shown yet: what the console prints after each evaluation (at most CONSOLE_LINES, the most
    severe first). `records` returns the run's RunRecords as they are now."""

    def __init__(self, records: Callable[[], RunRecords]):
        self.records = records
        self.shown: set[str] = set()

    def __call__(self, limit: int = CONSOLE_LINES) -> list[Finding]:
        fresh = [finding for finding in diagnose(self.records()).findings if finding.key not in self.shown]
        chosen = fresh[:limit]
        self.shown.update(finding.key for finding in chosen)
        return chosen


__all__ = ["CHECKS", "NOTE", "PROBLEM", "WATCH", "Diagnosis", "NewFindings", "Verdict", "diagnose", "verdict"]
