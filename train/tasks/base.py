"""What every task is: its data, its prompt, its gold columns, its default rewards and its grading.

A task turns `data` config into rows the trainer and the evaluator use without knowing the task:

    task = get_task(cfg.data)
    rows = task.load_split("test", cfg.data.test_samples)    # columns: prompt, question, gold columns, extras
    task.is_correct(completion, rows[0]); task.outcome(completion, rows[0])  # correct | partial | failed
    task.default_rewards()                                   # the reward set when cfg.rewards is empty

A subclass sets `name`, `Options` (its own options, validated from `data.options`) and writes
`rows(split)` (raw rows to task rows; a task read from a file or hub data set calls `rows_from_source` and writes
`task_row`), `is_correct`, `reference_completion` and `answer_rewards`. This module
also holds the loaders every task shares: local JSONL files and hub data sets that fail fast when offline.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from rewards import has_answer_block
from train.config import DataConfig, RewardSpec
from train.errors import UserError, validation_problems
from train.models.hub import hub_reachable
from train.tasks.templates import PromptTemplate, prompt_template

if TYPE_CHECKING:
    from datasets import Dataset

Split = Literal["train", "test"]
# A generated split larger than this is refused: drawing it would take minutes and gigabytes before training starts.
MAX_GENERATED_ROWS = 1_000_000
Outcome = Literal["correct", "partial", "failed"]
Row = dict[str, Any]


class TaskOptions(BaseModel):
    """A task's own options (`data.options`); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # an inf or NaN option is refused, not used


class Task:
    """The base of every task; see the module docstring for what a subclass writes."""

    name: ClassVar[str]
    Options: ClassVar[type[TaskOptions]] = TaskOptions

    def __init__(self, data: DataConfig) -> None:
        self.data = data
        self.options = self._validate_options(data.options)
        self.template: PromptTemplate = prompt_template(data)
        if "" in (data.stop_strings or ()):  # every text contains "": generation would stop after one token
            raise UserError(
                f"data.stop_strings {data.stop_strings!r} holds an empty string, which every completion contains: "
                "generation would stop after its first token. Remove it ([] stops at end-of-sequence only)."
            )

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Where generation stops (kept in the completion): data.stop_strings, else the template's."""
        if self.data.stop_strings is not None:
            return tuple(self.data.stop_strings)
        return self.template.stop_strings

    # -- what a subclass writes --------------------------------------------------------------------------------

    def rows(self, split: Split) -> list[Row]:
        """Every row of the split, each with `question`, the gold columns and any extra columns."""
        raise NotImplementedError

    def is_correct(self, completion: str, row: Row) -> bool:
        raise NotImplementedError

    def reference_completion(self, row: Row) -> str | None:
        """A completion that solves the row, in the template's answer layout (None when the task has none)."""
        raise NotImplementedError

    def answer_rewards(self) -> list[RewardSpec]:
        """The rewards that grade the answer itself; `default_rewards` puts the template's format rewards first."""
        raise NotImplementedError

    # -- what every task shares ----------------------------------------------------------------------------------

    def load_split(self, split: Split, num_samples: int | None) -> Dataset:
        """The split's rows (all, or `num_samples` chosen by data.seed) with the rendered `prompt` column first."""
        from datasets import Dataset

        rows = self.subset(self.rows(split), split, num_samples)
        return Dataset.from_list([{"prompt": self.template.render(row["question"]), **row} for row in rows])

    def subset(self, rows: list[Row], split: Split, num_samples: int | None) -> list[Row]:
        """`num_samples` rows chosen by data.seed (kept in their original order), or all of them."""
        if not rows:
            raise UserError(
                f"the {split} split of task {self.name} ({self.describe_source(split)}) has no rows. Point "
                "data.source at a file or data set that has some."
            )
        if num_samples is None:
            return rows
        if num_samples > len(rows):
            key = "train_samples" if split == "train" else "test_samples"
            raise UserError(
                f"data.{key} is {num_samples} but the {split} split of task {self.name} "
                f"({self.describe_source(split)}) has only {len(rows)} rows. Set data.{key} to {len(rows)} or "
                "less (or leave it unset for all rows)."
            )
        chosen = sorted(random.Random(self.data.seed).sample(range(len(rows)), num_samples))
        return [rows[i] for i in chosen]

    def describe_source(self, split: Split) -> str:
        return self.data.source or "generated"

    def generated_size(self, split: Split, size: int) -> int:
        """`size` rows to generate for `split`, refused past MAX_GENERATED_ROWS (10^8 asked hung the run)."""
        if size > MAX_GENERATED_ROWS:
            key = "train_samples" if split == "train" else "test_samples"
            raise UserError(
                f"the {split} split of task {self.name} would generate {size:,} problems (data.{key} or "
                f"data.options.{split}_size), more than {MAX_GENERATED_ROWS:,}: that takes minutes and gigabytes "
                "before anything trains. Ask for fewer."
            )
        return size

    # -- rows from a file or a hub data set (GSM8K, MATH) ---------------------------------------------------------

    def rows_from_source(
        self, split: Split, *, hub_id: str, columns: list[str], fix: str, hub_config: str | None = None
    ) -> list[Row]:
        """The split's rows from data.source (a local JSONL file, or a hub id) or else `hub_id` (with `hub_config`
        when that data set is read): loaded, checked for `columns` (a UserError ending in `fix`), and each made a
        task row by `task_row`."""
        source = self.data.source or hub_id
        raw = load_source(source, split, hub_config=hub_config if source == hub_id else None)
        require_columns(raw, columns, source=source, fix=fix)
        return [self.task_row(row, index, source) for index, row in enumerate(raw)]

    def task_row(self, raw: Row, index: int, source: str) -> Row:
        """One raw row of `source` as a task row (question, gold columns, the raw row's other fields)."""
        raise NotImplementedError

    def outcome(self, completion: str, row: Row) -> Outcome:
        """correct; partial: an answer block, but a wrong answer; failed: no answer block at all."""
        if self.is_correct(completion, row):
            return "correct"
        return "partial" if has_answer_block(completion) else "failed"

    def default_rewards(self) -> list[RewardSpec]:
        """The template's format rewards, then the task's answer rewards: used when the config lists none."""
        if self.template.reasoning_tag == "reasoning":
            # willccbb's GSM8K demo set, in its order.
            formats = ["xmlcount_reward", "soft_format_reward", "strict_format_reward"]
        else:
            formats = ["hard_format_reward", "mark_reward"]
        return [RewardSpec(name=name) for name in formats] + self.answer_rewards()

    def _validate_options(self, options: dict[str, Any]) -> TaskOptions:
        try:
            return self.Options.model_validate(options)
        except ValidationError as error:
            valid = ", ".join(self.Options.model_fields) or "none"
            problems = validation_problems(error, lambda location: f"unknown option {'.'.join(map(str, location))!r}.")
            raise UserError(
                f"data.options for task {self.name} do not validate: {problems} "
                f"Valid options of {self.name}: {valid}. Fix or remove the option in the YAML or with --set."
            ) from None


