"""Score completions with the reward functions, no model needed: prototype a reward, or re-score a run's samples.

Reads a JSONL file (one object per line: `completion` (text or chat list), optional `prompt`, and the gold columns
the rewards need: `answer`, or `target` and `numbers` for Countdown), e.g. a run's samples/<label>.jsonl, or one
completion given on the command line. Scores it with a list of rewards (built-in names, your own functions from a
file, or an experiment config's `rewards:` list with weights and params), prints a table (an excerpt of each
completion, every reward, the weighted total) and a per-reward summary, or JSON with --json.

    uv run python experiments/score_rewards.py --completion "<answer>18</answer>" --answer 18
    uv run python experiments/score_rewards.py --completion "<answer>(8-5)*8</answer>" --target 24 --numbers 3,5,8
    uv run python experiments/score_rewards.py runs/X/samples/final.jsonl --rewards mark_reward,correctness_reward
    uv run python experiments/score_rewards.py samples.jsonl --config experiment_configs/gsm8k.yaml \\
        --param correctness_reward.value=2.0 --json
    # your own reward next to a built-in one: file.py:function in --rewards, or every reward function of a file
    uv run python experiments/score_rewards.py samples.jsonl --rewards countdown_reward,my_rewards.py:my_reward
    uv run python experiments/score_rewards.py samples.jsonl --rewards countdown_reward --reward-file my_rewards.py
    # why each reward gave its score (rewards that can say: a user's reward through its `.explain` attribute)
    uv run python experiments/score_rewards.py samples.jsonl --reward-file my_rewards.py --explain
    uv run python experiments/score_rewards.py --list

Without --rewards or --config, every built-in reward whose gold columns the input has is used (weight 1); with
only --reward-file, that file's rewards. A user's reward is named after its function, or `<file stem>.<function>`
when that name is a built-in reward's or taken (so `my_rewards.py:correctness_reward` is scored next to the
built-in one). --reward-file takes every function defined in the file (not imported into it, not starting with
`_`, not some reward's `.explain`) that has a parameter named `completions`, as TRL calls rewards.

A run's samples file holds greedy and sampled completions (`kind`): each kind gets its own table and summary, and
each evaluation's kind is scored as its own batch, since batch-level rewards (len_reward) compare the completions
of one prompt as training does. Per-prompt spread: completions that share a prompt (a samples file's label, kind
and index; otherwise the same `prompt` text) form a group; for every group of 2 or more the weighted totals' mean,
std (unbiased, n - 1, as train/advantages.py scales advantages), min and max are shown, and the share of groups
whose totals are all equal: GRPO's advantage (r - mean) / (std + eps) is 0 for every completion of such a group, so
they teach nothing; a reward that gives many of them is too coarse.

Token counts (soft_overlong_punishment, length_penalty_tokens) come from a row's `completion_ids` or
`num_tokens` when every row has one, else they are estimated at 4 characters a token (rewards.core).
Bad input (a missing file, an unknown reward or parameter, a file with no reward function, a missing gold column,
an unreadable line, NaN or Infinity in a line) is reported in one paragraph with exit code 2, and so is a user's own
reward that raises or calls sys.exit: the paragraph names its file, function, exception and the line of its file
the exception came from. What a user's reward prints is captured: its first 2 KB are shown once, on stderr. Golds
a reward cannot score (a Countdown target of 24.5) and inf/NaN scores are left out as not applicable, counted in the
summary (`invalid_gold`, `non_finite`) and named in a warning.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import math
import statistics
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from rewards import REWARDS, get_reward
from rewards.core import completion_text
from rewards.jsonl import JsonlError, describe_bad_lines, read_jsonl
from rewards.registry import LENGTH_PENALTY_PARAM, RewardFunction, describe_params
from rewards.user import defined_functions, load_user_module, user_file
from train.config import RewardSpec
from train.errors import EXIT_USER_ERROR, UserError, user_errors

EXCERPT_CHARS = 60
PROMPT_CHARS = 30
GOLD_CHARS = 30
REASON_CHARS = 32  # the width of a reward's column under --explain: its reasons wrap there
# Row fields that are not gold columns: the text itself, and what a samples file records about it.
NOT_COLUMNS = {
    "prompt",
    "completion",
    "completion_ids",
    "num_tokens",
    "prompts",
    "completions",
    *("label", "kind", "index", "sample", "truncated", "rewards", "reward_total", "correct", "outcome"),
}
REWARD_SIGNATURE = "def my_reward(completions, **kwargs)"
# Printed under the tables as lines of their own: a table's caption wraps at the table's width.
SUMMARY_LEGEND = "zero: fraction of scores equal to 0; n/a: not applicable (None); s: seconds inside the reward"
PER_PROMPT_LEGEND = "the weighted total in each prompt's group; std: unbiased (n - 1), as GRPO's"
EXAMPLE_FILE = "my_rewards.py"  # in messages, when the user has named no file of their own


@dataclass(frozen=True)
class Choice:
    """One --rewards or --reward-file value; both flags append to one list, so rewards keep the order given."""

    flag: str
    value: str


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
    choice.add_argument(
        "--rewards",
        dest="choices",
        action="append",
        type=partial(Choice, "--rewards"),
        metavar="NAMES",
        help="Comma-separated built-in reward names and file.py:function items (your own reward), each with "
        "weight 1, e.g. countdown_reward,my_rewards.py:my_reward. Repeatable.",
    )
    choice.add_argument(
        "--reward-file",
        dest="choices",
        action="append",
        type=partial(Choice, "--reward-file"),
        metavar="FILE.py",
        help=f"Score every reward function defined in this file ({REWARD_SIGNATURE}), each with weight 1. "
        "Repeatable; goes with --rewards or --config.",
    )
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
    out.add_argument(
        "--explain",
        action="store_true",
        help="Show why each reward gave its score (rewards that can say), with each row's prompt and gold; "
        "--json adds `reasons` per row.",
    )
    out.add_argument("--show", type=int, default=20, help="Rows shown per table (the summary covers all).")
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
        parts = split_by_kind(rows)
        scored = score(rows, functions, parts, explain=args.explain)
    except user_errors() as error:  # a user's reward that raised included: its paragraph names the line
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    report = Report(rows, items, functions, parts, scored, warnings + scoring_warnings(functions), args.explain)
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        report.print_tables(args.show)
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
            "samples/final.jsonl) or --completion TEXT with its gold (--answer, or --target and --numbers)."
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
    """The rewards to score, in the order given: the config's, then each --rewards item and --reward-file's
    functions; with none of these, every applicable built-in."""
    choices: list[Choice] = args.choices or []
    if args.config and any(choice.flag == "--rewards" for choice in choices):
        raise UserError("Give either --rewards or --config, not both (--reward-file goes with either).")
    if args.config:
        items = read_config_rewards(args.config)
    elif choices:
        items = []
    else:
        items = [RewardSpec(name=name) for name in default_reward_names(columns)]
    example_file = users_file(choices)
    for choice in choices:
        if choice.flag == "--reward-file":
            for function in reward_functions_in(choice.value):
                add_user_reward(items, choice.value, function)
        else:
            for item in filter(None, (part.strip() for part in choice.value.split(","))):
                add_named_reward(items, item, example_file)
    apply_params(items, args.param)
    return items


def users_file(choices: list[Choice]) -> str:
    """The first file the user named (--reward-file, or file.py:function in --rewards), which messages quote in the
    commands they suggest; EXAMPLE_FILE when there is none."""
    for choice in choices:
        if choice.flag == "--reward-file":
            return choice.value
        for item in choice.value.split(","):
            if (file := item.strip().rpartition(":")[0]).endswith(".py"):
                return file
    return EXAMPLE_FILE


def add_named_reward(items: list[RewardSpec], item: str, example_file: str) -> None:
    """One --rewards item: a built-in name or file.py:function."""
    file, colon, function = item.rpartition(":")
    if colon:
        if not file or not function:
            raise UserError(
                f"--rewards item '{item}' must be a built-in reward name or a file and a function in it, as in "
                f"--rewards {example_file}:my_reward."
            )
        add_user_reward(items, file, function)
    elif item.endswith(".py"):
        raise UserError(
            f"--rewards item '{item}' is a file: name a function in it, as in --rewards {item}:my_reward, or score "
            f"every reward function in it with --reward-file {item}."
        )
    elif item not in REWARDS:
        close = difflib.get_close_matches(item, REWARDS, n=1)
        raise UserError(
            f"Unknown reward '{item}'. {f'Did you mean {close[0]}? ' if close else ''}Built-in rewards: "
            f"{', '.join(REWARDS)}. For your own reward pass --rewards {example_file}:{item} (a file and a function "
            f"in it) or --reward-file {example_file}."
        )
    elif item not in {spec.name for spec in items}:  # a name given twice is scored once
        items.append(RewardSpec(name=item))


def add_user_reward(items: list[RewardSpec], file: str, function: str) -> None:
    """The user's `function` in `file`, named after the function, or `<file stem>.<function>` when that name is a
    built-in reward's or an earlier reward's (both are then scored side by side, under distinct keys). A function
    already listed (through --rewards and --reward-file both) is scored once."""
    path = f"{file}:{function}"
    if any(spec.path is not None and same_function(spec.path, path) for spec in items):
        return
    taken = {spec.name for spec in items} | set(REWARDS)
    name = function if function not in taken else f"{Path(file).stem}.{function}"
    if name in taken:
        other = next(spec.path for spec in items if spec.name == name)
        raise UserError(
            f"Two of your rewards would both be named '{name}': {other} and {path}. Rename one of the functions "
            "or files."
        )
    items.append(RewardSpec(name=name, path=path))


def same_function(path: str, other: str) -> bool:
    """Whether two file.py:function paths name one function (a relative file is read from the current directory)."""
    (file, _, function), (other_file, _, other_function) = path.rpartition(":"), other.rpartition(":")
    return function == other_function and user_file(file).resolve() == user_file(other_file).resolve()


def reward_functions_in(file: str) -> list[str]:
    """The reward functions of --reward-file `file`: the functions defined there (not imported into it), not
    private (`_name`), not some reward's `.explain`, with a parameter named `completions`, in file order."""
    path = user_file(file)
    if not path.is_file():
        raise UserError(
            f"--reward-file {file}: no such file (looked for {path}; a relative path is read from the current "
            "directory)."
        )
    defined = defined_functions(load_user_module(path))
    explains = {id(function.explain): name for name, function in defined.items() if hasattr(function, "explain")}
    found = [
        name
        for name, function in defined.items()
        if not name.startswith("_")
        and id(function) not in explains
        and "completions" in inspect.signature(function).parameters
    ]
    if found:
        return found

    def described(name: str, function: Any) -> str:
        why = " (private)" if name.startswith("_") else ""
        why = f" (the .explain of {explains[id(function)]})" if id(function) in explains else why
        return f"{name}{inspect.signature(function)}{why}"

    listed = ", ".join(described(name, function) for name, function in defined.items()) or "none"
    raise UserError(
        f"--reward-file {file}: no reward function in it. A reward function has a parameter named `completions` "
        f"and returns one float per completion, as in `{REWARD_SIGNATURE}`; functions defined in {file}: "
        f"{listed}. Add one to {file}, or rename a function's first parameter to `completions`."
    )


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
        name, dot, key = target.rpartition(".")  # the last dot: a user reward's name may hold one (mine.reward)
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
        raise UserError(
            "No reward applies to this input: name some with --rewards, --reward-file or --config (see --list)."
        )
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


