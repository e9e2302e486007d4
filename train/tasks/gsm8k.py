"""GSM8K: grade-school math word problems with a whole-number answer (Cobbe et al. 2021, arXiv:2110.14168).

Rows come from the hub (`openai/gsm8k`, config `main`: 7,473 train and 1,319 test rows) or from local JSONL
files with the same fields (`data.source: data/gsm8k_{split}.jsonl`). The `answer` field is a worked solution
ending in `#### N`: the gold `answer` column is N (commas dropped), the worked solution is kept as `solution`.
Graded by `rewards.answers_match` on the completion's last `<answer>` block (numbers compared as numbers).
"""

from __future__ import annotations

import re

from rewards import answers_match, extract_answer, parse_gsm8k_gold
from train.config import RewardSpec
from train.errors import UserError
from train.tasks.base import Row, Split, Task

HUB_ID, HUB_CONFIG = "openai/gsm8k", "main"
# The calculator annotations of GSM8K solutions, e.g. "16 - 3 = <<16-3=13>>13".
_CALCULATOR = re.compile(r"<<[^>]*>>")


class GSM8KTask(Task):
    name = "gsm8k"

    def rows(self, split: Split) -> list[Row]:
        return self.rows_from_source(
            split,
            hub_id=HUB_ID,
            hub_config=HUB_CONFIG,
            columns=["question", "answer"],
            fix="GSM8K rows need a question and an answer ending in '#### N'; for other field names use task: jsonl "
            "with options question_column, answer_column and answer_format: gsm8k.",
        )

    def task_row(self, raw: Row, index: int, source: str) -> Row:
        try:
            gold = parse_gsm8k_gold(str(raw["answer"]))
        except ValueError:
            raise UserError(
                f"row {index} of {source} has no '#### N' gold answer in its answer field "
                f"({str(raw['answer'])[-60:]!r}). GSM8K answers end in '#### N'; for plain answers use task: jsonl."
            ) from None
        extras = {key: value for key, value in raw.items() if key not in ("question", "answer", "solution")}
        return {"question": raw["question"], "answer": gold, "solution": raw["answer"], **extras}

    def describe_source(self, split: Split) -> str:
        return self.data.source or f"{HUB_ID} ({HUB_CONFIG})"

    def is_correct(self, completion: str, row: Row) -> bool:
        return answers_match(extract_answer(completion), row["answer"])

    def reference_completion(self, row: Row) -> str | None:
        worked = row["solution"].rpartition("####")[0]
        reasoning = _CALCULATOR.sub("", worked).strip()
        return self.template.completion(reasoning, row["answer"])

    def answer_rewards(self) -> list[RewardSpec]:
        if self.template.reasoning_tag == "reasoning":
            # willccbb's GSM8K demo: an integer answer earns 0.5, the right one 2.0.
            return [RewardSpec(name="int_reward"), RewardSpec(name="correctness_reward", params={"value": 2.0})]
        return [RewardSpec(name="correctness_reward"), RewardSpec(name="int_reward")]
