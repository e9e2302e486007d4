"""The diagnosis on the console (train/diagnosis): at most three new findings after each evaluation, the verdict at
the end of a run, and the whole diagnosis for experiments/diagnose.py. Rich only (no transformers), so that command
starts in about a second; train/records/console.py re-exports these with the run's other console helpers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

SEVERITY_STYLE = {"problem": "bold red", "watch": "yellow", "note": "cyan"}
# A finding's line is cut at two rows of the terminal (a number that ends a row is no use cut off), and at this many
# characters in a log file, where rich's width is 80 and lines do not wrap.
LOG_LINE_CHARS = 240


def finding_width(console: Console) -> int:
    return 2 * console.width if console.is_terminal else LOG_LINE_CHARS


def finding_lines(findings: list[Any], width: int = 120) -> list[str]:
    """One line per finding (rich markup): its severity in colour, its title and evidence, cut to `width`."""
    lines = []
    for finding in findings:
        text = f"{finding.title}: {finding.evidence}"
        room = max(width - len(finding.severity) - 3, 40)
        text = text if len(text) <= room else text[: room - 1] + "…"
        lines.append(f"  [{SEVERITY_STYLE.get(finding.severity, 'bold')}]{finding.severity}[/] {escape(text)}")
    return lines


def verdict_lines(diagnosis: Any, run_dir: Path | None = None, width: int = 120) -> list[str]:
    """The end of a run: the verdict, then its problems (one line each) and where the rest is."""
    style = {True: "bold green", False: "bold red"}.get(diagnosis.verdict.learning, "bold")
    lines = [f"[{style}]verdict[/] {escape(diagnosis.verdict.line)}"]
    lines += finding_lines([f for f in diagnosis.findings if f.severity == "problem"][:3], width)
    if diagnosis.findings:
        where = (
            f'report.html\'s "What happened in this run", or experiments/diagnose.py {run_dir}'
            if run_dir
            else "experiments/diagnose.py"
        )
        lines.append(f"  {diagnosis.counts()}: {escape(where)}")
    return lines


def print_diagnosis(console: Console, diagnosis: Any) -> None:
    """experiments/diagnose.py: the verdict, then every finding with its evidence, meaning and what to try."""
    console.print(f"[bold]{escape(diagnosis.source)}[/]", highlight=False, soft_wrap=True)
    console.print(verdict_lines(diagnosis)[0], highlight=False, soft_wrap=True)
    for finding in diagnosis.findings:
        style = SEVERITY_STYLE.get(finding.severity, "bold")
        console.print(f"\n[{style}]{finding.severity}[/] [bold]{escape(finding.title)}[/]", highlight=False)
        for label, text in (("evidence", finding.evidence), ("meaning", finding.meaning), ("try", finding.to_try)):
            console.print(f"  [dim]{label:<9}[/]{escape(text)}", highlight=False, soft_wrap=True)
    if not diagnosis.findings:
        console.print("no findings: nothing in these records crossed a threshold", highlight=False)
    for reason in diagnosis.skipped:
        console.print(f"[dim]skipped: {escape(reason)}[/]", highlight=False, soft_wrap=True)
