"""What a diagnosis reads and what it says: `RunRecords` in, `Finding`s out, and the trends both sides share.

A trend over training compares the mean of the first and the last `TREND_WINDOW_SHARE` of the logged steps (at
least one step each), so one noisy step does not make a trend; `window_means` says which steps each window holds,
and the evidence names them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from train.records.format import config_value

PROBLEM, WATCH, NOTE = "problem", "watch", "note"
SEVERITIES = (PROBLEM, WATCH, NOTE)

# The first and the last fifth of the steps stand for "the start" and "the end" of training: long enough that one
# step's sampling noise averages out (a fifth of 300 steps is 60 batches), short enough to show where it ended.
TREND_WINDOW_SHARE = 0.2
# Without a held-out evaluation, a mean training reward that rose by a quarter of its spread between completions
# (reward_std) from the first to the last fifth of the steps is learning: a shift the size of a quarter of the
# within-batch spread is well outside the noise of a mean over a fifth of the steps' batches.
REWARD_RISE_SHARE = 0.25

# Rewards named like these check the layout of a completion (tags, marks), like these its correctness. Names are
# what a TRL or Unsloth run has (rewards/<function name>/mean); ours and open-r1's follow these words.
FORMAT_WORDS = ("format", "mark", "xml", "tag", "reasoning_steps")
CORRECTNESS_WORDS = ("correct", "accuracy", "countdown", "answer", "int_reward", "math", "equation", "match")

# (reward name, sample record) -> the reward's reason for its score (`RewardFunction.explain`), or None.
Explain = Callable[[str, dict[str, Any]], str | None]


@dataclass(frozen=True)
class Series:
    label: str
    steps: tuple[float, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class Plot:
    """A small plot that shows a finding: a few series over steps, and the threshold the finding crossed."""

    title: str
    y_label: str
    series: tuple[Series, ...]
    threshold: float | None = None
    x_label: str = "step"


@dataclass(frozen=True)
class Finding:
    """One thing the records say about this run. `subject` is what it is about (a reward, an evaluation) when a
    finding can be about several; `key` (name + subject) tells a new finding from one already shown."""

    name: str
    severity: str
    title: str
    evidence: str
    meaning: str
    to_try: str
    subject: str = ""
    plot: Plot | None = None

    @property
    def key(self) -> str:
        return f"{self.name}:{self.subject}" if self.subject else self.name

    def line(self) -> str:
        """problem: groups without signal: 84% of prompt groups ... (one line for a console)."""
        return f"{self.severity}: {self.title}: {self.evidence}"

    def as_dict(self) -> dict[str, str]:
        """What summary.json keeps of it (the plot is drawn by the report from the same records)."""
        return {
            "name": self.name,
            "severity": self.severity,
            "title": self.title,
            "subject": self.subject,
            "evidence": self.evidence,
            "meaning": self.meaning,
            "to_try": self.to_try,
        }


@dataclass
class RunRecords:
    """A run's records as a diagnosis reads them.

    steps     per logged step: our step records, or a trainer_state.json's log_history entries (TRL's keys:
              reward, reward_std, rewards/<f>/mean and /std, frac_reward_zero_std, kl, entropy, loss,
              completions/mean_length, completions/clipped_ratio, step, epoch)
    epochs    our epoch records (none from TRL)
    evals     {"label", "step", "epoch", "metrics"} per evaluation, metrics unprefixed (pass@1, partial_frac, ...)
    samples   {label: sample records} of each evaluation; None when the source has no samples at all (TRL)
    config    the run's config as a nested dict (config.yaml); {} when unknown
    source    what was read, for the messages ("run dir runs/x", "trainer_state.json of checkpoint-500")
    explain   the rewards' reasons for a score, when the caller could build the rewards
    """

    steps: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    samples: dict[str, list[dict[str, Any]]] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    explain: Explain | None = None

    def config_value(self, dotted: str, default: Any = None) -> Any:
        return config_value(self.config, dotted, default)

    @property
    def reward_names(self) -> list[str]:
        """Each reward's name, as the step records (rewards/<f>/mean), the evaluations (reward/<f>) or the samples
        (their `rewards`) name it."""
        names: list[str] = []
        for row in self.steps:
            for key in row:
                if key.startswith("rewards/") and key.endswith("/mean"):
                    name = key.removeprefix("rewards/").removesuffix("/mean")
                    if name not in names:
                        names.append(name)
        for row in self.evals:
            for key in row["metrics"]:
                if key.startswith("reward/") and key != "reward/total" and key.removeprefix("reward/") not in names:
                    names.append(key.removeprefix("reward/"))
        for rows in (self.samples or {}).values():
            for name in (rows[0].get("rewards") or {}) if rows else ():
                if name not in names:
                    names.append(name)
        return names

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of one step key, where it has a finite number."""
        steps, values = [], []
        for row in self.steps:
            value = row.get(key)
            if is_number(value):
                steps.append(float(row.get("step", len(steps) + 1)))
                values.append(float(value))
        return steps, values

    def eval_by_label(self, label: str) -> dict[str, Any] | None:
        found = [row for row in self.evals if row["label"] == label]
        return found[-1] if found else None

    @property
    def zero_shot(self) -> dict[str, Any] | None:
        return self.eval_by_label("zero_shot")

    @property
    def last_eval(self) -> dict[str, Any] | None:
        """The last evaluation after training started (the final one when the run has it)."""
        trained = [row for row in self.evals if row["label"] != "zero_shot"]
        final = [row for row in trained if row["label"] == "final"]
        return (final or trained or [None])[-1]

    def samples_of(self, label: str) -> list[dict[str, Any]]:
        return (self.samples or {}).get(label) or []


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


