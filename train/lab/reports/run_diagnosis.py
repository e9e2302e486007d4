"""The diagnosis of a run as the lab tools show it: "What happened in this run" at the top of a run's report, and
the diagnosis of any path experiments/diagnose.py is given.

    diagnosis = diagnose_path("runs/quickstart-20260101-120000")   # our run dir, or a TRL / Unsloth output dir
    blocks, images = diagnosis_section(diagnosis)                   # report blocks, {plot name: png}

Our run dir is read as the report reads it (train/lab/reports/rundata.py: metrics.jsonl, config.yaml, samples/),
and the rewards of its config.yaml give their reasons for a sample's score; anything else is read as a TRL
trainer_state.json (train/diagnosis/sources.py). The findings themselves are train/diagnosis's.
"""

from __future__ import annotations

from pathlib import Path

from train.diagnosis import Diagnosis, Finding, diagnose, from_trainer_state, read_samples_dir
from train.diagnosis.base import RunRecords
from train.evaluation.samples import explainer_from_config
from train.lab.reports.document import Block, Heading, Image, Paragraph
from train.lab.reports.plots import finding_plot
from train.lab.reports.rundata import METRICS_FILE, SAMPLES_DIR, RunData, load_run

SECTION_TITLE = "What happened in this run"
PLOT_PREFIX = "finding_"


def run_records(run: RunData) -> RunRecords:
    """The diagnosis' view of a loaded run dir, with its rewards' reasons when config.yaml names them."""
    return RunRecords(
        steps=run.steps,
        epochs=run.epochs,
        evals=run.evals,
        samples=read_samples_dir(run.path / SAMPLES_DIR),
        config=run.config,
        source=f"run dir {run.path}",
        explain=explainer_from_config(run.config),
    )


def diagnose_run(run: RunData) -> Diagnosis:
    return diagnose(run_records(run))


def diagnose_path(path: str | Path) -> Diagnosis:
    """Our run dir (it has metrics.jsonl, or is one), else a trainer_state.json, a checkpoint dir or an output dir
    of checkpoints. A path that is none of these, or a file that does not parse, is a UserError."""
    path = Path(path)
    if path.name == METRICS_FILE and path.is_file():
        path = path.parent
    if path.is_dir() and (path / METRICS_FILE).is_file():
        return diagnose_run(load_run(path))
    return diagnose(from_trainer_state(path))


def diagnosis_section(diagnosis: Diagnosis) -> tuple[list[Block], dict[str, bytes]]:
    """The report's opening section: the verdict, then each finding (severity and title, evidence, meaning, what to
    try) with its small plot where it has one; and those plots as PNGs by name (plots/finding_<key>.png)."""
    blocks: list[Block] = [Heading(SECTION_TITLE), Paragraph(f"Verdict: {diagnosis.verdict.line}.")]
    images: dict[str, bytes] = {}
    if not diagnosis.findings:
        blocks.append(Paragraph("No findings: nothing in the records crossed a threshold (docs/diagnosis.md)."))
    for finding in diagnosis.findings:
        blocks.append(Heading(f"{finding.severity}: {finding.title}", 3))
        blocks.append(Paragraph(f"Evidence: {finding.evidence}."))
        blocks.append(Paragraph(f"{finding.meaning} Try: {finding.to_try}."))
        if finding.plot is not None and any(series.values for series in finding.plot.series):
            name = plot_name(finding)
            images[name] = finding_plot(finding.plot)
            blocks.append(Image(f"plots/{name}.png", images[name], finding.plot.title))
    if diagnosis.skipped:
        blocks.append(Paragraph("Not checked: " + "; ".join(diagnosis.skipped) + "."))
    return blocks, images


def plot_name(finding: Finding) -> str:
    key = "".join(c if c.isalnum() else "_" for c in finding.key).strip("_")
    return f"{PLOT_PREFIX}{key}"
