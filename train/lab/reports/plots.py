"""The report's plots, as PNG bytes: matplotlib's object API on the Agg canvas (no pyplot, no display, no global
backend switch, so it is safe inside the training process), nothing from wandb.

Per-step curves are drawn raw (faint) with a smoothed line on top. The smoothing is an exponential moving
average, debiased as TensorBoard's is: s_t = w * s_(t-1) + (1 - w) * x_t with s_0 = 0, drawn as
s_t / (1 - w^t), where t counts the points seen so far; w = `SMOOTHING` (0.9, about the last 10-20 steps), so the
first points are not dragged toward zero and a run of any length gets a line.

    images = run_plots(load_run(run_dir))   # {"reward_per_step": png bytes, ...}; a plot with no data is left out
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from train.lab.reports.rundata import RunData

SMOOTHING = 0.9
DPI = 90
WIDE = (9.0, 3.3)
NARROW = (6.0, 3.3)

Series = tuple[list[float], list[float]]


def ema(values: Sequence[float | None], weight: float = SMOOTHING) -> list[float | None]:
    """Debiased exponential moving average (see the module docstring); a None or NaN value stays None and is not
    averaged in."""
    smoothed: list[float | None] = []
    state, seen = 0.0, 0
    for value in values:
        if value is None or not math.isfinite(value):
            smoothed.append(None)
            continue
        seen += 1
        state = weight * state + (1.0 - weight) * value
        smoothed.append(state / (1.0 - weight**seen))
    return smoothed


def step_series(run: RunData, key: str, scale: float = 1.0) -> Series:
    """(steps, values) of one step-record key, leaving out steps that lack it."""
    steps, values = [], []
    for row in run.steps:
        value = row.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            steps.append(float(row.get("step", len(steps))))
            values.append(float(value) * scale)
    return steps, values


def total_reward_series(run: RunData) -> Series:
    """The mean weighted total reward per step: TRL's `reward`, else our reward_sum / num_completions."""
    steps, values = step_series(run, "reward")
    if steps:
        return steps, values
    for row in run.steps:
        count = row.get("num_completions")
        if count:
            steps.append(float(row.get("step", len(steps))))
            values.append(float(row.get("reward_sum") or 0.0) / count)
    return steps, values


def eval_points(run: RunData) -> list[dict[str, Any]]:
    """The evaluations to plot against their step: each once (the final eval that reuses the last epoch's, or that
    falls on the same step as an earlier one, is not drawn twice)."""
    points, seen_steps = [], set()
    for row in run.evals:
        if row.get("same_as") or row["step"] in seen_steps:
            continue
        seen_steps.add(row["step"])
        points.append(row)
    return points


def pass_k_keys(metrics: dict[str, Any]) -> list[str]:
    """pass@1 (greedy) first, then pass@1_sampled, pass@5, ... in increasing k."""
    keys = [key for key in metrics if key.startswith("pass@") and isinstance(metrics[key], int | float)]

    def order(key: str) -> tuple[int, int]:
        k = key.removeprefix("pass@").removesuffix("_sampled")
        return (int(k) if k.isdigit() else 10**6, key.endswith("_sampled"))

    return sorted(keys, key=order)


def pass_k_label(key: str) -> str:
    if key == "pass@1":
        return "pass@1 (greedy)"
    if key == "pass@1_sampled":
        return "pass@1 (sampled)"
    return key


# ----------------------------------------------------------------------------------------------------------------
# One run


def reward_per_step_plot(run: RunData) -> bytes | None:
    total = total_reward_series(run)
    if not total[0]:
        return None
    names = run.reward_names
    fig = Figure(figsize=WIDE if names else NARROW, layout="constrained")
    axes = fig.subplots(1, 2 if names else 1, squeeze=False)[0]
    _raw_and_smoothed(axes[0], total, "total", "C0")
    axes[0].set_title("mean total reward per step")
    if names:
        for i, name in enumerate(names):
            _raw_and_smoothed(axes[1], step_series(run, f"rewards/{name}/mean"), name, f"C{(i + 1) % 10}")
        axes[1].set_title("mean reward per step, each reward")
    for ax in axes:
        _finish(ax, "step", "reward")
    return to_png(fig)


