"""Compare finished (or running) runs side by side: one table of their zero-shot and final figures, keyed by the
config keys in which they differ (config.yaml flattened to dotted keys; logging.* and output.* left out).

    uv run python experiments/compare.py runs/quickstart-A runs/quickstart-B
    uv run python experiments/compare.py runs/* --columns final_pass@1,pass@1_by_eval --csv compare.csv

Under the table, the rows whose final pass@1 is within sampling noise of the best row's are named, with how many
prompts would tell them apart (the binomial standard error, train/diagnosis/noise.py). Figures come from each run's
summary.json and metrics.jsonl (train/lab/reports/tables.py, the same table a sweep writes). Columns by id:
zero_shot_pass@1, final_pass@1, improvement, pass@k, outcomes, mean_output_tokens, budget_utilization,
final_epoch_mean_reward, wall_seconds (the default), and pass@1_by_eval, correct, partial, failed, truncated_frac,
reward_total, final_epoch_accumulated_reward, steps, status, final:<metric>, ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train.errors import UserError, exit_on_user_error, writing


@exit_on_user_error
def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run dirs")
    parser.add_argument("--columns", help="comma-separated column ids (default: the study table)")
    parser.add_argument("--best-by", default="final_pass@1", help="column that marks the best row ('-id': lowest)")
    parser.add_argument("--csv", type=Path, help="also write the table as CSV here")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args(argv)

    from train.lab.reports import compare_runs, load_run
    from train.lab.reports.tables import known_column, unknown_column_message

    for flag, destination in (("--csv", args.csv), ("--markdown", args.markdown)):
        if destination is not None and destination.is_dir():
            raise UserError(
                f"{flag} {destination} is a directory: give the path of the file to write, e.g. {flag} "
                f"{destination / ('compare.csv' if flag == '--csv' else 'compare.md')}."
            )
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    unknown = [c for c in columns or [] if not known_column(c)]
    if unknown:
        raise UserError(f"unknown column(s) {', '.join(unknown)}; see experiments/compare.py --help for the ids.")
    if args.best_by and (problem := unknown_column_message("--best-by", args.best_by.removeprefix("-"))):
        raise UserError(problem)  # it used to be ignored: no row marked best, no word
    table = compare_runs([load_run(path) for path in args.runs], columns=columns, best_by=args.best_by)
    note = table.noise_note()  # the rows within sampling noise of the best one: their ranking is no finding
    text = table.markdown() + (f"\n{note}\n" if note else "")
    if args.csv:
        with writing(args.csv, "the comparison table as CSV"):
            args.csv.write_text(table.csv())
    if args.markdown:
        with writing(args.markdown, "the comparison table as Markdown"):
            args.markdown.write_text(text)
    print(text, end="")
    return text


if __name__ == "__main__":
    main()