# --- scoring ---


@dataclass
class Part:
    """The rows of one kind of completion in a samples file ("greedy", "sampled"), or all rows (kind None)."""

    kind: str | None
    indices: list[int]


def split_by_kind(rows: list[dict[str, Any]]) -> list[Part]:
    if not any("kind" in row for row in rows):
        return [Part(None, list(range(len(rows))))]
    parts: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        parts.setdefault(str(row.get("kind", "no kind")), []).append(i)
    return [Part(kind, indices) for kind, indices in parts.items()]


@dataclass
class Cost:
    """What scoring one part cost one reward: seconds inside it, golds it could not score, inf/NaN scores."""

    seconds: float = 0.0
    invalid_gold: int = 0
    non_finite: int = 0


@dataclass
class Scored:
    """Every reward's score per row (None: not applicable), its reasons with --explain ("" from a reward that
    gives none), and the cost per part."""

    scores: list[list[float | None]]
    reasons: list[list[str]] | None
    costs: dict[str | None, list[Cost]] = field(default_factory=dict)


def score(rows: list[dict[str, Any]], functions: list[RewardFunction], parts: list[Part], explain: bool) -> Scored:
    """Every reward called as TRL calls it, one batch per evaluation (label) and kind: a batch-level reward
    (len_reward) then compares the completions of one prompt as in training, not greedy with sampled ones."""
    scored = Scored([[None] * len(rows) for _ in functions], [[""] * len(rows) for _ in functions] if explain else None)
    for part in parts:
        before = [Cost(f.seconds_total, f.invalid_gold_count, f.non_finite_count) for f in functions]
        batches: dict[Any, list[int]] = {}
        for i in part.indices:
            batches.setdefault(rows[i].get("label"), []).append(i)
        for batch in batches.values():
            arguments = call_arguments([rows[i] for i in batch])
            for r, function in enumerate(functions):
                for i, value in zip(batch, function(**arguments), strict=True):
                    scored.scores[r][i] = value
                if scored.reasons is not None and function.explains:
                    for i, reason in zip(batch, function.explain(**arguments), strict=True):
                        scored.reasons[r][i] = reason
        scored.costs[part.kind] = [
            Cost(f.seconds_total - b.seconds, f.invalid_gold_count - b.invalid_gold, f.non_finite_count - b.non_finite)
            for f, b in zip(functions, before, strict=True)
        ]
    return scored


