"""Arithmetic word problems: a short story in words with one or two steps of + and - (and x as a starting
"bags of N"), whole numbers, generated here: the task a small real model can learn offline in minutes.

    Ava has 7 marbles. She gets 5 more. How many marbles does Ava have now?                      (steps 1: 12)
    Ben has 3 bags with 4 stickers in each. He gives away 2. How many stickers does Ben have now? (x start: 10)

A problem is a start (`{name} has {a} {items}.`, or with "*" allowed, `{a} bags with {b} {items} in each`),
then `steps` sentences that add or take away, every intermediate count >= 0, then the question. The gold `answer`
is the final count, and `solution` the worked arithmetic ("3 * 4 = 12, 12 - 2 = 10"). Problems are deterministic
from data.seed; the test split is drawn first with no problem twice, and the train split never holds a test
problem's question. Graded like GSM8K: `rewards.answers_match` on the completion's last `<answer>` block.

    options: {min_steps: 1, max_steps: 2, max_number: 20, operations: ["+", "-"]}   (the defaults)
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field, model_validator

from rewards import answers_match, extract_answer
from train.config import RewardSpec
from train.errors import UserError
from train.tasks.base import Row, Split, Task, TaskOptions

Operation = Literal["+", "-", "*"]
DEFAULT_TEST_SIZE = 200
DEFAULT_TRAIN_SIZE = 2_000
MAX_FRUITLESS_DRAWS = 5_000

NAMES = [("Ava", "She"), ("Ben", "He"), ("Chloe", "She"), ("Dan", "He"), ("Emma", "She"), ("Finn", "He")]
ITEMS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "shells", "cards"]
# One sentence per step: the pronoun and the number are filled in.
ADD = ["{pronoun} gets {n} more.", "{pronoun} finds {n} more.", "A friend gives {them} {n} more."]
TAKE = ["{pronoun} gives away {n}.", "{pronoun} loses {n}.", "{pronoun} uses {n} of them."]


class ArithmeticOptions(TaskOptions):
    min_steps: int = Field(1, ge=1, le=4, description="Fewest add/take-away sentences after the start.")
    max_steps: int = Field(2, ge=1, le=4, description="Most add/take-away sentences (each problem draws its count).")
    max_number: int = Field(20, ge=2, description="Largest number in a sentence (numbers start at 1).")
    operations: list[Operation] = Field(
        default_factory=lambda: ["+", "-"],
        min_length=1,
        description="Operations the story uses: + and - are step sentences, * a start of bags of N.",
    )
    train_size: int | None = Field(
        None, ge=1, description="Problems in the train split (None: data.train_samples, else 2,000)."
    )
    test_size: int | None = Field(
        None, ge=1, description="Problems in the test split (None: data.test_samples, else 200)."
    )

    @model_validator(mode="after")
    def _ranges(self) -> ArithmeticOptions:
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) is larger than max_steps ({self.max_steps})")
        if not {"+", "-"} & set(self.operations):
            raise ValueError("operations need + or - (the step sentences); * alone only starts a story")
        self.operations = sorted(set(self.operations), key="+-*".index)
        return self


class ArithmeticTask(Task):
    name = "arithmetic"
    Options = ArithmeticOptions
    options: ArithmeticOptions

    def rows(self, split: Split) -> list[Row]:
        test = generate_problems(self.options, self._size("test"), seed=f"arithmetic-test-{self.data.seed}")
        if split == "test":
            return test
        held_out = {row["question"] for row in test}
        return generate_problems(
            self.options, self._size("train"), seed=f"arithmetic-train-{self.data.seed}", exclude=held_out
        )

    def _size(self, split: Split) -> int:
        if split == "test":
            return self.generated_size(split, self.options.test_size or self.data.test_samples or DEFAULT_TEST_SIZE)
        return self.generated_size(split, self.options.train_size or self.data.train_samples or DEFAULT_TRAIN_SIZE)

    def describe_source(self, split: Split) -> str:
        return f"generated with seed {self.data.seed}"

    def is_correct(self, completion: str, row: Row) -> bool:
        return answers_match(extract_answer(completion), row["answer"])

    def reference_completion(self, row: Row) -> str | None:
        return self.template.completion(row["solution"], row["answer"])

    def answer_rewards(self) -> list[RewardSpec]:
        return [RewardSpec(name="correctness_reward")]


def generate_problems(
    options: ArithmeticOptions, count: int, *, seed: str, exclude: set[str] | frozenset[str] = frozenset()
) -> list[Row]:
    """`count` distinct problems (question, answer, solution), none whose question is in `exclude`."""
    rng = random.Random(seed)  # str seeds are hashed with SHA-512: the same problems on every run and platform
    problems, seen, fruitless = [], set(), 0
    while len(problems) < count:
        row = draw_problem(rng, options)
        if row["question"] in seen or row["question"] in exclude:
            fruitless += 1
            if fruitless > MAX_FRUITLESS_DRAWS:
                raise UserError(
                    f"these arithmetic options allow only about {len(problems)} distinct problems outside the test "
                    f"split, fewer than the {count} asked. Lower data.train_samples / data.test_samples, or raise "
                    "data.options.max_number or max_steps."
                )
            continue
        fruitless = 0
        seen.add(row["question"])
        problems.append(row)
    return problems


def draw_problem(rng: random.Random, options: ArithmeticOptions) -> Row:
    """One story: a start, then add/take-away steps that never go below zero, then the question."""
    name, pronoun = rng.choice(NAMES)
    them = "her" if pronoun == "She" else "him"
    items = rng.choice(ITEMS)
    top = options.max_number
    if "*" in options.operations and rng.random() < 0.5:
        bags, each = rng.randint(2, min(top, 9)), rng.randint(2, min(top, 9))
        count, sentences, work = bags * each, [f"{name} has {bags} bags with {each} {items} in each."], []
        work.append(f"{bags} * {each} = {count}")
    else:
        count = rng.randint(1, top)
        sentences, work = [f"{name} has {count} {items}."], []
    steps = [op for op in options.operations if op in "+-"]
    for _ in range(rng.randint(options.min_steps, options.max_steps)):
        op = rng.choice(steps) if count > 0 else "+"
        n = rng.randint(1, top) if op == "+" else rng.randint(1, min(top, count))
        template = rng.choice(ADD if op == "+" else TAKE)
        sentences.append(template.format(pronoun=pronoun, them=them, n=n))
        result = count + n if op == "+" else count - n
        work.append(f"{count} {op} {n} = {result}")
        count = result
    sentences.append(f"How many {items} does {name} have now?")
    return {"question": " ".join(sentences), "answer": str(count), "solution": ", ".join(work)}