def epoch_reward_plot(run: RunData) -> bytes | None:
    if not run.epochs:
        return None
    epochs = [int(row.get("epoch", i + 1)) for i, row in enumerate(run.epochs)]
    fig = Figure(figsize=WIDE, layout="constrained")
    left, right = fig.subplots(1, 2)
    accumulated = [row.get("epoch/accumulated_reward") or 0.0 for row in run.epochs]
    left.bar(epochs, accumulated, color="C0")
    left.set_title("accumulated reward per epoch")
    _finish(left, "epoch", "sum of total reward", legend=False)
    right.plot(epochs, _none_to_nan([row.get("epoch/mean_reward") for row in run.epochs]), "o-", label="total")
    for i, name in enumerate(run.reward_names):
        values = _none_to_nan([row.get(f"epoch/rewards/{name}/mean") for row in run.epochs])
        right.plot(epochs, values, "o--", color=f"C{(i + 1) % 10}", label=name, alpha=0.8)
    right.set_title("mean reward per epoch")
    _finish(right, "epoch", "mean reward")
    for ax in (left, right):
        ax.set_xticks(epochs)
    return to_png(fig)


def pass_at_k_plot(run: RunData) -> bytes | None:
    points = eval_points(run)
    if not points:
        return None
    keys = pass_k_keys(points[-1]["metrics"]) or pass_k_keys(points[0]["metrics"])
    if not keys:
        return None
    fig = Figure(figsize=NARROW, layout="constrained")
    ax = fig.subplots()
    zero_shot = run.zero_shot or {}
    for i, key in enumerate(keys):
        steps = [row["step"] for row in points]
        values = _none_to_nan([row["metrics"].get(key) for row in points])
        ax.plot(steps, values, "o-", color=f"C{i}", label=pass_k_label(key))
        if isinstance(zero_shot.get(key), int | float):
            ax.axhline(zero_shot[key], color=f"C{i}", linestyle=":", alpha=0.6)
    ax.set_title("pass@k per evaluation (dotted: zero-shot)")
    ax.set_ylim(bottom=0)
    _finish(ax, "step", "pass rate")
    return to_png(fig)


def kl_plot(run: RunData) -> bytes | None:
    series = step_series(run, "kl")
    if not series[0]:
        return None
    fig = Figure(figsize=NARROW, layout="constrained")
    ax = fig.subplots()
    _raw_and_smoothed(ax, series, "kl", "C3")
    beta = run.config_value("train.beta")
    ax.set_title(f"KL to the reference policy per step (beta {beta})" if beta is not None else "KL per step")
    _finish(ax, "step", "kl", legend=False)
    return to_png(fig)


def completions_plot(run: RunData) -> bytes | None:
    length = step_series(run, "completions/mean_length")
    # Our budget_hit_ratio counts the completions that used the whole budget; TRL's clipped_ratio (runs recorded
    # before it existed) also counts those that stopped on a stop string (train/records/format.py).
    clipped = step_series(run, "completions/budget_hit_ratio")
    clipped_title = "completions that used the whole token budget"
    if not clipped[0]:
        clipped = step_series(run, "completions/clipped_ratio")
        clipped_title = "TRL's clipped ratio (also counts stops on a stop string)"
    if not length[0] and not clipped[0]:
        return None
    fig = Figure(figsize=WIDE, layout="constrained")
    left, right = fig.subplots(1, 2)
    _raw_and_smoothed(left, length, "mean", "C0")
    low, high = step_series(run, "completions/min_length"), step_series(run, "completions/max_length")
    if low[0] and low[0] == high[0]:
        left.fill_between(low[0], low[1], high[1], color="C0", alpha=0.12, label="min-max")
    budget = run.config_value("train.max_completion_length")
    if isinstance(budget, int):
        left.axhline(budget, color="grey", linestyle="--", label=f"budget {budget}")
    left.set_title("completion length (tokens) per step")
    _finish(left, "step", "tokens")
    _raw_and_smoothed(right, clipped, "clipped", "C1")
    right.set_ylim(-0.02, 1.02)
    right.set_title(clipped_title)
    _finish(right, "step", "share", legend=False)
    return to_png(fig)


