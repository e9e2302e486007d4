""" "Why isn't it learning?": the diagnosis of a GRPO run from its records, with no model and no GPU.

    uv run python experiments/diagnose.py runs/quickstart-20260101-120000          # a grpo-lab run dir
    uv run python experiments/diagnose.py outputs/Qwen3-GRPO                       # a TRL or Unsloth output_dir
    uv run python experiments/diagnose.py outputs/Qwen3-GRPO/checkpoint-500        # one checkpoint
    uv run python experiments/diagnose.py outputs/Qwen3-GRPO/checkpoint-500/trainer_state.json --json

Prints the verdict (learning or not, and the main why), then each finding: its severity (problem / watch / note),
the evidence in this run's numbers, what it means and what to try (config keys); --json prints the same as
summary.json's "diagnosis". A plain TRL or Unsloth run is read from the newest checkpoint's trainer_state.json
(its log_history): it has no held-out evaluations and no samples, so the findings that need them are skipped and
named. Every finding and its thresholds: docs/diagnosis.md. A file that cannot be read is one paragraph and exit
code 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from train.errors import exit_on_user_error


@exit_on_user_error
def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "path", type=Path, help="a run dir, a TRL or Unsloth output dir or checkpoint dir, or a trainer_state.json"
    )
    parser.add_argument("--json", action="store_true", help="print the diagnosis as JSON (summary.json's layout)")
    args = parser.parse_args(argv)

    from rich.console import Console

    from train.lab.reports.run_diagnosis import diagnose_path
    from train.records.diagnosis_console import print_diagnosis

    diagnosis = diagnose_path(args.path)
    if args.json:
        print(json.dumps({"source": diagnosis.source, **diagnosis.as_dict()}, indent=2))
    else:
        print_diagnosis(Console(), diagnosis)
    return diagnosis


if __name__ == "__main__":
    main()
