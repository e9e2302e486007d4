"""Score completions with the reward functions, no model needed: prototype a reward, or re-score a run's samples.

Reads a JSONL file (one object per line: `completion` (text or chat list), optional `prompt`, and the gold columns
the rewards need: `answer`, or `target` and `numbers` for Countdown), e.g. a run's eval_samples.jsonl, or one
completion given on the command line. Scores it with a list of rewards (built-in names, or an experiment
config's `rewards:` list with weights and params), prints a table (an excerpt of each completion, every reward,
the weighted total) and a per-reward summary, or JSON with --json.

    uv run python experiments/score_rewards.py --completion "<answer>18</answer>" --answer 18
    uv run python experiments/score_rewards.py --completion "<answer>(8-5)*8</answer>" --target 24 --numbers 3,5,8
    uv run python experiments/score_rewards.py runs/X/eval_samples.jsonl --rewards mark_reward,correctness_reward
    uv run python experiments/score_rewards.py samples.jsonl --config experiment_configs/gsm8k.yaml \\
        --param correctness_reward.value=2.0 --json
    uv run python experiments/score_rewards.py --list

Without --rewards or --config, every built-in reward whose gold columns the input has is used (weight 1).
Token counts (soft_overlong_punishment, length_penalty_tokens) come from a row's `completion_ids` or
`num_tokens` when every row has one, else they are estimated at 4 characters a token (rewards.core).
Bad input (a missing file, an unknown reward or parameter, a missing gold column, an unreadable line, NaN or
Infinity in a line) is reported in one paragraph with exit code 2; a user's own reward that raises shows its
traceback (exit code 1). Golds a reward cannot score (a Countdown target of 24.5) and inf/NaN scores are left out
as not applicable, counted in the summary (`invalid_gold`, `non_finite`) and named in a warning.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from rewards import REWARDS, RewardError, get_reward
from rewards.jsonl import JsonlError, describe_bad_lines, read_jsonl
from rewards.registry import LENGTH_PENALTY_PARAM, RewardFunction, describe_params
from train.config import RewardSpec
from train.errors import EXIT_USER_ERROR, UserError, user_errors

EXCERPT_CHARS = 60
# Row fields that are not gold columns: the text itself, and what a samples file records about it.
NOT_COLUMNS = {"prompt", "completion", "completion_ids", "num_tokens", "prompts", "completions"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", nargs="?", type=Path, help="JSONL file: completion, prompt and gold columns per line.")
    single = parser.add_argument_group("one completion instead of a file")
    single.add_argument("--completion", help="The completion text to score.")
    single.add_argument("--prompt", help="Its prompt (optional).")
    single.add_argument("--answer", help="Gold answer (GSM8K / MATH / generic).")
    single.add_argument("--target", help="Countdown target, e.g. 24.")
    single.add_argument("--numbers", help="Countdown numbers, comma-separated, e.g. 3,5,8.")
    choice = parser.add_argument_group("which rewards")
    choice.add_argument("--rewards", help="Comma-separated reward names, each with weight 1.")
    choice.add_argument("--config", type=Path, help="Experiment YAML: use its `rewards:` list, weights and params.")
    choice.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="REWARD.KEY=VALUE",
        help="Set a reward parameter (value read as YAML), e.g. correctness_reward.value=2.0. Repeatable.",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="Print JSON (rows and summary) instead of tables.")
    out.add_argument("--show", type=int, default=20, help="Rows shown in the table (the summary covers all).")
    out.add_argument("--skip-bad", action="store_true", help="Skip unreadable JSONL lines instead of stopping.")
    out.add_argument("--list", action="store_true", help="List every built-in reward with its parameters and exit.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.list:
            print_reward_list()
            return 0
        rows, warnings = read_input(args)
        items = choose_rewards(args, columns_in(rows))
        functions = build_rewards(items)
        check_columns(functions, columns_in(rows), single=args.completion is not None)
        scores = score(rows, functions)
    except user_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except RewardError:
        raise  # a user's reward raising is a bug in their code: the traceback shows where
    summary = summarize(items, functions, scores)
    warnings += scoring_warnings(functions)
    if args.json:
        print(json.dumps(as_json(rows, items, scores, summary, warnings), indent=2, default=str))
    else:
        print_tables(rows, items, scores, summary, warnings, args.show)
    return 0


# --- input ---


def read_input(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows to score, and warnings about skipped lines and token counts."""
    if args.completion is not None and args.input is not None:
        raise UserError(f"Give either a JSONL file ({args.input}) or --completion, not both.")
    if args.completion is not None:
        return [single_row(args)], []
    if any(value is not None for value in (args.answer, args.target, args.numbers, args.prompt)):
        raise UserError("--answer, --target, --numbers and --prompt go with --completion; a JSONL file has its own.")
    if args.input is None:
        raise UserError(
            'Nothing to score: give a JSONL file (one {"completion": ..., "answer": ...} per line, e.g. a run\'s '
            "eval_samples.jsonl) or --completion TEXT with its gold (--answer, or --target and --numbers)."
        )
    return read_rows(args.input, args.skip_bad)