def reward_timing_plot(run: RunData) -> bytes | None:
    names = [
        key.removeprefix("timing/reward/")
        for key in (run.steps[-1] if run.steps else {})
        if key.startswith("timing/reward/")
    ]
    if not names:
        return None
    fig = Figure(figsize=NARROW, layout="constrained")
    ax = fig.subplots()
    peaks = []
    for i, name in enumerate(names):
        series = step_series(run, f"timing/reward/{name}", scale=1000.0)
        _raw_and_smoothed(ax, series, name, f"C{i % 10}")
        peaks.extend(value for value in series[1] if value > 0)
    if peaks and max(peaks) / min(peaks) > 100:
        ax.set_yscale("log")
    ax.set_title("time in each reward per step")
    _finish(ax, "step", "milliseconds")
    return to_png(fig)


# name -> (caption, plot function), in report order
RUN_PLOTS: dict[str, tuple[str, Callable[[RunData], bytes | None]]] = {
    "reward_per_step": ("Mean total and per-reward reward per step (faint: raw; line: EMA)", reward_per_step_plot),
    "epoch_reward": ("Accumulated and mean reward per epoch", epoch_reward_plot),
    "pass_at_k": ("pass@k at each evaluation against zero-shot", pass_at_k_plot),
    "kl": ("KL to the reference policy per step", kl_plot),
    "completions": ("Completion length and clipped ratio per step", completions_plot),
    "reward_timing": ("Time spent in each reward per step", reward_timing_plot),
}


def run_plots(run: RunData) -> dict[str, bytes]:
    """Every run plot that has data, by name (RUN_PLOTS order)."""
    images = {}
    for name, (_, plot) in RUN_PLOTS.items():
        image = plot(run)
        if image is not None:
            images[name] = image
    return images


# ----------------------------------------------------------------------------------------------------------------
# Several runs (a sweep): one line per variant


def overlay_plot(
    lines: dict[str, Series],
    title: str,
    xlabel: str,
    ylabel: str,
    *,
    smooth: bool = False,
    markers: bool = True,
    ymin: float | None = None,
    legend_title: str | None = None,
) -> bytes | None:
    """One line per label; `smooth` draws the EMA only (raw per-step curves of many runs are unreadable). The
    legend goes below the plot, so long variant names do not squeeze it."""
    lines = {label: series for label, series in lines.items() if series[0]}
    if not lines:
        return None
    fig = Figure(figsize=(7.5, 3.6 + 0.22 * len(lines)), layout="constrained")
    ax = fig.subplots()
    for i, (label, (xs, ys)) in enumerate(lines.items()):
        values = ema(ys) if smooth else ys
        marker = "o" if markers and not smooth else None
        linestyle = "--" if i >= 10 else "-"  # past ten colors, dashes tell the lines apart
        ax.plot(
            xs, _none_to_nan(values), color=f"C{i % 10}", label=label, marker=marker, markersize=4, linestyle=linestyle
        )
    ax.set_title(title)
    if ymin is not None:
        ax.set_ylim(bottom=ymin)
    _finish(ax, xlabel, ylabel, legend=False)
    fig.legend(
        loc="outside lower center",
        ncols=2 if len(lines) > 3 else 1,
        fontsize=7,
        title=legend_title,
        title_fontsize=7,
        frameon=False,
    )
    return to_png(fig)


# ----------------------------------------------------------------------------------------------------------------
# A finding of the diagnosis (train/diagnosis): its own small plot in "What happened in this run"


def finding_plot(plot: Any) -> bytes:
    """A train.diagnosis.Plot: its series over steps (markers when there are few points), its threshold dashed."""
    fig = Figure(figsize=(5.0, 2.4), layout="constrained")
    ax = fig.subplots()
    for i, series in enumerate(plot.series):
        ax.plot(
            series.steps, series.values, "o-" if len(series.values) <= 20 else "-", color=f"C{i}", label=series.label
        )
    if plot.threshold is not None and math.isfinite(plot.threshold):
        ax.axhline(plot.threshold, color="grey", linestyle="--", label=f"threshold {plot.threshold:.3g}")
    ax.set_title(plot.title, fontsize=9)
    _finish(ax, plot.x_label, plot.y_label)
    return to_png(fig)


# ----------------------------------------------------------------------------------------------------------------


def to_png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _raw_and_smoothed(ax: Any, series: Series, label: str, color: str) -> None:
    steps, values = series
    if not steps:
        return
    if len(steps) > 1:
        ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
    ax.plot(steps, _none_to_nan(ema(values)), color=color, label=label, marker="o" if len(steps) == 1 else None)


def _finish(ax: Any, xlabel: str, ylabel: str, legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _none_to_nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if value is None else float(value) for value in values]