def call_arguments(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The keyword arguments of one reward call over `rows`: prompts, completions, token ids and gold columns."""
    columns = sorted(columns_in(rows))
    return {
        "prompts": [row.get("prompt") for row in rows] if any("prompt" in row for row in rows) else None,
        "completions": [row["completion"] for row in rows],
        "completion_ids": token_ids(rows),
        **{column: [row.get(column) for row in rows] for column in columns},
    }


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


# --- summaries: per reward, and the spread of the total within each prompt's group ---


def summarize(items: list[RewardSpec], scores, indices: list[int], costs: list[Cost]) -> list[dict[str, Any]]:
    """Per reward over the rows `indices`: mean, population std, min, max, fraction of zeros, not applicable."""
    summary = []
    for item, values, cost in zip(items, scores, costs, strict=True):
        scored = [values[i] for i in indices if values[i] is not None]
        summary.append(
            {
                "name": item.name,
                "weight": item.weight,
                "mean": statistics.fmean(scored) if scored else None,
                "std": statistics.pstdev(scored) if scored else None,
                "min": min(scored) if scored else None,
                "max": max(scored) if scored else None,
                "fraction_zero": sum(value == 0 for value in scored) / len(scored) if scored else None,
                "not_applicable": len(indices) - len(scored),
                "invalid_gold": cost.invalid_gold,
                "non_finite": cost.non_finite,
                "seconds": cost.seconds,
            }
        )
    return summary


def group_key(row: dict[str, Any]) -> Any:
    """What makes completions one GRPO group: a samples file's evaluation, kind and prompt index, else the prompt
    text; None for a row without a prompt (not grouped)."""
    if "kind" in row and "index" in row:
        return (row.get("label"), row["kind"], row["index"])
    prompt = row.get("prompt")
    if prompt is None:
        return None
    return prompt if isinstance(prompt, str) else repr(prompt)  # repr: chat prompts are lists of dicts


def prompt_groups(rows: list[dict[str, Any]], indices: list[int]) -> list[list[int]]:
    """The row indices of each prompt's group, in order of first appearance (groups of one included)."""
    groups: dict[Any, list[int]] = {}
    for i in indices:
        key = group_key(rows[i])
        if key is not None:
            groups.setdefault(key, []).append(i)
    return list(groups.values())


def spread(rows: list[dict[str, Any]], indices: list[int], totals: list[float]) -> dict[str, Any] | None:
    """The weighted total's spread within each prompt's group of 2 or more among the rows `indices`, and how many
    groups have all-equal totals (GRPO advantage 0: no learning signal); None when no group has 2 or more.

    std is the unbiased one (n - 1), the s of A_i = (r_i - mean) / (s + eps) in train/advantages.py.
    """
    per_prompt = []
    for members in prompt_groups(rows, indices):
        if len(members) < 2:
            continue
        values = [totals[i] for i in members]
        low, high = min(values), max(values)
        per_prompt.append(
            {
                "prompt": rows[members[0]].get("prompt"),
                "lines": [rows[i].get("_line") for i in members],
                "n": len(values),
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values),
                "min": low,
                "max": high,
                # GRPO sees exact equality (every advantage is then 0), but weighted sums of floats differ in the
                # last bits (0.1 + 0.2 != 0.3) and such a difference gives an advantage of ~1e-13 (std + eps,
                # eps = 1e-4, in the divisor): no signal either, so totals within 1e-9 count as equal.
                "all_equal": math.isclose(low, high, abs_tol=1e-9),
            }
        )
    if not per_prompt:
        return None
    all_equal = sum(group["all_equal"] for group in per_prompt)
    return {
        "prompts": len(per_prompt),
        "all_equal": all_equal,
        "fraction_all_equal": all_equal / len(per_prompt),
        "mean_std": statistics.fmean(group["std"] for group in per_prompt),
        "per_prompt": per_prompt,
    }


