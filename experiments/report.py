"""Rebuild the report of a run dir or a sweep dir, at any time: while it runs, after a kill, or when it is done.

    uv run python experiments/report.py runs/quickstart-20260101-120000     # report.md, report.html, plots/
    uv run python experiments/report.py runs/sweeps/countdown_mini-...      # every run's report, the sweep's table
                                                                             # (table.md, table.csv) and report

A run's report shows the zero-shot baseline against the final (or latest) evaluation, every evaluation and epoch,
the training curves and a few test prompts' completions before and after; a sweep's shows the comparison table
of its variants and overlay plots. Only the dir's files are read (metrics.jsonl, samples/, config.yaml,
summary.json, sweep_state.json): nothing is trained or generated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train.errors import UserError, exit_on_user_error  # noqa: E402


@exit_on_user_error
def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run dirs and/or sweep dirs")
    args = parser.parse_args(argv)

    from train.lab.reports import build_run_report
    from train.lab.reports.sweep_report import build_sweep_report, is_sweep_dir

    written = []
    for path in args.dirs:
        if not path.is_dir():
            raise UserError(f"{path} is not a directory. Pass a run dir (runs/<name>-<timestamp>) or a sweep dir.")
        if is_sweep_dir(path):
            written += build_sweep_report(path, run_reports=True)
        else:
            written.append(build_run_report(path))
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