@dataclass(frozen=True)
class Windows:
    """The mean of the first and the last window of a series, and the steps each window spans."""

    early: float
    late: float
    early_steps: tuple[float, float]
    late_steps: tuple[float, float]

    @property
    def change(self) -> float:
        return self.late - self.early

    def where(self) -> str:
        """steps 1-20 vs 81-100"""
        return f"steps {_span(self.early_steps)} vs {_span(self.late_steps)}"

    def late_where(self) -> str:
        """steps 81-100"""
        return f"steps {_span(self.late_steps)}"


def window_means(steps: list[float], values: list[float], share: float = TREND_WINDOW_SHARE) -> Windows | None:
    """Mean of the first and last `share` of the points (at least one each); None with fewer than 2 points."""
    if len(values) < 2:
        return None
    size = max(1, round(len(values) * share))
    return Windows(
        early=mean(values[:size]),
        late=mean(values[-size:]),
        early_steps=(steps[0], steps[size - 1]),
        late_steps=(steps[-size], steps[-1]),
    )


def _span(span: tuple[float, float]) -> str:
    first, last = (f"{value:g}" for value in span)
    return first if first == last else f"{first}-{last}"


def epoch_of(row: dict[str, Any]) -> int:
    """The 1-based epoch a step record belongs to: TRL's `epoch` is fractional (0.01 ... 1.0 is epoch 1)."""
    epoch = row.get("epoch")
    if not is_number(epoch):
        return 1
    return max(1, math.ceil(float(epoch) - 1e-9))


def steps_by_epoch(steps: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in steps:
        grouped.setdefault(epoch_of(row), []).append(row)
    return grouped


def step_span(rows: list[dict[str, Any]]) -> str:
    """steps 1-100 (the first and last step of some records)."""
    first, last = rows[0].get("step", "?"), rows[-1].get("step", "?")
    return f"step {first}" if first == last else f"steps {first}-{last}"


def reward_kind(name: str) -> str:
    """ "format", "correctness" or "other", from the reward's name (see FORMAT_WORDS, CORRECTNESS_WORDS)."""
    lowered = name.lower()
    if any(word in lowered for word in FORMAT_WORDS):
        return "format"
    if any(word in lowered for word in CORRECTNESS_WORDS):
        return "correctness"
    return "other"


def pct(value: float) -> str:
    """0.325 -> 32.5%, 0.5 -> 50%."""
    text = f"{100 * value:.1f}".removesuffix(".0")
    return f"{text}%"


def num(value: float, digits: int = 3) -> str:
    """A figure as the evidence shows it: 3 significant digits, no trailing zeros beyond them."""
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"


def excerpt(text: str, width: int = 90) -> str:
    """A completion on one line, its middle elided: the start shows the reasoning, the end the answer."""
    flat = " ".join(str(text).split())
    if len(flat) <= width:
        return flat
    half = (width - 3) // 2
    return f"{flat[:half]}...{flat[-half:]}"
