"""Accuracy rewards: correctness, math-verify accuracy and the whole-number shape reward."""

import pytest

from rewards import get_reward


def score(name, texts, answers, **params):
    return get_reward(name, **params)(completions=texts, answer=answers)


def test_correctness_reward_pays_value_for_an_equal_answer():
    texts = ["<answer>1,000</answer>", "<answer>999</answer>", r"so \boxed{1000}", "it is 1000"]
    assert score("correctness_reward", texts, ["1000"] * 4) == [1.0, 0.0, 1.0, 0.0]


def test_correctness_reward_value_two_is_the_gsm8k_demo_weighting():
    assert score("correctness_reward", ["<answer>18</answer>"], ["18"], value=2.0) == [2.0]


def test_correctness_reward_gives_nothing_for_an_expression_around_the_gold_number():
    texts = ["<answer>2\u00b2</answer>", "<answer>x^2</answer>", "<answer>--5</answer>", "<answer>$18</answer>"]
    assert score("correctness_reward", texts, ["2", "2", "-5", "18"]) == [0.0, 0.0, 0.0, 1.0]


def test_correctness_reward_last_number_fallback_reads_bare_answers():
    assert score("correctness_reward", ["so it costs $18."], ["18"], fallback="last_number") == [1.0]


def test_correctness_reward_is_not_applicable_without_gold():
    assert score("correctness_reward", ["<answer>18</answer>", "<answer>18</answer>"], [None, "18"]) == [None, 1.0]


def test_math_accuracy_reward_uses_math_verify_equivalence():
    texts = [r"<answer>\frac{1}{2}</answer>", "<answer>0.5</answer>", "<answer>2</answer>", "no answer"]
    assert score("math_accuracy_reward", texts, [r"\dfrac12"] * 4) == [1.0, 1.0, 0.0, 0.0]


def test_math_accuracy_reward_is_none_when_the_gold_cannot_be_parsed():
    assert score("math_accuracy_reward", ["<answer>1</answer>"], ["\\"]) == [None]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("18", 0.5), ("-3", 0.5), ("18.5", 0.0), ("1,000", 0.0), ("x", 0.0), ("\u00b2", 0.0), ("", 0.0)],
)
def test_int_reward_gives_half_for_a_whole_number_in_digits(answer, expected):
    assert get_reward("int_reward")(completions=[f"<answer>{answer}</answer>"]) == [expected]


def test_int_reward_without_an_answer_is_zero():
    assert get_reward("int_reward")(completions=["18"]) == [0.0]
