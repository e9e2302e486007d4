"""A run's report: report.md (with plots/*.png beside it) and report.html (one self-contained file), in the run dir.

    write_run_report("runs/quickstart-20260101-120000")   # -> Path of report.html, or None (never raises)

The report opens with "What happened in this run": the diagnosis' verdict and each finding with its evidence, what
it means, what to try and a small plot where one helps (train/diagnosis, train/lab/reports/run_diagnosis.py). It then
shows the zero-shot baseline against the final evaluation (or, for a run still going, the latest one),
every evaluation, every epoch's accumulated and mean reward, the training curves (reward per step, each reward,
pass@k, KL, completion length and clipped ratio, time per reward) and, in the HTML only, a few test prompts with
their zero-shot and final greedy completions side by side, each reward's score and the outcome.
It reads only the run dir's files (train/lab/reports/rundata.py), so it can be rebuilt at any time
(`experiments/report.py RUN_DIR`), and costs about a second (most of it drawing the plots).
"""

from __future__ import annotations

import math
import time
import traceback
from pathlib import Path
from typing import Any

from train.evaluation.metrics import COUNT_KEYS
from train.lab.reports import plots
from train.lab.reports.answer_blocks import answer_block_counts
from train.lab.reports.document import (
    Block,
    Heading,
    Html,
    Image,
    Paragraph,
    Table,
    esc,
    render_html,
    render_markdown,
)
from train.lab.reports.run_diagnosis import diagnose_run, diagnosis_section
from train.lab.reports.rundata import RunData, load_run, out_of_order_note
from train.lab.reports.tables import format_config_value, format_number
from train.records.files import write_atomic
from train.records.voice import warn

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS_DIR = "plots"
SAMPLES_SHOWN = 6


def write_run_report(run_dir: str | Path, samples: int = SAMPLES_SHOWN) -> Path | None:
    """Write report.md, report.html and plots/ into the run dir; returns report.html's path.

    Safe to call from the training loop after every epoch: it never raises (a problem is one warning and None).
    """
    try:
        return build_run_report(run_dir, samples=samples)
    except Exception as error:  # noqa: BLE001 - a report must never stop training
        warn(
            f"the run report for {run_dir} could not be written ({type(error).__name__}: {error}); training goes "
            f"on. Rebuild it with experiments/report.py {run_dir}\n{traceback.format_exc(limit=3)}"
        )
        return None


def build_run_report(run_dir: str | Path, samples: int = SAMPLES_SHOWN) -> Path:
    """write_run_report, raising: a UserError for a directory that is not a run dir, any other error as is."""
    run = load_run(run_dir)
    disorder = out_of_order_note(run)
    if disorder:
        warn(disorder)
    images = plots.run_plots(run)
    diagnosis, diagnosis_images = _diagnosis(run)
    for name, png in {**diagnosis_images, **images}.items():
        write_atomic(run.path / PLOTS_DIR / f"{name}.png", png)
    blocks = run_blocks(run, images, samples, diagnosis)
    write_atomic(run.path / REPORT_MD, render_markdown(blocks))
    html_path = run.path / REPORT_HTML
    write_atomic(html_path, render_html(blocks, title=f"{run.name}: run report"))
    return html_path


def _diagnosis(run: RunData) -> tuple[list[Block], dict[str, bytes]]:
    """The opening section; a diagnosis that fails is one paragraph, and the rest of the report is still written."""
    try:
        return diagnosis_section(diagnose_run(run))
    except Exception as error:  # noqa: BLE001 - the figures below do not depend on it
        return [Paragraph(f"The diagnosis could not run ({type(error).__name__}: {error}).")], {}


def run_blocks(
    run: RunData, images: dict[str, bytes], samples: int, diagnosis: list[Block] | None = None
) -> list[Block]:
    blocks: list[Block] = [Heading(f"Run report: {run.name}", 1), Paragraph(status_line(run))]
    setup = setup_line(run)
    if setup:
        blocks.append(Paragraph(setup))
    blocks += diagnosis or []
    blocks += result_blocks(run)
    blocks += eval_blocks(run)
    blocks += answer_block_blocks(run)
    blocks += epoch_blocks(run)
    if images:
        blocks.append(Heading("Training curves"))
        blocks.append(
            Paragraph(
                f"Per-step curves: faint line raw, solid line an exponential moving average (debiased, weight "
                f"{plots.SMOOTHING}). {len(run.steps)} step records."
            )
        )
        for name, png in images.items():
            blocks.append(Image(f"{PLOTS_DIR}/{name}.png", png, plots.RUN_PLOTS[name][0]))
    blocks += timing_blocks(run)
    blocks += sample_blocks(run, samples)
    return blocks


