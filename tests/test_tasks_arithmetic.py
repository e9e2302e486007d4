"""The generated arithmetic word problems (train/tasks/arithmetic.py): the gold answer is the story's arithmetic,
the splits are disjoint and deterministic, grading reads the answer block, bad options are one paragraph."""

from __future__ import annotations

import random
import re

import pytest

from train.config import DataConfig
from train.errors import UserError
from train.tasks import get_task
from train.tasks.arithmetic import ArithmeticOptions, draw_problem


def task(**options):
    return get_task(DataConfig(task="arithmetic", prompt_template="chat", options=options))


def story_value(question: str) -> int:
    """The count a story ends with, recomputed from its words alone."""
    bags = re.match(r"\w+ has (\d+) bags with (\d+) ", question)
    count = int(bags[1]) * int(bags[2]) if bags else int(re.match(r"\w+ has (\d+) ", question)[1])
    for sentence in question.split(". ")[1:]:
        number = re.search(r"\d+", sentence)
        if number is None:
            continue
        count += int(number[0]) if ("more" in sentence) else -int(number[0])
    return count


def test_every_gold_answer_is_the_storys_own_arithmetic():
    rows = task(operations=["+", "-", "*"], max_steps=3, test_size=300).rows("test")
    assert len(rows) == 300
    for row in rows:
        assert int(row["answer"]) == story_value(row["question"]) >= 0, row
        # The worked solution ends at the answer and every step's equation holds.
        assert row["solution"].endswith(f"= {row['answer']}")
        for step in row["solution"].split(", "):
            left, right = step.split(" = ")
            assert eval(left) == int(right)  # noqa: S307 -- digits and + - * only, written by the generator


def test_a_hand_checked_problem():
    row = draw_problem(
        random.Random(0), ArithmeticOptions(min_steps=2, max_steps=2, max_number=9, operations=["+", "-", "*"])
    )
    question = (
        "Dan has 9 bags with 8 shells in each. He uses 6 of them. He gets 9 more. How many shells does Dan have now?"
    )
    assert row["question"] == question
    assert row["answer"] == "75"  # 9 x 8 = 72, 72 - 6 = 66, 66 + 9 = 75
    assert row["solution"] == "9 * 8 = 72, 72 - 6 = 66, 66 + 9 = 75"


def test_the_splits_are_deterministic_and_disjoint():
    first, again = task(test_size=50, train_size=400), task(test_size=50, train_size=400)
    test, train = first.rows("test"), first.rows("train")
    assert test == again.rows("test") and train == again.rows("train")
    assert not {row["question"] for row in test} & {row["question"] for row in train}
    assert len({row["question"] for row in test}) == 50


def test_grading_reads_the_last_answer_block():
    t = task()
    row = {"question": "q", "answer": "12", "solution": "7 + 5 = 12"}
    assert t.is_correct("<think>7 + 5 = 12</think><answer>12</answer>", row)
    assert not t.is_correct("7 + 5 = 12", row)  # no answer block: not graded correct
    assert not t.is_correct("<answer>13</answer>", row)
    assert t.is_correct(t.reference_completion(row), row)
    assert [spec.name for spec in t.default_rewards()] == ["hard_format_reward", "mark_reward", "correctness_reward"]


def test_prompts_are_chats_in_words():
    rows = task(test_size=3).load_split("test", None)
    system, user = rows[0]["prompt"]
    assert system["role"] == "system" and "<answer>" in system["content"]
    assert user["content"].startswith(rows[0]["question"]) and user["content"].endswith("have now?")


def test_the_user_template_puts_an_instruction_beside_the_question():
    data = DataConfig(task="arithmetic", prompt_template="chat", user_template="Q: {question}\nTags, please.")
    system, user = get_task(data).load_split("test", 1)[0]["prompt"]
    assert user["content"].startswith("Q: ") and user["content"].endswith("have now?\nTags, please.")
    with pytest.raises(UserError, match="no {question} placeholder"):
        get_task(DataConfig(task="arithmetic", prompt_template="chat", user_template="Tags, please."))
    with pytest.raises(UserError, match="plain-text template that has no user message"):
        get_task(DataConfig(task="arithmetic", prompt_template="r1_zero", user_template="Q: {question}"))


def test_bad_options_are_one_paragraph():
    with pytest.raises(UserError, match="min_steps .* is larger than max_steps"):
        task(min_steps=3, max_steps=1)
    with pytest.raises(UserError, match="operations need"):
        task(operations=["*"])
    with pytest.raises(UserError, match="only about"):
        task(max_number=2, min_steps=1, max_steps=1, operations=["+"], test_size=1000).rows("test")  # 576 exist
