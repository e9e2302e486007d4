"""Countdown: generated problems are solvable, in range, deterministic for a seed, and train/test disjoint."""

from __future__ import annotations

import json

import pytest

from rewards import check_countdown
from train.config import DataConfig
from train.errors import UserError
from train.tasks import get_task
from train.tasks.countdown import problem_key, solve

EASY = {"min_numbers": 2, "max_numbers": 2, "max_number": 9, "operations": ["+", "-"]}
STUDY = {"min_numbers": 3, "max_numbers": 4, "min_number": 1, "max_number": 99, "max_target": 100}


def countdown(options=None, **data):
    return get_task(DataConfig(task="countdown", options=options or {}, **data))


@pytest.mark.parametrize("options", [EASY, STUDY, {"min_numbers": 5, "max_numbers": 5, "max_number": 20}])
def test_every_generated_problem_is_solved_by_its_kept_solution(options):
    task = countdown(options, train_samples=300, test_samples=40)  # EASY allows 81 distinct problems
    for split in ("train", "test"):
        for row in task.load_split(split, None):
            check = check_countdown(row["solution"], row["numbers"], row["target"])
            assert check.correct, row


@pytest.mark.parametrize("options", [EASY, STUDY])
def test_numbers_targets_and_operations_stay_in_range(options):
    task = countdown(options, train_samples=300, test_samples=40)
    allowed = set("0123456789()") | set(task.options.operations)
    for row in task.load_split("train", None):
        assert task.options.min_numbers <= len(row["numbers"]) <= task.options.max_numbers
        assert all(task.options.min_number <= n <= task.options.max_number for n in row["numbers"])
        assert 1 <= row["target"] <= task.options.max_target
        assert set(row["solution"]) <= allowed


def test_generation_is_deterministic_for_a_seed():
    first = countdown(STUDY, seed=7, train_samples=50).load_split("train", None)
    again = countdown(STUDY, seed=7, train_samples=50).load_split("train", None)
    other = countdown(STUDY, seed=8, train_samples=50).load_split("train", None)
    assert first.to_list() == again.to_list()
    assert first["numbers"] != other["numbers"]


def test_train_and_test_are_disjoint_and_test_has_no_repeats():
    task = countdown(EASY, train_samples=500, test_samples=30)
    test = {problem_key(r["numbers"], r["target"]) for r in task.load_split("test", None)}
    train = {problem_key(r["numbers"], r["target"]) for r in task.load_split("train", None)}
    assert len(test) == 30
    assert not test & train


def test_the_test_split_does_not_depend_on_the_train_size():
    small = countdown(EASY, train_samples=10, test_samples=20).load_split("test", None)
    large = countdown(EASY, train_samples=400, test_samples=20).load_split("test", None)
    assert small.to_list() == large.to_list()


def test_options_that_allow_too_few_problems_are_a_user_error():
    # 1..2 with + only: 1+1, 1+2, 2+2 are the only problems.
    tiny = {"min_numbers": 2, "max_numbers": 2, "max_number": 2, "operations": ["+"]}
    with pytest.raises(UserError, match="only about 3 distinct problems, fewer than the 5 asked"):
        countdown(tiny, test_samples=5).load_split("test", None)
    with pytest.raises(UserError, match="already in the test split"):
        countdown(tiny, test_samples=3).load_split("train", 2)


def test_inconsistent_ranges_are_a_user_error():
    with pytest.raises(UserError, match="min_numbers \\(4\\) is larger than max_numbers \\(3\\)"):
        countdown({"min_numbers": 4, "max_numbers": 3})


def test_question_and_reference_completion_are_short():
    task = countdown(EASY, prompt_template="{question}\n", test_samples=5)
    row = task.load_split("test", None)[0]
    a, b = row["numbers"]
    assert row["question"] == (
        f"Using the numbers [{a}, {b}], create an equation that equals {row['target']}. "
        "Use each number once, with + and -."
    )
    solution = row["solution"]
    assert task.reference_completion(row) == f"<think>{solution}={row['target']}</think><answer>{solution}</answer>"
    assert task.outcome(task.reference_completion(row), row) == "correct"


def test_solver_finds_an_equation_or_reports_none():
    assert check_countdown(solve([44, 19, 35], 98), [44, 19, 35], 98).correct
    assert check_countdown(solve([3, 7, 4, 2], 26), [3, 7, 4, 2], 26).correct
    assert solve([1, 1], 5) is None


def test_rows_from_a_file_hold_out_the_last_rows_for_test(tmp_path):
    problems = [{"target": 8, "nums": [3, 5]}, {"target": 2, "nums": [6, 3]}, {"target": 24, "nums": [4, 6, 1]}]
    source = tmp_path / "countdown.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in problems))
    task = countdown(source=str(source), options={"test_size": 1})
    train, test = task.load_split("train", None), task.load_split("test", None)
    assert train["target"] == [8, 2] and test["target"] == [24]
    assert test[0]["numbers"] == [4, 6, 1]
    assert task.is_correct(task.reference_completion(test[0]), test[0])  # solved on demand: the file has none


@pytest.mark.parametrize(
    "bad", [{"target": "abc", "nums": [3, 5]}, {"target": 8.5, "nums": [3, 5]}, {"target": 8, "nums": "3 5"}]
)
def test_a_countdown_row_that_is_not_whole_numbers_is_one_paragraph(tmp_path, bad):
    from train.errors import UserError

    problems = [{"target": 8, "nums": [3, 5]}, bad, {"target": 24, "nums": [4, 6, 1]}]
    source = tmp_path / "countdown.jsonl"
    source.write_text("".join(json.dumps(p) + "\n" for p in problems))
    with pytest.raises(UserError, match="whole number"):
        countdown(source=str(source), options={"test_size": 1}).load_split("train", None)