def spread_line(groups: dict[str, Any]) -> str:
    return (
        f"{groups['all_equal']} of {groups['prompts']} prompts ({groups['fraction_all_equal']:.0%}) have all-equal "
        "total rewards in their group: zero advantage, no learning signal from them."
    )


# --- output ---


def excerpt(text: Any, chars: int = EXCERPT_CHARS) -> str:
    """`text` on one line (newlines shown as ⏎), cut to `chars` characters."""
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    flat = text.replace("\n", "⏎")
    return flat if len(flat) <= chars else flat[: chars - 1] + "…"


def prompt_excerpt(prompt: Any) -> str:
    """A prompt shortened; of a chat prompt, its last message (the question)."""
    if prompt is None:
        return ""
    return excerpt(completion_text(prompt) if isinstance(prompt, list) else prompt, PROMPT_CHARS)


def gold_text(row: dict[str, Any], columns: list[str]) -> str:
    """The gold a row is scored against, as a person reads it: Countdown's "numbers 3,5,8 → 24", the answer, and
    any other column the scored rewards need as column=value."""
    shown = []
    if row.get("numbers") is not None and row.get("target") is not None:
        numbers = row["numbers"]
        listed = ",".join(map(str, numbers)) if isinstance(numbers, list) else str(numbers)
        shown.append(f"numbers {listed} → {row['target']}")
    if row.get("answer") is not None:
        shown.append(str(row["answer"]))
    shown += [
        f"{column}={row[column]}"
        for column in columns
        if column not in ("numbers", "target", "answer") and row.get(column) is not None
    ]
    return excerpt("; ".join(shown), GOLD_CHARS)


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if math.isfinite(value) else str(value)