def status_line(run: RunData) -> str:
    parts = [f"Run dir {run.path}."]
    if run.finished:
        wall = run.wall_seconds
        parts.append("Finished" + (f" in {wall:.0f} s (its last session)." if wall is not None else "."))
    elif run.steps or run.evals:
        last_step = max([row.get("step", 0) for row in run.steps] + [row["step"] for row in run.evals])
        parts.append(
            f"In progress or stopped: no final evaluation yet; last record at step {last_step}, "
            f"{len(run.epochs)} epoch(s) complete."
        )
    else:
        parts.append("Not started: no records yet.")
    if run.skipped_lines:
        parts.append(f"{run.skipped_lines} unreadable line(s) of metrics.jsonl skipped (a torn last line).")
    disorder = out_of_order_note(run)
    if disorder:
        parts.append(f"Warning: {disorder}")
    parts.append(f"Report made {time.strftime('%Y-%m-%d %H:%M:%S')}.")
    return " ".join(parts)


def setup_line(run: RunData) -> str:
    if not run.config:
        return ""
    value = run.config_value
    rewards = format_config_value(value("rewards") or []) or "the task's default set"
    epochs = value("train.num_epochs")
    max_steps = value("train.max_steps")
    length = f"{max_steps} steps" if isinstance(max_steps, int) and max_steps > 0 else f"{epochs} epoch(s)"
    return (
        f"Model {value('model.name')}, task {value('data.task')} ({value('data.train_samples')} train / "
        f"{value('data.test_samples')} test prompts), rewards {rewards}. GRPO: loss {value('train.loss_type')}, "
        f"scale_rewards {value('train.scale_rewards')}, baseline {value('train.baseline')}, beta "
        f"{value('train.beta')}, learning rate {value('train.learning_rate')}, group {value('train.num_generations')}, "
        f"{value('train.per_device_train_batch_size')} completions x {value('train.gradient_accumulation_steps')} "
        f"accumulation per step, max tokens {value('train.max_completion_length')}, temperature "
        f"{value('train.temperature')}, {length}, seed {value('train.seed')}."
    )


def result_blocks(run: RunData) -> list[Block]:
    zero_shot, last = run.zero_shot or {}, run.last_eval or {}
    if not zero_shot and not last:
        return [Heading("Result"), Paragraph("No evaluation yet.")]
    label = run.last_eval_label
    title = "final" if label == "final" else f"latest ({label})" if label else "after training (none yet)"
    keys = [key for key in metric_order(last or zero_shot) if _is_number((last or zero_shot).get(key))]
    rows = []
    for key in keys:
        before, after = zero_shot.get(key), last.get(key)
        change = _delta(key, after - before) if _is_number(before) and _is_number(after) else ""
        rows.append([_label(key), _cell(key, before), _cell(key, after), change])
    return [Heading("Result"), Table(["metric", "zero-shot", title, "change"], rows)]


def eval_blocks(run: RunData) -> list[Block]:
    if not run.evals:
        return []
    sample = run.evals[-1]["metrics"]
    keys = [key for key in plots.pass_k_keys(sample)]
    keys += [k for k in ("correct", "partial", "failed", "mean_output_tokens", "budget_utilization") if k in sample]
    keys += ["reward/total"] if "reward/total" in sample else []
    rows = []
    for row in run.evals:
        label = row["label"] + (f" (= {row['same_as']})" if row.get("same_as") else "")
        epoch = row.get("epoch")
        rows.append(
            [label, str(row["step"]), f"{epoch:g}" if _is_number(epoch) else "-"]
            + [_cell(key, row["metrics"].get(key)) for key in keys]
        )
    return [
        Heading("Evaluations"),
        Table(["evaluation", "step", "epoch", *[_label(key) for key in keys]], rows, align_right_from=1),
    ]


