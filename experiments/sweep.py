"""Run a sweep: one base experiment config over a grid and/or a list of variants, one run after another, each in
its own run dir under one sweep dir, then the comparison table (table.md, table.csv) and the sweep's report.

    uv run python experiments/sweep.py experiment_configs/studies/countdown_loss_tokens_mini.yaml     # CPU, offline
    uv run python experiments/sweep.py SWEEP.yaml --sweep-dir runs/sweeps/mine            # choose the sweep dir
    uv run python experiments/sweep.py SWEEP.yaml --sweep-dir runs/sweeps/mine --resume   # continue after a kill
    uv run python experiments/sweep.py SWEEP.yaml --dry-run                              # list the runs, run nothing

Each run is `python -m train.run BASE --set ... --output-dir SWEEP_DIR/<variant>` (the library entry of
experiments/run_eval_test.py) in a subprocess, its
output in SWEEP_DIR/logs/<variant>.log. With --resume a finished run is skipped, a killed one continues from its
last checkpoint, a failed one is tried again (--skip-failed: not); a failing run is recorded with its error in
SWEEP_DIR/sweep_state.json and the sweep goes on. The sweep YAML format: train/lab/sweep.py. Exit code 0 when every run
finished, 1 when one failed, 2 for bad input (nothing is run).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from train.errors import exit_on_user_error  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path, help="sweep YAML, e.g. experiment_configs/studies/*.yaml")
    parser.add_argument("--sweep-dir", type=Path, help="the sweep dir (default: runs/sweeps/<name>-<timestamp>)")
    parser.add_argument("--resume", action="store_true", help="continue the sweep in --sweep-dir (or the newest)")
    parser.add_argument("--skip-failed", action="store_true", help="with --resume: do not retry failed runs")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the runs, run nothing")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from train.lab.sweep import load_sweep, run_sweep, sweep_dir_for

    sweep = load_sweep(args.sweep)  # every run's config is validated before anything runs
    if args.dry_run:
        print(f"sweep {sweep.name}: {len(sweep.runs)} runs of {sweep.base}")
        for run in sweep.runs:
            print(f"  {run.name}: --set {' --set '.join(run.set_args())}" if run.overrides else f"  {run.name}")
        return 0
    sweep_dir = sweep_dir_for(sweep, args.sweep_dir, args.resume)
    print(f"sweep {sweep.name}: {len(sweep.runs)} runs of {sweep.base} in {sweep_dir}", flush=True)
    # SIGTERM stops the current run too (it resumes with --resume), like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    state = run_sweep(sweep, sweep_dir, retry_failed=not args.skip_failed, echo=lambda line: print(line, flush=True))
    table = sweep_dir / "table.md"
    if table.is_file():
        print("\n" + table.read_text())
    print(f"sweep dir: {sweep_dir} (report.html, table.md, table.csv, sweep_state.json)")
    failed = [entry["name"] for entry in state["runs"] if entry["status"] == "failed"]
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)}; their errors are in sweep_state.json and logs/")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