# ----------------------------------------------------------------------------------------------------------------
# Loading rows: local JSONL files and hub data sets


def is_local_path(source: str) -> bool:
    """A source is a local file when it names a .jsonl/.json file or exists on disk; otherwise a hub id."""
    return source.endswith((".jsonl", ".json")) or Path(source).exists()


# A data line longer than this is refused before it is parsed: a row is a question and its answer (a GSM8K or MATH
# row is a few KB), and a 60 MB line hung the run in the tokenizer.
MAX_LINE_BYTES = 1_000_000


class FileRows(list):
    """Rows read from a data file, with the file line of each (`line_numbers`), so that a check names the line."""

    line_numbers: list[int]


def read_data_file(path: str | Path) -> FileRows:
    """The rows of a data file, read by the one JSONL reader (rewards.jsonl.read_jsonl); a missing file or any bad line
    (not UTF-8, not JSON, not an object, NaN or Infinity, longer than MAX_LINE_BYTES, a lone surrogate) is a
    UserError naming the file, the lines and the fix."""
    from rewards.jsonl import JsonlError, read_jsonl

    if not Path(path).is_file():
        raise UserError(f"data file not found: {path}. Set data.source to an existing .jsonl file.")
    try:
        _refuse_long_lines(Path(path))
        read = read_jsonl(path, unique_keys=True)  # a repeated key would lose one of its values silently
    except JsonlError as error:
        raise UserError(f"data.source: {error}") from None
    except OSError as error:
        raise UserError(
            f"cannot read the data file {path}: {error.strerror or error}. Check its permissions."
        ) from None
    rows = FileRows(read.rows)
    rows.line_numbers = read.line_numbers
    for row, line in zip(rows, rows.line_numbers, strict=True):
        if any(_has_surrogate(value) for value in (*row, *row.values())):
            raise UserError(
                f"data.source: {path} line {line} holds a lone surrogate (a JSON escape such as \\ud800, half of "
                "a UTF-16 pair): it is not text a tokenizer or a UTF-8 file can hold. Fix that line (write the whole "
                "pair, or the character itself)."
            )
    return rows