def make_console():
    from rich.console import Console

    # Piped output has no width to respect: keep each row on one line instead of rich's default of 80 columns.
    return Console(width=None if sys.stdout.isatty() else 200)


@dataclass
class Report:
    """What was scored, and its tables and JSON."""

    rows: list[dict[str, Any]]
    items: list[RewardSpec]
    functions: list[RewardFunction]
    parts: list[Part]
    scored: Scored
    warnings: list[str]
    explain: bool

    def __post_init__(self) -> None:
        self.totals = weighted_totals(self.items, self.scored.scores)
        self.gold_columns = list(dict.fromkeys(c for f in self.functions for c in f.required_columns))

    def summary(self, part: Part) -> list[dict[str, Any]]:
        return summarize(self.items, self.scored.scores, part.indices, self.scored.costs[part.kind])

    def groups(self, part: Part) -> dict[str, Any] | None:
        return spread(self.rows, part.indices, self.totals)

    def without_reasons(self) -> list[str]:
        return [function.__name__ for function in self.functions if not function.explains]

    def explain_note(self) -> str | None:
        silent = self.without_reasons()
        if not self.explain or not silent:
            return None
        have = "it has" if len(silent) == 1 else "they have"
        return f"note: no reasons from {', '.join(silent)}: {have} no explain function."

    # --- JSON ---

    def as_json(self) -> dict[str, Any]:
        every_row = Part(None, list(range(len(self.rows))))
        total_costs = [Cost(f.seconds_total, f.invalid_gold_count, f.non_finite_count) for f in self.functions]
        result: dict[str, Any] = {
            "rewards": [item.model_dump() for item in self.items],
            "token_counts": token_source(self.rows),
            "warnings": self.warnings,
            "rows": [self.row_json(i) for i in range(len(self.rows))],
            "summary": summarize(self.items, self.scored.scores, every_row.indices, total_costs),
        }
        if self.parts[0].kind is not None:
            result["summary_by_kind"] = {part.kind: self.summary(part) for part in self.parts}
        result["groups"] = {
            part.kind or "all": groups for part in self.parts if (groups := self.groups(part)) is not None
        }
        if self.explain:
            result["without_reasons"] = self.without_reasons()
        return result

    def row_json(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        entry: dict[str, Any] = {"line": row.get("_line")}
        if "kind" in row:
            entry["kind"] = row["kind"]
        entry["completion"] = row["completion"]
        entry["rewards"] = {item.name: values[i] for item, values in zip(self.items, self.scored.scores, strict=True)}
        entry["total"] = self.totals[i]
        if self.scored.reasons is not None:
            entry["reasons"] = {
                item.name: reasons[i] for item, reasons in zip(self.items, self.scored.reasons, strict=True)
            }
        return entry

    # --- tables ---

    def print_tables(self, show: int) -> None:
        from rich.text import Text

        console = make_console()
        for warning in self.warnings:
            console.print(f"[yellow]warning:[/] {warning}")
        if len(self.rows) == 1:
            row = self.rows[0]
            console.print(Text(f"completion: {excerpt(row['completion'])}"))
            if self.explain and (gold := gold_text(row, self.gold_columns)):
                console.print(Text(f"gold: {gold}"))
            console.print(f"token counts: {token_source(self.rows)}")
            console.print(self.one_completion_table())
        else:
            for part in self.parts:
                rows = [self.rows[i] for i in part.indices]
                # A line of its own, not the table's title: a title wraps at the table's width.
                console.print(Text(f"{part_title(part, rows)}; token counts: {token_source(rows)}", style="bold"))
                console.print(self.completions_table(part, show))
                if len(part.indices) > show:
                    console.print(f"({len(part.indices) - show} more row(s) not shown; --show N shows more)")
                console.print(summary_table(self.summary(part), part.kind))
                console.print(Text(SUMMARY_LEGEND, style="dim"))
                groups = self.groups(part)
                if groups is not None:
                    console.print(per_prompt_table(groups, part.kind, show))
                    legend = PER_PROMPT_LEGEND
                    if len(groups["per_prompt"]) > show:
                        legend += f"; {len(groups['per_prompt']) - show} more prompt(s) not shown (--show N)"
                    console.print(Text(legend, style="dim"))
                    console.print(Text(f"{part.kind}: " if part.kind else "") + Text(spread_line(groups), style="bold"))
        if note := self.explain_note():
            console.print(Text(note))

    def one_completion_table(self):
        """One completion: the rewards as rows, easy to read at any width; with --explain, why each score."""
        from rich.table import Table
        from rich.text import Text

        table = Table()
        headings = ("reward", "weight", "score", "why") if self.explain else ("reward", "weight", "score")
        for heading in headings:
            table.add_column(heading, justify="right" if heading in ("weight", "score") else "left")
        for r, (item, values) in enumerate(zip(self.items, self.scored.scores, strict=True)):
            why = [Text(self.scored.reasons[r][0])] if self.scored.reasons is not None else []
            table.add_row(item.name, f"{item.weight:g}", fmt(values[0]), *why)
        table.add_section()
        table.add_row("weighted total", "", fmt(self.totals[0]), style="bold")
        return table

    def completions_table(self, part: Part, show: int):
        """A row per completion: its excerpt, each reward's score, the weighted total; with --explain also its prompt,
        gold, and each reward's reason under its score."""
        from rich.table import Table
        from rich.text import Text

        rows = [self.rows[i] for i in part.indices]
        table = Table()
        table.add_column("line", justify="right", no_wrap=True)
        show_prompts = self.explain and any(row.get("prompt") is not None for row in rows)
        show_golds = self.explain and any(gold_text(row, self.gold_columns) for row in rows)
        if show_prompts:
            table.add_column("prompt", no_wrap=True, max_width=PROMPT_CHARS)
        if show_golds:
            table.add_column("gold", no_wrap=True, max_width=GOLD_CHARS)
        table.add_column("completion", no_wrap=True, overflow="ellipsis", max_width=EXCERPT_CHARS)
        for item in self.items:
            header = item.name if item.weight == 1 else f"{item.name} x{item.weight:g}"
            width = {"max_width": REASON_CHARS} if self.explain else {}
            table.add_column(header, justify="right", overflow="fold", min_width=6, **width)
        table.add_column("total", justify="right", style="bold", no_wrap=True)
        for i in part.indices[:show]:
            row = self.rows[i]
            context = [Text(prompt_excerpt(row.get("prompt")))] if show_prompts else []
            context += [Text(gold_text(row, self.gold_columns))] if show_golds else []
            cells = []
            for r, values in enumerate(self.scored.scores):
                reason = self.scored.reasons[r][i] if self.scored.reasons is not None else ""
                cells.append(Text(fmt(values[i]) + (f"\n{reason}" if reason else "")))
            table.add_row(
                str(row.get("_line", i + 1)), *context, Text(excerpt(row["completion"])), *cells, fmt(self.totals[i])
            )
        return table


def part_title(part: Part, rows: list[dict[str, Any]]) -> str:
    """'sampled: 400 completions (50 prompts x 8)'; the count per prompt when some prompt has several."""
    title = f"{part.kind}: {len(rows)} completions" if part.kind else f"{len(rows)} completions"
    sizes = [len(group) for group in prompt_groups(rows, list(range(len(rows))))]
    if sizes and min(sizes) == max(sizes) > 1:
        title += f" ({len(sizes)} prompt{'s' * (len(sizes) > 1)} x {sizes[0]})"
    elif sizes and max(sizes) > 1:
        title += f" ({len(sizes)} prompts, {min(sizes)}-{max(sizes)} each)"
    return title


def summary_table(summary: list[dict[str, Any]], kind: str | None):
    from rich.table import Table

    table = Table(title=f"per reward: {kind}" if kind else "per reward")
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


def per_prompt_table(groups: dict[str, Any], kind: str | None, show: int):
    """The weighted total's spread within each prompt's group."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"per prompt: {kind}" if kind else "per prompt")
    table.add_column("prompt", no_wrap=True, max_width=PROMPT_CHARS)
    for heading in ("n", "mean", "std", "min", "max", "all equal"):
        table.add_column(heading, justify="right", no_wrap=True)
    for group in groups["per_prompt"][:show]:
        table.add_row(
            Text(prompt_excerpt(group["prompt"])),
            str(group["n"]),
            *(fmt(group[key]) for key in ("mean", "std", "min", "max")),
            "yes" if group["all_equal"] else "",
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
