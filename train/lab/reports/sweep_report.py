"""A sweep's table and report, in the sweep dir: table.md, table.csv, report.md, report.html and plots/.

    write_sweep_report("runs/sweeps/countdown_mini-20260101-120000")   # never raises; None on a problem

It reads sweep_state.json (written by train/lab/sweep.py: each run's name, variant, table labels, status, error) and
each run dir's files (train/lab/reports/rundata.py). One table row per variant, its repeats averaged (train/lab/reports/
tables.py, the same table as experiments/compare.py); overlay plots with one line per variant: greedy pass@1 at
each evaluation, mean reward per epoch and the smoothed mean reward per step (repeats averaged step by step).
"""

from __future__ import annotations

import json
import statistics
import traceback
from pathlib import Path
from typing import Any

from train.errors import UserError
from train.lab.reports import plots
from train.lab.reports.document import (
    Block,
    Heading,
    Html,
    Image,
    Paragraph,
    esc,
    render_html,
    render_markdown,
)
from train.lab.reports.run_report import REPORT_HTML, REPORT_MD, write_run_report
from train.lab.reports.rundata import RunData, load_run
from train.lab.reports.tables import ComparisonTable, Row, comparison_table
from train.records.files import write_atomic
from train.records.rundir import CONFIG_FILE, METRICS_FILE
from train.records.voice import warn

STATE_FILE = "sweep_state.json"
LOGS_DIR = "logs"
TABLE_MD = "table.md"
TABLE_CSV = "table.csv"
PLOTS_DIR = "plots"


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / STATE_FILE).is_file()


def read_state(sweep_dir: Path) -> dict[str, Any]:
    path = Path(sweep_dir) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{sweep_dir} is not a sweep dir: {STATE_FILE} is missing or unreadable ({error}).") from None
    if not isinstance(state, dict) or not isinstance(state.get("runs"), list):
        raise UserError(f"{path} is not a sweep state file (it has no list of runs).")
    for number, entry in enumerate(state["runs"], start=1):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise UserError(
                f"{path}: run {number} of its list has no usable name ({str(entry)[:80]}): each run is an object "
                "whose name is its directory in the sweep dir. The file was edited or damaged after the sweep wrote "
                "it; restore that entry's name (experiments/sweep.py SWEEP.yaml --dry-run lists the runs' names)."
            )
    return state


def write_sweep_report(sweep_dir: str | Path) -> Path | None:
    """build_sweep_report that never raises (called by the sweep after every run): a problem is one warning."""
    try:
        return build_sweep_report(sweep_dir)[-1]
    except Exception as error:  # noqa: BLE001 - a report must never stop the sweep
        warn(
            f"the sweep report for {sweep_dir} could not be written ({type(error).__name__}: {error}). Rebuild it "
            f"with experiments/report.py {sweep_dir}\n{traceback.format_exc(limit=3)}"
        )
        return None


def build_sweep_report(sweep_dir: str | Path, run_reports: bool = False) -> list[Path]:
    """Write the sweep's table and report (and, with run_reports, every run's report); returns the paths written,
    report.html last."""
    sweep_dir = Path(sweep_dir)
    state = read_state(sweep_dir)
    written: list[Path] = []
    if run_reports:
        for entry in state["runs"]:
            run_dir = sweep_dir / entry["name"]
            if run_dir.is_dir() and ((run_dir / METRICS_FILE).is_file() or (run_dir / CONFIG_FILE).is_file()):
                path = write_run_report(run_dir)
                if path is not None:
                    written.append(path)
    groups = sweep_groups(sweep_dir, state)
    table = sweep_table(state, groups)
    note = table.noise_note()
    write_atomic(sweep_dir / TABLE_MD, table.markdown() + (f"\n{note}\n" if note else ""))
    write_atomic(sweep_dir / TABLE_CSV, table.csv())
    images = sweep_plots(groups, table)
    for name, png in images.items():
        write_atomic(sweep_dir / PLOTS_DIR / f"{name}.png", png)
    blocks = sweep_blocks(sweep_dir, state, table, images)
    write_atomic(sweep_dir / REPORT_MD, render_markdown(blocks))
    html_path = sweep_dir / REPORT_HTML
    write_atomic(html_path, render_html(blocks, title=f"{state.get('name', sweep_dir.name)}: sweep report"))
    return [*written, sweep_dir / TABLE_MD, sweep_dir / TABLE_CSV, sweep_dir / REPORT_MD, html_path]