def single_row(args: argparse.Namespace) -> dict[str, Any]:
    row: dict[str, Any] = {"completion": args.completion}
    if args.prompt is not None:
        row["prompt"] = args.prompt
    if args.answer is not None:
        row["answer"] = args.answer
    if args.target is not None:
        try:
            row["target"] = int(args.target)
        except ValueError as error:
            raise UserError(f"--target must be a whole number such as 24, got {args.target!r}.") from error
    if args.numbers is not None:
        try:
            row["numbers"] = [int(n) for n in args.numbers.split(",")]
        except ValueError as error:
            raise UserError(
                f"--numbers must be whole numbers separated by commas such as 3,5,8, got {args.numbers!r}."
            ) from error
    return row


def read_rows(path: Path, skip_bad: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of a JSONL file, each with its line number in `_line`, and a warning about skipped lines."""
    try:
        read = read_jsonl(path, required=("completion",), skip_bad=skip_bad)
    except JsonlError as error:
        hint = " Or pass --skip-bad to score the other lines." if "bad line" in str(error) else ""
        raise UserError(f"{error}{hint}") from None
    if not read.rows:
        raise UserError(f'{path} has no rows to score: each line must be a JSON object with a "completion" field.')
    rows = [{**row, "_line": number} for row, number in zip(read.rows, read.line_numbers, strict=True)]
    warnings = [f"skipped {len(read.skipped)} bad line(s): {describe_bad_lines(read.skipped)}"] if read.skipped else []
    return rows, warnings


def columns_in(rows: list[dict[str, Any]]) -> set[str]:
    return {key for row in rows for key in row if key not in NOT_COLUMNS and not key.startswith("_")}


# --- which rewards ---


def choose_rewards(args: argparse.Namespace, columns: set[str]) -> list[RewardSpec]:
    if args.rewards and args.config:
        raise UserError("Give either --rewards or --config, not both.")
    if args.config:
        items = read_config_rewards(args.config)
    elif args.rewards:
        items = [RewardSpec(name=name.strip()) for name in args.rewards.split(",") if name.strip()]
    else:
        items = [RewardSpec(name=name) for name in default_reward_names(columns)]
    apply_params(items, args.param)
    return items


def default_reward_names(columns: set[str]) -> list[str]:
    """Every built-in reward that needs no parameter and whose gold columns the input has."""
    names = []
    for name, factory in REWARDS.items():
        needs_params = any(p.default is inspect.Parameter.empty for p in inspect.signature(factory).parameters.values())
        if not needs_params and set(factory().required_columns) <= columns:
            names.append(name)
    return names


def read_config_rewards(path: Path) -> list[RewardSpec]:
    """The experiment's rewards and weights as training would use them: its `rewards:` list, or its task's
    default set when the list is empty, read and validated by the trainer's own config loader."""
    from train.config import load_config
    from train.tasks import get_task

    cfg = load_config(path)
    specs = cfg.rewards or get_task(cfg.data).default_rewards()
    return [spec.model_copy(deep=True) for spec in specs]


def apply_params(items: list[RewardSpec], settings: list[str]) -> None:
    for setting in settings:
        target, equals, raw = setting.partition("=")
        name, dot, key = target.partition(".")
        if not equals or not dot or not name or not key:
            raise UserError(f"--param {setting!r} must look like REWARD.KEY=VALUE, e.g. correctness_reward.value=2.0.")
        matching = [item for item in items if item.name == name]
        if not matching:
            raise UserError(
                f"--param {setting!r} names reward '{name}', which is not among the rewards scored "
                f"({', '.join(item.name for item in items) or 'none'})."
            )
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise UserError(f"--param {setting!r}: the value is not a YAML scalar ({error}).") from error
        for item in matching:
            item.params[key] = value


def build_rewards(items: list[RewardSpec]) -> list[RewardFunction]:
    if not items:
        raise UserError("No reward applies to this input: name some with --rewards or --config (see --list).")
    return [get_reward(item.name, path=item.path, **item.params) for item in items]


def check_columns(functions: list[RewardFunction], columns: set[str], single: bool) -> None:
    """Name every missing gold column with the rewards that need it, before scoring anything."""
    needed: dict[str, list[str]] = {}
    for function in functions:
        for column in function.required_columns:
            if column not in columns:
                needed.setdefault(column, []).append(function.__name__)
    if needed:
        problems = "; ".join(f"'{column}' (needed by {', '.join(names)})" for column, names in needed.items())
        fix = (
            f"pass {' and '.join('--' + column for column in needed)}"
            if single
            else "add those fields to every JSONL row"
        )
        raise UserError(f"The input has no gold column {problems}. To fix it, {fix}, or leave those rewards out.")


# --- scoring and summary ---


def score(rows: list[dict[str, Any]], functions: list[RewardFunction]) -> list[list[float | None]]:
    """One list of scores per reward, called as TRL calls it: all rows in one batch."""
    columns = sorted(columns_in(rows))
    batch = {column: [row.get(column) for row in rows] for column in columns}
    prompts = [row.get("prompt") for row in rows] if any("prompt" in row for row in rows) else None
    return [
        function(
            prompts=prompts, completions=[row["completion"] for row in rows], completion_ids=token_ids(rows), **batch
        )
        for function in functions
    ]


def token_ids(rows: list[dict[str, Any]]) -> list[list[int]] | None:
    """Token ids, or stand-ins of the recorded length, when every row has them; None lets rewards estimate."""
    if all(isinstance(row.get("completion_ids"), list) for row in rows):
        return [row["completion_ids"] for row in rows]
    if all(type(row.get("num_tokens")) is int for row in rows):
        return [[0] * row["num_tokens"] for row in rows]
    return None


def token_source(rows: list[dict[str, Any]]) -> str:
    if all(isinstance(row.get("completion_ids"), list) for row in rows):
        return "completion_ids"
    if all(type(row.get("num_tokens")) is int for row in rows):
        return "num_tokens"
    return "estimated at 4 characters a token"


def weighted_totals(items: list[RewardSpec], scores: list[list[float | None]]) -> list[float]:
    """Sum of weight x reward per completion, None counted as 0 (as TRL sums rewards)."""
    return [
        sum(item.weight * value for item, value in zip(items, column, strict=True) if value is not None)
        for column in zip(*scores, strict=True)
    ]


def summarize(items, functions, scores) -> list[dict[str, Any]]:
    summary = []
    for item, function, values in zip(items, functions, scores, strict=True):
        scored = [value for value in values if value is not None]
        summary.append(
            {
                "name": item.name,
                "weight": item.weight,
                "mean": statistics.fmean(scored) if scored else None,
                "std": statistics.pstdev(scored) if scored else None,
                "min": min(scored) if scored else None,
                "max": max(scored) if scored else None,
                "fraction_zero": sum(value == 0 for value in scored) / len(scored) if scored else None,
                "not_applicable": len(values) - len(scored),
                "invalid_gold": function.invalid_gold_count,
                "non_finite": function.non_finite_count,
                "seconds": function.seconds_total,
            }
        )
    return summary


def scoring_warnings(functions: list[RewardFunction]) -> list[str]:
    """What scoring left out besides rows without gold: golds a reward cannot score, and inf/NaN scores."""
    warnings = []
    for function in functions:
        if function.invalid_gold_count:
            warnings.append(
                f"{function.__name__}: {function.invalid_gold_count} row(s) with a gold it cannot score, left out "
                f"as not applicable (e.g. {'; '.join(function.invalid_gold_examples)})"
            )
        if function.non_finite_count:
            warnings.append(
                f"{function.__name__}: {function.non_finite_count} score(s) were inf or NaN, left out as not applicable"
            )
    return warnings


# --- output ---


def excerpt(completion: Any) -> str:
    text = completion if isinstance(completion, str) else json.dumps(completion, ensure_ascii=False)
    flat = text.replace("\n", "⏎")
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def as_json(rows, items, scores, summary, warnings) -> dict[str, Any]:
    totals = weighted_totals(items, scores)
    return {
        "rewards": [item.model_dump() for item in items],
        "token_counts": token_source(rows),
        "warnings": warnings,
        "rows": [
            {
                "line": row.get("_line"),
                "completion": row["completion"],
                "rewards": {item.name: values[i] for item, values in zip(items, scores, strict=True)},
                "total": totals[i],
            }
            for i, row in enumerate(rows)
        ],
        "summary": summary,
    }


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if math.isfinite(value) else str(value)


def make_console():
    from rich.console import Console

    # Piped output has no width to respect: keep each row on one line instead of rich's default of 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200)


def print_tables(rows, items, scores, summary, warnings, show: int) -> None:
    console = make_console()
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if len(rows) == 1:
        console.print(f"completion: {excerpt(rows[0]['completion'])}", markup=False, highlight=False)
        console.print(f"token counts: {token_source(rows)}")
        console.print(one_completion_table(items, scores))
        return
    console.print(completions_table(rows, items, scores, show))
    if len(rows) > show:
        console.print(f"({len(rows) - show} more row(s) not shown; --show N shows more)")
    console.print(summary_table(summary))


def one_completion_table(items, scores):
    """One completion: the rewards as rows, easy to read at any width."""
    from rich.table import Table

    total = weighted_totals(items, scores)[0]
    table = Table()
    for heading in ("reward", "weight", "score"):
        table.add_column(heading, justify="left" if heading == "reward" else "right")
    for item, values in zip(items, scores, strict=True):
        table.add_row(item.name, f"{item.weight:g}", fmt(values[0]))
    table.add_section()
    table.add_row("weighted total", "", fmt(total), style="bold")
    return table


def completions_table(rows, items, scores, show: int):
    from rich.table import Table

    totals = weighted_totals(items, scores)
    table = Table(title=f"{len(rows)} completions; token counts: {token_source(rows)}")
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("completion", no_wrap=True, overflow="ellipsis", max_width=EXCERPT_CHARS)
    for item in items:
        header = item.name if item.weight == 1 else f"{item.name} x{item.weight:g}"
        table.add_column(header, justify="right", overflow="fold", min_width=6)
    table.add_column("total", justify="right", style="bold", no_wrap=True)
    for i, row in enumerate(rows[:show]):
        cells = [fmt(values[i]) for values in scores]
        table.add_row(str(row.get("_line", i + 1)), excerpt(row["completion"]), *cells, fmt(totals[i]))
    return table


def summary_table(summary):
    from rich.table import Table

    table = Table(
        title="per reward",
        caption="zero: fraction of scores equal to 0; n/a: not applicable (None); s: seconds inside the reward",
    )
    for heading in ("reward", "weight", "mean", "std", "min", "max", "zero", "n/a", "s"):
        table.add_column(heading, justify="left" if heading == "reward" else "right", no_wrap=True)
    for entry in summary:
        table.add_row(
            entry["name"],
            f"{entry['weight']:g}",
            *(fmt(entry[key]) for key in ("mean", "std", "min", "max", "fraction_zero")),
            str(entry["not_applicable"]),
            f"{entry['seconds']:.4f}",
        )
    return table


def print_reward_list() -> None:
    from rich.table import Table

    table = Table(
        title="built-in rewards: get_reward(name, **params)",
        caption=f"Every reward also takes {LENGTH_PENALTY_PARAM}: N (x 0.8 + 0.2 min(1, N / completion tokens)).",
        show_lines=True,
    )
    for heading in ("reward", "range", "columns", "parameters", "rule"):
        table.add_column(heading, no_wrap=heading != "rule")
    for name, factory in REWARDS.items():
        required = [p for p in inspect.signature(factory).parameters.values() if p.default is inspect.Parameter.empty]
        reward = None if required else factory()
        table.add_row(
            name,
            "" if reward is None else f"[{fmt(reward.value_range[0])}, {fmt(reward.value_range[1])}]",
            "" if reward is None else ", ".join(reward.required_columns),
            "\n".join(describe_params(factory)[:-1]),  # the last entry is the length penalty: in the caption
            (inspect.getdoc(factory) or "").split("\n\n")[0].replace("\n", " "),
        )
    make_console().print(table)


if __name__ == "__main__":
    sys.exit(main())