def answer_block_blocks(run: RunData) -> list[Block]:
    """What the zero-shot and the final (or latest) greedy answer blocks hold: a layout learned by copying a number
    from the question shows here, where pass@1 alone cannot tell it from no layout at all."""
    labels = [label for label in ("zero_shot", run.last_eval_label) if label]
    counts = {label: answer_block_counts(_greedy_of(run, label).values()) for label in dict.fromkeys(labels)}
    counts = {label: row for label, row in counts.items() if sum(row.values())}
    if not counts:
        return []
    kinds = list(next(iter(counts.values())))
    rows = [[label, *[str(row[kind]) for kind in kinds], str(sum(row.values()))] for label, row in counts.items()]
    return [
        Heading("What the answer blocks hold"),
        Paragraph("Greedy replies by the content of their last <answer> block."),
        Table(["evaluation", *kinds, "replies"], rows, align_right_from=1),
    ]


def _greedy_of(run: RunData, label: str) -> dict[int, dict[str, Any]]:
    """The greedy samples of an evaluation; a final one that reused the last epoch's reads that epoch's file."""
    samples = run.greedy_samples(label)
    if not samples and label == "final":
        same_as = next((row.get("same_as") for row in run.evals if row["label"] == "final"), None)
        samples = run.greedy_samples(same_as) if same_as else {}
    return samples


def epoch_blocks(run: RunData) -> list[Block]:
    if not run.epochs:
        return []
    names = run.reward_names
    headers = ["epoch", "step", "accumulated reward", "mean reward", "samples", *[f"{n} mean" for n in names]]
    headers.append("pass@1 after")
    rows = []
    for row in run.epochs:
        epoch = row.get("epoch")
        after = run.eval(f"epoch_{epoch}") or {}
        rows.append(
            [
                str(epoch),
                str(row.get("step", "")),
                _cell("sum", row.get("epoch/accumulated_reward")),
                _cell("reward", row.get("epoch/mean_reward")),
                _cell("correct", row.get("epoch/num_samples")),
                *[_cell("reward", row.get(f"epoch/rewards/{name}/mean")) for name in names],
                _cell("pass@1", after.get("pass@1")),
            ]
        )
    return [Heading("Epochs"), Table(headers, rows)]


def timing_blocks(run: RunData) -> list[Block]:
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for row in run.steps:
        for key, value in row.items():
            if key.startswith("timing/reward/") and _is_number(value):
                name = key.removeprefix("timing/reward/")
                totals[name] = totals.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
    if not totals:
        return []
    grand = sum(totals.values()) or 1.0
    rows = [
        [name, f"{seconds:.3f}", f"{1000 * seconds / counts[name]:.2f}", f"{100 * seconds / grand:.0f}%"]
        for name, seconds in sorted(totals.items(), key=lambda item: -item[1])
    ]
    return [
        Heading("Time in each reward"),
        Table(["reward", "total seconds", "ms per step", "share"], rows),
    ]


# ----------------------------------------------------------------------------------------------------------------
# Samples (HTML only): zero-shot and final greedy completions of a few test prompts


def pick_samples(before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]], count: int) -> list[int]:
    """Prompt indexes to show, taken in turn from: fixed by training (wrong -> correct), broken (correct -> wrong),
    still wrong, still correct; each group in index order. Deterministic, so reports of one run agree."""
    groups: list[list[int]] = [[], [], [], []]
    for index in sorted(set(before) & set(after)):
        was, now = bool(before[index].get("correct")), bool(after[index].get("correct"))
        groups[0 if not was and now else 1 if was and not now else 2 if not now else 3].append(index)
    chosen: list[int] = []
    while len(chosen) < count and any(groups):
        for group in groups:
            if group and len(chosen) < count:
                chosen.append(group.pop(0))
    return chosen


