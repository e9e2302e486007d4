"""MATH: competition mathematics with LaTeX answers (Hendrycks et al. 2021, arXiv:2103.03874).

The test split is MATH-500 (`HuggingFaceH4/MATH-500`, 500 problems chosen by Lightman et al. 2023, "Let's Verify
Step by Step"); it has no train split, so training rows come from the full MATH train set
(`DigitalLearningGmbH/MATH-lighteval`, 7,500 problems, disjoint from MATH-500), or from local JSONL files
(`data.source: data/math_{split}.jsonl`) with fields `problem` and `solution` (and `answer`, optional).
The gold `answer` column is the row's `answer` field, else the last `\\boxed{}` of its `solution`.
Graded by math-verify (`rewards.math_answers_match`) on the completion's last `<answer>` block, else its last
`\\boxed{}`.
"""

from __future__ import annotations

from rewards import extract_answer, math_answers_match
from train.config import RewardSpec
from train.errors import UserError
from train.tasks.base import Row, Split, Task

HUB_TEST_ID = "HuggingFaceH4/MATH-500"
HUB_TRAIN_ID = "DigitalLearningGmbH/MATH-lighteval"


class MathTask(Task):
    name = "math"

    def rows(self, split: Split) -> list[Row]:
        return self.rows_from_source(
            split,
            hub_id=_hub_id(split),
            columns=["problem", "solution"],
            fix="MATH rows need a problem and a solution (and, optionally, an answer); for other field names use "
            "task: jsonl with options question_column, answer_column and grading: math.",
        )

    def task_row(self, raw: Row, index: int, source: str) -> Row:
        gold = raw.get("answer") or extract_answer(raw["solution"])
        if not gold:
            raise UserError(
                f"row {index} of {source} has no gold answer: no 'answer' field and no \\boxed{{}} in its solution. "
                "Add the answer field to that row, or remove the row."
            )
        extras = {key: value for key, value in raw.items() if key not in ("problem", "answer", "solution")}
        return {"question": raw["problem"], "answer": str(gold), "solution": raw["solution"], **extras}

    def describe_source(self, split: Split) -> str:
        return self.data.source or _hub_id(split)

    def is_correct(self, completion: str, row: Row) -> bool:
        return math_answers_match(extract_answer(completion), row["answer"]) is True

    def reference_completion(self, row: Row) -> str | None:
        return self.template.completion(row["solution"].strip(), row["answer"])

    def answer_rewards(self) -> list[RewardSpec]:
        return [RewardSpec(name="math_accuracy_reward")]


def _hub_id(split: Split) -> str:
    return HUB_TEST_ID if split == "test" else HUB_TRAIN_ID