def sweep_groups(sweep_dir: Path, state: dict[str, Any]) -> dict[str, tuple[dict[str, Any], list[RunData]]]:
    """Variant -> (its first state entry, its runs' data), in the sweep's order; runs not started have no records."""
    groups: dict[str, tuple[dict[str, Any], list[RunData]]] = {}
    for entry in state["runs"]:
        run_dir = sweep_dir / entry["name"]
        try:
            run = load_run(run_dir)
        except UserError:
            run = RunData(path=run_dir)
        group = entry.get("group") or entry["name"]
        groups.setdefault(group, (entry, []))[1].append(run)
    return groups


def sweep_table(state: dict[str, Any], groups: dict[str, tuple[dict[str, Any], list[RunData]]]) -> ComparisonTable:
    spec = state.get("table") or {}
    header_of = spec.get("labels") or {}
    keys: list[str] = []
    for entry, _ in groups.values():
        keys += [key for key in entry.get("labels") or {} if key not in keys]
    headers = [header_of.get(key, key) for key in keys] or ["variant"]
    statuses = {entry["name"]: entry.get("status") for entry in state["runs"]}
    rows = []
    for group, (entry, runs) in groups.items():
        labels = entry.get("labels") or {}
        # A variant that does not set an axis runs with the base config's value there.
        cells = {header_of.get(key, key): labels.get(key, "base") for key in keys} if keys else {"variant": group}
        failed = [run for run in runs if statuses.get(run.name) == "failed"]
        status = f"failed ({len(failed)} of {len(runs)})" if failed else ""
        rows.append(Row(keys=cells, runs=runs, status=status))
    return comparison_table(rows, headers, spec.get("columns"), spec.get("best_by", "final_pass@1"))


def sweep_plots(groups: dict[str, tuple[dict[str, Any], list[RunData]]], table: ComparisonTable) -> dict[str, bytes]:
    """Overlays, one line per variant (a table row), named by its key cells: 'grpo / 16 / base'."""
    pass_1, epoch_reward, step_reward = {}, {}, {}
    for (_, runs), row in zip(groups.values(), table.rows, strict=True):
        name = " / ".join(_short(row.keys.get(key, "")) for key in table.key_headers)
        evals = [plots.eval_points(run) for run in runs]
        pass_1[name] = _mean_by_x(
            [([r["step"] for r in rows], [r["metrics"].get("pass@1") for r in rows]) for rows in evals]
        )
        epoch_reward[name] = _mean_by_x(
            [([r.get("epoch") for r in run.epochs], [r.get("epoch/mean_reward") for r in run.epochs]) for run in runs]
        )
        step_reward[name] = _mean_by_x([plots.total_reward_series(run) for run in runs])
    legend = " / ".join(table.key_headers)
    images = {
        "pass_at_1": plots.overlay_plot(
            pass_1, "greedy pass@1 at each evaluation", "step", "pass@1", ymin=0.0, legend_title=legend
        ),
        "epoch_mean_reward": plots.overlay_plot(
            epoch_reward, "mean training reward per epoch", "epoch", "reward", legend_title=legend
        ),
        "reward_per_step": plots.overlay_plot(
            step_reward, "mean total reward per step (EMA)", "step", "reward", smooth=True, legend_title=legend
        ),
    }
    return {name: png for name, png in images.items() if png is not None}


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


SWEEP_PLOT_CAPTIONS = {
    "pass_at_1": "Greedy pass@1 at each evaluation, one line per variant (repeats averaged)",
    "epoch_mean_reward": "Mean training reward per epoch, one line per variant",
    "reward_per_step": "Mean total reward per step, smoothed (EMA), one line per variant",
}


