"""Is a difference between two pass rates more than sampling noise? The binomial standard error, and how many
prompts would tell.

A pass rate measured on n prompts is a binomial proportion; two evaluations (zero-shot and final, or two arms of a
compare) differ by d = p2 - p1 with standard error

    SE = sqrt(p~1 (1 - p~1) / (n1 + 2) + p~2 (1 - p~2) / (n2 + 2)),   p~ = (correct + 1) / (n + 2)

(Agresti and Caffo 2000, "Simple and effective confidence intervals for proportions and differences of proportions
result from adding two successes and two failures": the plain Wald SE is 0 at 0 of n, which would call any change
from 0 real). The difference is beyond noise when |d| > Z * SE with Z = 1.96 (a two-sided 95% interval; the
practice "Adding Error Bars to Evals", Miller 2024, arXiv:2411.00640, recommends for model evaluations). The same
prompts scored twice are paired, so this unpaired SE is conservative: a difference it calls real is real.

Prompts that would resolve a difference this size: the n at which Z * SE (both evaluations on n prompts, the same
rates) falls below |d|:  n = Z^2 (p~1 (1 - p~1) + p~2 (1 - p~2)) / d^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Two-sided 95%: the normal quantile 1.959964 (Miller 2024 uses the same for eval error bars).
Z_95 = 1.96


@dataclass(frozen=True)
class Difference:
    before: float
    after: float
    n_before: int
    n_after: int
    se: float

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def margin(self) -> float:
        """Z * SE: a difference smaller than this is within sampling noise."""
        return Z_95 * self.se

    @property
    def beyond_noise(self) -> bool:
        return abs(self.delta) > self.margin

    @property
    def prompts_to_resolve(self) -> int | None:
        """Prompts per evaluation at which a difference this size would be beyond noise; None for no difference."""
        if self.delta == 0:
            return None
        variance = _smoothed_variance(self.before, self.n_before) + _smoothed_variance(self.after, self.n_after)
        return math.ceil(Z_95**2 * variance / self.delta**2)

    def describe(self, what: str = "greedy pass@1") -> str:
        """greedy pass@1 0.040 -> 0.300 (+0.260) on 50 prompts, beyond its noise (+-0.139 at 95%)"""
        prompts = f"{self.n_after:,} prompts" if self.n_before == self.n_after else "these prompts"
        head = f"{what} {self.before:.3f} -> {self.after:.3f} ({self.delta:+.3f}) on {prompts}"
        if self.beyond_noise:
            return f"{head}, beyond its noise (+-{self.margin:.3f} at 95%)"
        needed = self.prompts_to_resolve
        resolve = f"; about {needed:,} prompts would resolve a difference this size" if needed else ""
        return f"{head}, within its noise (+-{self.margin:.3f} at 95%){resolve}"


def compare_rates(before: float, n_before: int, after: float, n_after: int) -> Difference:
    """The difference between two pass rates measured on n_before and n_after prompts (see the module docstring)."""
    n_before, n_after = max(int(n_before), 1), max(int(n_after), 1)
    se = math.sqrt(
        _smoothed_variance(before, n_before) / (n_before + 2) + _smoothed_variance(after, n_after) / (n_after + 2)
    )
    return Difference(before, after, n_before, n_after, se)


def _smoothed_variance(rate: float, n: int) -> float:
    """p~ (1 - p~) with p~ = (rate * n + 1) / (n + 2): Agresti-Caffo's one added success and one added failure."""
    smoothed = (rate * n + 1) / (n + 2)
    return smoothed * (1 - smoothed)
