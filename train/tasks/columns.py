"""Your own data: any local JSONL file (`task: jsonl`) or hub data set (`task: hf`) with a question and an answer.

The options map your columns onto the task's: `question_column` and `answer_column` (the gold answer), plus
`extra_columns`, copied to every row and passed to the rewards by name. `answer_format` says how to read the gold
from the answer column (as is, after a GSM8K `####`, or the last `\\boxed{}`), and `grading` how to compare:
`answer` (numbers as numbers, else text: `rewards.answers_match`) or `math` (math-verify).

    data: {task: jsonl, source: data/my_{split}.jsonl, options: {question_column: prompt, answer_column: label}}
    data: {task: hf, source: openai/gsm8k, options: {config_name: main, answer_format: gsm8k}}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rewards import answers_match, extract_answer, math_answers_match, parse_gsm8k_gold
from train.config import DataConfig, RewardSpec
from train.errors import UserError
from train.tasks.base import Row, Split, Task, TaskOptions, load_hub_split, read_data_file, require_columns


class JsonlOptions(TaskOptions):
    question_column: str = Field("question", description="The column holding the question.")
    answer_column: str = Field("answer", description="The column holding the gold answer.")
    extra_columns: list[str] = Field(default_factory=list, description="Columns passed on to the rewards.")
    answer_format: Literal["plain", "gsm8k", "boxed"] = Field(
        "plain", description="plain: the answer as is; gsm8k: the text after '####'; boxed: the last \\boxed{}."
    )
    grading: Literal["answer", "math"] = Field(
        "answer", description="answer: numbers as numbers, else text; math: math-verify on LaTeX answers."
    )


class HubOptions(JsonlOptions):
    config_name: str | None = Field(None, description="The hub data set's configuration (subset), if it has several.")
    train_split: str = Field("train", description="The hub split used for training.")
    test_split: str = Field("test", description="The hub split used for evaluation.")


class JsonlTask(Task):
    """Rows from a local JSONL file; `{split}` in data.source gives each split its own file."""

    name = "jsonl"
    Options = JsonlOptions
    options: JsonlOptions

    def __init__(self, data: DataConfig) -> None:
        super().__init__(data)
        if not data.source:
            raise UserError(self._needs_source())

    def _needs_source(self) -> str:
        return (
            "task jsonl needs data.source: the path of a .jsonl file (e.g. data/my_{split}.jsonl, where {split} "
            "becomes train or test)."
        )

    def raw_rows(self, split: Split) -> list[Row]:
        return read_data_file(self.data.source.replace("{split}", split))

    def rows(self, split: Split) -> list[Row]:
        raw = self.raw_rows(split)
        options = self.options
        require_columns(
            raw,
            [options.question_column, options.answer_column, *options.extra_columns],
            source=self.describe_source(split),
            fix="Name your columns in data.options: question_column, answer_column and extra_columns.",
        )
        return [self._row(row, index, split) for index, row in enumerate(raw)]

    def _row(self, raw: Row, index: int, split: Split) -> Row:
        options = self.options
        extras = {column: raw[column] for column in options.extra_columns}
        return {"question": str(raw[options.question_column]), "answer": self._gold(raw, index, split), **extras}

    def _gold(self, raw: Row, index: int, split: Split) -> str:
        text = str(raw[self.options.answer_column])
        if self.options.answer_format == "gsm8k":
            try:
                return parse_gsm8k_gold(text)
            except ValueError:
                gold = None
        elif self.options.answer_format == "boxed":
            gold = extract_answer(text) if "\\boxed{" in text else None
        else:
            gold = text.strip()
        if not gold:
            raise UserError(
                f"row {index} of {self.describe_source(split)} has no gold answer in column "
                f"{self.options.answer_column!r} read as answer_format {self.options.answer_format} ({text[-60:]!r}). "
                "Fix that row, or set data.options.answer_format (plain, gsm8k or boxed) to match your answers."
            )
        return gold

    def describe_source(self, split: Split) -> str:
        return self.data.source.replace("{split}", split)

    def is_correct(self, completion: str, row: Row) -> bool:
        predicted = extract_answer(completion)
        if self.options.grading == "math":
            return math_answers_match(predicted, row["answer"]) is True
        return answers_match(predicted, row["answer"])

    def reference_completion(self, row: Row) -> str | None:
        # The rows hold a gold answer, not a worked solution: the reference states the answer with no reasoning.
        return self.template.completion("", row["answer"])

    def answer_rewards(self) -> list[RewardSpec]:
        if self.options.grading == "math":
            return [RewardSpec(name="math_accuracy_reward")]
        return [RewardSpec(name="correctness_reward")]


class HubTask(JsonlTask):
    """Rows from a hub data set's train and test splits (names and configuration in the options)."""

    name = "hf"
    Options = HubOptions
    options: HubOptions

    def _needs_source(self) -> str:
        return "task hf needs data.source: a hub data set id such as openai/gsm8k (for a local file use task: jsonl)."

    def raw_rows(self, split: Split) -> list[Row]:
        hub_split = self.options.train_split if split == "train" else self.options.test_split
        return load_hub_split(self.data.source, hub_split, self.options.config_name)

    def describe_source(self, split: Split) -> str:
        hub_split = self.options.train_split if split == "train" else self.options.test_split
        return f"{self.data.source}, split {hub_split}"