def sweep_blocks(
    sweep_dir: Path, state: dict[str, Any], table: ComparisonTable, images: dict[str, bytes]
) -> list[Block]:
    runs = state["runs"]
    counts: dict[str, int] = {}
    for entry in runs:
        # "running" is also what a run killed with its sweep stays until the sweep resumes
        status = {"running": "running (or killed)"}.get(entry.get("status", "pending"), entry.get("status", "pending"))
        counts[status] = counts.get(status, 0) + 1
    seconds = sum(entry.get("seconds") or 0.0 for entry in runs)
    repeats = state.get("repeats", 1)
    lines = [
        f"Sweep dir {sweep_dir}. Base config {state.get('base')}; sweep file {state.get('sweep_file')}.",
        f"{len(runs)} runs ({len(table.rows)} variants"
        + (f" x {repeats} seeds, varying {state.get('seed_key')}" if repeats > 1 else "")
        + f"): {', '.join(f'{n} {status}' for status, n in counts.items())}; {seconds:.0f} s of runs so far.",
    ]
    if repeats > 1:
        lines.append("Rows with several runs show mean ± sample standard deviation over the seeds.")
    blocks: list[Block] = [Heading(f"Sweep report: {state.get('name', sweep_dir.name)}", 1)]
    if state.get("description"):
        blocks.append(Paragraph(str(state["description"])))
    blocks += [Paragraph(" ".join(lines)), Heading("Results"), table.block()]
    if table.noise_note():
        blocks.append(Paragraph(table.noise_note()))
    blocks.append(Paragraph(f"The same table as CSV: {TABLE_CSV}; as Markdown: {TABLE_MD}."))
    if images:
        blocks.append(Heading("Curves"))
        blocks += [Image(f"{PLOTS_DIR}/{name}.png", png, SWEEP_PLOT_CAPTIONS[name]) for name, png in images.items()]
    failed = [entry for entry in runs if entry.get("status") == "failed"]
    if failed:
        blocks.append(Heading("Failed runs"))
        for entry in failed:
            error = str(entry.get("error") or "")
            fenced = error.replace("```", "'''")  # a fence inside the error would end the code block
            where = (
                f"exit code {entry.get('returncode')}, attempt {entry.get('attempts')}; "
                f"log {LOGS_DIR}/{entry['name']}.log"
            )
            blocks.append(
                Html(
                    f"<p><b>{esc(entry['name'])}</b> ({esc(where)})</p><pre>{esc(error)}</pre>",
                    markdown=f"**{entry['name']}** ({where})\n\n```\n{fenced}\n```",
                )
            )
    blocks.append(Heading("Runs"))
    items_md, items_html = [], []
    for entry in runs:
        link = f"{entry['name']}/{REPORT_HTML}"
        status = f"{entry.get('status')}, {entry.get('attempts', 0)} attempt(s), {entry.get('seconds', 0):.0f} s"
        if (sweep_dir / entry["name"]).is_dir():
            items_md.append(f"- [{entry['name']}]({entry['name']}/{REPORT_MD}): {status}")
            items_html.append(f'<li><a href="{esc(link)}">{esc(entry["name"])}</a>: {esc(status)}</li>')
        else:  # never started (or stopped before its run dir existed)
            items_md.append(f"- {entry['name']}: {status}")
            items_html.append(f"<li>{esc(entry['name'])}: {esc(status)}</li>")
    blocks.append(Html("<ul>" + "".join(items_html) + "</ul>", markdown="\n".join(items_md)))
    return blocks


def _mean_by_x(series: list[tuple[list[Any], list[Any]]]) -> plots.Series:
    """Several runs' (x, y) averaged at each x that any of them has (a variant's repeats as one line)."""
    values: dict[float, list[float]] = {}
    for xs, ys in series:
        for x, y in zip(xs, ys, strict=False):
            if isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(y, bool):
                values.setdefault(float(x), []).append(float(y))
    xs_sorted = sorted(values)
    return xs_sorted, [statistics.fmean(values[x]) for x in xs_sorted]