def _refuse_long_lines(path: Path) -> None:
    """Read `path` in bounded pieces; a line longer than MAX_LINE_BYTES is a UserError naming it."""
    with path.open("rb") as file:
        number = 0
        while piece := file.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(piece) > MAX_LINE_BYTES:
                raise UserError(
                    f"data.source: {path} line {number} is longer than {MAX_LINE_BYTES:,} bytes: a data row is a "
                    "question and its answer, not a document. Fix or remove that line."
                )


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, dict):
        return any(_has_surrogate(v) for v in (*value, *value.values()))
    return isinstance(value, list) and any(_has_surrogate(v) for v in value)


def load_source(source: str, split: Split, *, hub_split: str | None = None, hub_config: str | None = None) -> list[Row]:
    """Rows of a local JSONL file or of a hub data set's split.

    A local path may hold `{split}` (data/gsm8k_{split}.jsonl) to give each split its own file; without it, the
    one file serves every split.
    """
    path = source.replace("{split}", split)
    if is_local_path(path):
        return read_data_file(path)
    return load_hub_split(source, hub_split or split, hub_config)


def load_hub_split(repo_id: str, split: str, config_name: str | None = None) -> list[Row]:
    """A hub data set's split, as rows. Unreachable hub or missing data set: a UserError within seconds."""
    import datasets

    offline = datasets.config.HF_HUB_OFFLINE
    if not offline and not hub_reachable():
        raise UserError(
            f"cannot reach the Hugging Face Hub to download the data set {repo_id} (no network?). Use a local copy: "
            "set data.source: path/to/file.jsonl (the same fields, one JSON object per line), or, if you "
            "downloaded it before, run with HF_HUB_OFFLINE=1 to use the cached copy."
        )
    try:
        loaded = datasets.load_dataset(repo_id, config_name, split=split)
    except (OSError, ValueError, datasets.exceptions.DatasetsError) as error:
        where = "in the local cache (HF_HUB_OFFLINE is set)" if offline else "on the Hugging Face Hub"
        raise UserError(
            f"could not load split {split!r} of the data set {repo_id} {where}: {error}. Check the data set id "
            "and split in data.source / data.options, or set data.source: path/to/file.jsonl to use a local file."
        ) from None
    return loaded.to_list()


def require_columns(
    rows: list[Row],
    columns: list[str],
    *,
    source: str,
    fix: str,
    text: list[str] | None = None,
    typed: bool = True,
) -> None:
    """Every row has every one of `columns`, each holding one kind of value in every row (without `typed`, only
    presence is checked); a column of `text` (default: all of `columns`) holds text or a number, never null, a list
    or an object (str() would make the gold or the prompt "None" or "['...']"). A UserError names each bad row's
    line (or row number), the columns the first row has, and ends in `fix`."""
    if not rows:
        return  # an empty split is reported by Task.subset
    missing = [column for column in columns if column not in rows[0]]
    if missing:
        raise UserError(
            f"the data from {source} has no column {', '.join(repr(c) for c in missing)} (its columns: "
            f"{', '.join(rows[0]) or 'none'}). {fix}"
        )
    lines = getattr(rows, "line_numbers", None)
    text = columns if text is None else text
    problems: list[str] = []
    first_kind: dict[str, tuple[str, str]] = {}
    for index, row in enumerate(rows):
        where = f"line {lines[index]}" if lines else f"row {index + 1}"
        for column in columns:
            if column not in row:
                problems.append(f"{where} has no column {column!r}")
                continue
            kind = _kind(row[column])
            if column in text and kind not in ("text", "a number"):
                problems.append(f"{where}: {column!r} is {kind}, not text or a number")
            elif typed and kind != "null" and first_kind.setdefault(column, (kind, where))[0] != kind:
                problems.append(
                    f"{where}: {column!r} is {kind}, but {first_kind[column][0]} at {first_kind[column][1]}"
                )
        if len(problems) > 10:
            break
    if problems:
        raise UserError(
            f"the data from {source} has rows that do not fit: {'; '.join(problems[:10])}. Every row needs "
            f"{', '.join(repr(c) for c in columns)}, with one kind of value per column. Fix those rows. {fix}"
        )


def _kind(value: Any) -> str:
    """The kind of a JSON value, in words (a column must hold one kind: the data set's columns are typed)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object"