def sample_blocks(run: RunData, count: int) -> list[Block]:
    label = run.last_eval_label
    if count <= 0 or label is None:
        return []
    before = run.greedy_samples("zero_shot")
    after = _greedy_of(run, label)
    indexes = pick_samples(before, after, count)
    if not indexes:
        return []
    title = "final" if label == "final" else f"latest ({label})"
    parts = [
        f"<p class=muted>{len(indexes)} of {len(after)} test prompts: greedy completions before training and "
        f"{esc(title)}, with each reward's score and the outcome (model text shown as plain text).</p>"
    ]
    for index in indexes:
        parts.append(_sample_html(index, before[index], after[index], title))
    return [
        Heading(f"Samples: zero-shot and {title}"),
        Html("\n".join(parts), markdown="Side-by-side completions of a few test prompts: see report.html."),
    ]


RECORD_KEYS = {
    "label", "kind", "index", "sample", "prompt", "completion", "num_tokens", "truncated", "rewards",
    "reward_total", "correct", "outcome", "question",
}  # fmt: skip


def _sample_html(index: int, before: dict[str, Any], after: dict[str, Any], title: str) -> str:
    gold = [f"{esc(key)}: {esc(_short(value))}" for key, value in after.items() if key not in RECORD_KEYS]
    return (
        f"<div class=sample><h3>Test prompt {index}</h3><pre>{esc(_prompt_text(after.get('prompt')))}</pre>"
        f"<p class=muted>{' · '.join(gold)}</p>"
        f"<div class=pair>{_completion_html('zero-shot', before)}{_completion_html(title, after)}</div></div>"
    )


def _completion_html(title: str, record: dict[str, Any]) -> str:
    outcome = str(record.get("outcome", ""))
    badge = outcome if outcome in ("correct", "partial", "failed") else "other"
    rewards = record.get("rewards") or {}
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td class=num>{esc(_score(score))}</td></tr>" for name, score in rewards.items()
    )
    rows += f"<tr><th>total</th><th class=num>{esc(_score(record.get('reward_total')))}</th></tr>"
    tokens = record.get("num_tokens")
    truncated = " (hit the budget)" if record.get("truncated") else ""
    return (
        f"<div><p><b>{esc(title)}</b> <span class='badge {badge}'>{esc(outcome or '?')}</span> "
        f"<span class=muted>{esc(tokens)} tokens{truncated}</span></p>"
        f"<pre>{esc(record.get('completion', ''))}</pre><table>{rows}</table></div>"
    )


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list):  # a chat: [{role, content}, ...]
        return "\n\n".join(
            f"[{m.get('role', '?')}] {m.get('content', '')}" if isinstance(m, dict) else str(m) for m in prompt
        )
    return str(prompt)


def _short(value: Any, limit: int = 300) -> str:
    text = format_config_value(value) if isinstance(value, list | dict) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _score(value: Any) -> str:
    return f"{value:.3f}" if _is_number(value) else "n/a"


# ----------------------------------------------------------------------------------------------------------------


def metric_order(metrics: dict[str, Any]) -> list[str]:
    """Headline first: pass@k, outcomes, length, rewards; bookkeeping (num_prompts, eval_seconds, ...) left out."""
    head = plots.pass_k_keys(metrics)
    head += [k for k in ("correct", "partial", "failed", "mean_output_tokens", "budget_utilization") if k in metrics]
    head += [k for k in ("truncated_frac", "reward/total") if k in metrics]
    head += [k for k in metrics if k.startswith("reward/") and k not in head]
    return head


def _label(key: str) -> str:
    if key.startswith("pass@"):
        return plots.pass_k_label(key)
    if key.startswith("reward/"):
        return key  # reward names as configured
    return {"truncated_frac": "truncated"}.get(key, key.replace("_", " "))


def _fmt(key: str) -> str:
    if key in COUNT_KEYS:
        return "count"
    if key == "mean_output_tokens":
        return "tokens"
    if key == "sum":
        return "sum"
    return "rate"


def _delta(key: str, delta: float) -> str:
    fmt = _fmt(key)
    if fmt == "count" and float(delta).is_integer():
        return f"{delta:+.0f}"
    return f"{delta:+.1f}" if fmt in ("count", "tokens") else f"{delta:+.3f}"


def _cell(key: str, value: Any) -> str:
    if not _is_number(value):
        return "-"
    return format_number(value, _fmt(key))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
