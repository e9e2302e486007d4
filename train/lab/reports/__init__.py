"""Reports: plots, report.md and report.html for a run, and the comparison table and report of a sweep.

They read a run dir's files only (metrics.jsonl, samples/, config.yaml, summary.json), so they work for a run in
progress, a killed run and a finished one alike, and never touch the trainer:

    write_run_report(run_dir)          # report.md, report.html, plots/*.png in the run dir (never raises)
    write_sweep_report(sweep_dir)      # table.md, table.csv, report.md, report.html, plots/ in the sweep dir
    compare_runs([load_run(d) for d in dirs]).markdown()

Rebuild any of them from the command line: `experiments/report.py RUN_OR_SWEEP_DIR`.
"""

from train.lab.reports.run_report import build_run_report, write_run_report
from train.lab.reports.rundata import RunData, load_run
from train.lab.reports.tables import compare_runs, comparison_table

__all__ = [
    "RunData",
    "build_run_report",
    "compare_runs",
    "comparison_table",
    "load_run",
    "write_run_report",
]
