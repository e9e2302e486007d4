"""What experiments/score_rewards.py scores: the rows (a JSONL file or one completion) and the rewards (built-in
names, a user's reward file, or an experiment config's `rewards:` list), built and checked before anything is
scored. The scoring itself is rewards/scoring.py's; the tables and JSON train/lab/reports/reward_scores.py's.

Bad input raises UserError (one paragraph naming the problem and the fix); score_rewards prints it, exit code 2.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rewards import REWARDS, get_reward
from rewards.jsonl import JsonlError, describe_bad_lines, read_jsonl
from rewards.registry import RewardFunction
from rewards.user import defined_functions, load_user_module, user_file
from train.config import RewardSpec
from train.errors import UserError

REWARD_SIGNATURE = "def my_reward(completions, **kwargs)"
EXAMPLE_FILE = "my_rewards.py"  # in messages, when the user has named no file of their own


@dataclass(frozen=True)
class Choice:
    """One --rewards or --reward-file value; both flags append to one list, so rewards keep the order given."""

    flag: str
    value: str


# --- input ---


def read_input(args: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows to score, and warnings about skipped lines: from `args.input` (a JSONL file) or `args.completion`
    with its gold (`answer`, `target`, `numbers`, `prompt`), as experiments/score_rewards.py parses them."""
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


def single_row(args: Any) -> dict[str, Any]:
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
        read = read_jsonl(path, required=("completion",), skip_bad=skip_bad, unique_keys=True)
    except JsonlError as error:
        hint = " Or pass --skip-bad to score the other lines." if "bad line" in str(error) else ""
        raise UserError(f"{error}{hint}") from None
    if not read.rows:
        raise UserError(f'{path} has no rows to score: each line must be a JSON object with a "completion" field.')
    rows = [{**row, "_line": number} for row, number in zip(read.rows, read.line_numbers, strict=True)]
    warnings = [f"skipped {len(read.skipped)} bad line(s): {describe_bad_lines(read.skipped)}"] if read.skipped else []
    return rows, warnings


# --- which rewards ---


def choose_rewards(args: Any, columns: set[str]) -> list[RewardSpec]:
    """The rewards to score, in the order given: the config's (`args.config`), then each --rewards item and
    --reward-file's functions (`args.choices`); with none of these, every applicable built-in; `args.param` set."""
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


def load_rewards(items: list[RewardSpec]) -> list[RewardFunction]:
    """The chosen rewards' functions (no weights, no task: train.tasks.build_rewards is the training run's)."""
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
