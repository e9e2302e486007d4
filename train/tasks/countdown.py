"""Countdown: reach a target with each given number used exactly once and + - * / (the TinyZero task).

Problems are generated here, deterministically from data.seed, and every one is solvable by construction: the
generator draws the numbers, combines them at random into one expression (each intermediate value a positive
whole number, divisions exact) and takes its value as the target, keeping that expression as the `solution`
column. The test split is drawn first, with no problem twice; the train split never holds a test problem (same
numbers and target), so the two are disjoint. Difficulty is in the options:

    easy (the quickstart's char-level model): {min_numbers: 2, max_numbers: 2, max_number: 15, operations: ["+", "-"],
                                               question_style: compact}
    the study (TinyZero-like):                {min_numbers: 3, max_numbers: 4, max_number: 99}   (the defaults)

With `data.source: Jiayi-Pan/Countdown-Tasks-3to4` (or a local JSONL with the same columns, target and nums) the
rows come from that data set instead; it has one split, whose last `test_size` rows are the test split (TinyZero
held out the last 1,024). Graded by `rewards.check_countdown` on the completion's last `<answer>` block.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection
from fractions import Fraction
from typing import Literal

from pydantic import Field, model_validator

from rewards import check_countdown, extract_answer
from train.config import RewardSpec
from train.errors import UserError
from train.tasks.base import Row, Split, Task, TaskOptions, load_source, require_columns

Operation = Literal["+", "-", "*", "/"]
# Consecutive draws that add nothing new before the generator decides the options allow no more problems.
MAX_FRUITLESS_DRAWS = 5_000
# solve()'s search steps before it gives up: a whole 4-number search takes about 4,000 (0.1 s), a 5-number one
# 100,000, a 6-number one 25 s and 7 numbers over 120 s.
MAX_SOLVE_STEPS = 20_000
DEFAULT_TEST_SIZE = 500
MAX_EXACT = 2**53  # the largest whole number every JSON reader and float holds exactly
DEFAULT_TRAIN_SIZE = 10_000


class CountdownOptions(TaskOptions):
    min_numbers: int = Field(3, ge=2, le=6, description="Fewest numbers in a problem.")
    max_numbers: int = Field(4, ge=2, le=6, description="Most numbers in a problem (each problem draws its count).")
    min_number: int = Field(1, ge=1, description="Smallest number drawn.")
    max_number: int = Field(99, ge=1, description="Largest number drawn.")
    max_target: int = Field(100, ge=1, description="Largest target (targets are whole numbers >= 1).")
    operations: list[Operation] = Field(
        default_factory=lambda: ["+", "-", "*", "/"], min_length=1, description="Operations the solutions use."
    )
    question_style: Literal["full", "compact"] = Field(
        "full",
        description="full: the sentence a language model reads; compact: '3 5 -> 8', for the char-level tiny model.",
    )
    train_size: int | None = Field(
        None, ge=1, description="Problems in the train split (None: data.train_samples, else 10,000)."
    )
    test_size: int | None = Field(
        None, ge=1, description="Problems in the test split (None: data.test_samples, else 500)."
    )

    @model_validator(mode="after")
    def _ranges(self) -> CountdownOptions:
        if self.min_numbers > self.max_numbers:
            raise ValueError(f"min_numbers ({self.min_numbers}) is larger than max_numbers ({self.max_numbers})")
        if self.min_number > self.max_number:
            raise ValueError(f"min_number ({self.min_number}) is larger than max_number ({self.max_number})")
        self.operations = sorted(set(self.operations), key="+-*/".index)
        return self


class CountdownTask(Task):
    name = "countdown"
    Options = CountdownOptions
    options: CountdownOptions

    def rows(self, split: Split) -> list[Row]:
        if self.data.source:
            return self._source_rows(split)
        test = generate_problems(self.options, self._size("test"), seed=f"countdown-test-{self.data.seed}")
        if split == "test":
            return [self._row(numbers, target, solution) for numbers, target, solution in test]
        held_out = {problem_key(numbers, target) for numbers, target, _ in test}
        train = generate_problems(
            self.options, self._size("train"), seed=f"countdown-train-{self.data.seed}", unique=False, exclude=held_out
        )
        return [self._row(numbers, target, solution) for numbers, target, solution in train]

    def _size(self, split: Split) -> int:
        if split == "test":
            return self.generated_size(split, self.options.test_size or self.data.test_samples or DEFAULT_TEST_SIZE)
        return self.generated_size(split, self.options.train_size or self.data.train_samples or DEFAULT_TRAIN_SIZE)

    def _source_rows(self, split: Split) -> list[Row]:
        source = self.data.source
        raw = load_source(source, "train")  # the hub set has one split; see the module docstring
        require_columns(
            raw,
            ["target", "nums"],
            text=[],
            typed=False,  # _whole_numbers says what each row needs
            source=source,
            fix="Countdown rows need target (a number) and nums (a list of numbers), as in "
            "Jiayi-Pan/Countdown-Tasks-3to4.",
        )
        held_out = self.options.test_size or self.data.test_samples or DEFAULT_TEST_SIZE
        if held_out >= len(raw):
            raise UserError(
                f"{source} has {len(raw)} rows, too few to hold out {held_out} for the test split and train on the "
                "rest. Lower data.options.test_size (or data.test_samples)."
            )
        chosen = raw[-held_out:] if split == "test" else raw[:-held_out]
        return [self._row(*_whole_numbers(row, source), None) for row in chosen]

    def _row(self, numbers: list[int], target: int, solution: str | None) -> Row:
        return {"question": self.question(numbers, target), "target": target, "numbers": numbers, "solution": solution}

    def question(self, numbers: list[int], target: int) -> str:
        if self.options.question_style == "compact":
            return f"{' '.join(map(str, numbers))} -> {target}"
        operations = self.options.operations
        listed = operations[0] if len(operations) == 1 else f"{', '.join(operations[:-1])} and {operations[-1]}"
        rules = f"Use each number once, with {listed}."
        return f"Using the numbers {numbers}, create an equation that equals {target}. {rules}"

    def describe_source(self, split: Split) -> str:
        return self.data.source or f"generated with seed {self.data.seed}"

    def is_correct(self, completion: str, row: Row) -> bool:
        return check_countdown(extract_answer(completion), row["numbers"], row["target"]).correct

    def reference_completion(self, row: Row) -> str | None:
        solution = row.get("solution") or solve(row["numbers"], row["target"])
        if solution is None:
            return None
        return self.template.completion(f"{solution}={row['target']}", solution)

    def answer_rewards(self) -> list[RewardSpec]:
        return [RewardSpec(name="countdown_reward")]


def _whole_numbers(row: Row, source: str) -> tuple[list[int], int]:
    """(nums, target) of a source row as whole numbers; a UserError naming the row when they are not."""

    def whole(value: object) -> int:
        past = f"is past {MAX_EXACT:,} (2**53), beyond which a JSON number is not exact"
        try:
            number = float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else math.nan
        except OverflowError:  # an integer of hundreds of digits
            raise ValueError(value, past) from None
        if not math.isfinite(number) or number != int(number):
            raise ValueError(value)
        if abs(number) > MAX_EXACT:  # 1e29 read as a float is 99999999999999991433150857216: not the number written
            raise ValueError(value, past)
        return int(value) if isinstance(value, int) else int(number)

    try:
        nums = row["nums"]
        if not isinstance(nums, list) or not nums:
            raise ValueError(nums)
        return [whole(n) for n in nums], whole(row["target"])
    except ValueError as error:
        why = error.args[1] if len(error.args) > 1 else "where a whole number is needed"
        raise UserError(
            f"{source}: a Countdown row has {error.args[0]!r} {why} (row: "
            f"{str(row)[:120]}). Countdown rows need target (a whole number) and nums (a list of whole numbers); fix "
            "or drop that row."
        ) from None


def problem_key(numbers: list[int], target: int) -> tuple[tuple[int, ...], int]:
    """Two problems are the same when they have the same numbers (in any order) and target."""
    return tuple(sorted(numbers)), target


def generate_problems(
    options: CountdownOptions,
    count: int,
    *,
    seed: str,
    unique: bool = True,
    exclude: Collection[tuple[tuple[int, ...], int]] = (),
) -> list[tuple[list[int], int, str]]:
    """`count` solvable problems (numbers, target, solution), none in `exclude`, no two the same when `unique`.

    The train split allows repeats: easy options may allow fewer distinct problems than the split holds.
    """
    rng = random.Random(seed)  # str seeds are hashed with SHA-512: the same problems on every run and platform
    problems, seen, fruitless = [], set(), 0
    while len(problems) < count:
        numbers, target, solution = _draw(rng, options)
        key = problem_key(numbers, target)
        if target is None or key in exclude or (unique and key in seen):
            fruitless += 1
            if fruitless > MAX_FRUITLESS_DRAWS:
                raise _exhausted(options, count, len(problems), unique)
            continue
        fruitless = 0
        seen.add(key)
        problems.append((numbers, target, solution))
    return problems


def _draw(rng: random.Random, options: CountdownOptions) -> tuple[list[int], int | None, str]:
    """Random numbers combined into a random expression; target None when it leaves 1..max_target."""
    count = rng.randint(options.min_numbers, options.max_numbers)
    numbers = [rng.randint(options.min_number, options.max_number) for _ in range(count)]
    pool = [(number, str(number)) for number in numbers]
    while len(pool) > 1:
        left = pool.pop(rng.randrange(len(pool)))
        right = pool.pop(rng.randrange(len(pool)))
        combined = _combine(rng, left, right, options.operations)
        if combined is None:
            return numbers, None, ""
        pool.append(combined)
    value, solution = pool[0]
    return numbers, (value if 1 <= value <= options.max_target else None), solution


def _combine(
    rng: random.Random, left: tuple[int, str], right: tuple[int, str], operations: list[str]
) -> tuple[int, str] | None:
    """One random allowed operation on two operands whose result is a positive whole number, or None."""
    (a, a_text), (b, b_text) = left, right
    if a < b:  # so that subtraction and division have a chance to stay positive and whole
        (a, a_text), (b, b_text) = (b, b_text), (a, a_text)
    results = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if a % b == 0 else 0}
    choices = [op for op in operations if results[op] >= 1]
    if not choices:
        return None
    op = rng.choice(choices)
    return results[op], f"{_operand(a_text)}{op}{_operand(b_text)}"


def _operand(text: str) -> str:
    return text if text.isdigit() else f"({text})"


def _exhausted(options: CountdownOptions, wanted: int, found: int, unique: bool) -> UserError:
    if unique:
        problem = f"these countdown options allow only about {found} distinct problems, fewer than the {wanted} asked"
        fix = "Lower data.test_samples (or options.test_size), or allow more numbers, a wider number range, a larger "
    else:
        problem = "every countdown problem these options allow is already in the test split"
        fix = "Lower data.test_samples (or options.test_size), or allow a wider number range, a larger "
    return UserError(
        f"{problem} ({options.min_numbers}-{options.max_numbers} numbers from {options.min_number} to "
        f"{options.max_number}, operations {' '.join(options.operations)}, targets up to {options.max_target}). "
        f"{fix}max_target or more operations in data.options."
    )


def solve(numbers: list[int], target: int) -> str | None:
    """An expression using each number once with + - * / that equals target (exact fractions), or None.

    Exhaustive search over pairs, fine for the 3-4 numbers of the hub data set; used when a row has no solution.
    Bounded: after MAX_SOLVE_STEPS steps it gives up (None), so a row of 6 or 7 numbers costs a fraction of a
    second, not minutes (7 numbers searched for over 120 s).
    """
    goal = Fraction(target)
    failed: set[tuple[Fraction, ...]] = set()
    steps = 0

    def search(pool: list[tuple[Fraction, str]]) -> str | None:
        nonlocal steps
        steps += 1
        if steps > MAX_SOLVE_STEPS:
            raise _GaveUp
        if len(pool) == 1:
            return pool[0][1] if pool[0][0] == goal else None
        key = tuple(sorted(value for value, _ in pool))
        if key in failed:
            return None
        for i in range(len(pool)):
            for j in range(len(pool)):
                if i == j:
                    continue
                (a, a_text), (b, b_text) = pool[i], pool[j]
                rest = [pool[k] for k in range(len(pool)) if k not in (i, j)]
                candidates = [(a + b, "+"), (a - b, "-"), (a * b, "*")] + ([(a / b, "/")] if b else [])
                for value, op in candidates:
                    found = search([*rest, (value, f"{_operand(a_text)}{op}{_operand(b_text)}")])
                    if found is not None:
                        return found
        failed.add(key)
        return None

    try:
        return search([(Fraction(number), str(number)) for number in numbers])
    except _GaveUp:
        return None


class _GaveUp(Exception):
    """solve() took MAX_SOLVE_STEPS steps without an answer."""
