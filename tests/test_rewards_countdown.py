"""Countdown equations: parsed with ast, evaluated exactly, never eval()'d."""

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards import CountdownCheck, check_countdown, get_reward
from rewards.countdown import MAX_EQUATION_CHARS, last_line_answer


def test_check_countdown_accepts_a_correct_equation():
    assert check_countdown("(8 - 5) * 3", [3, 5, 8], 9) == CountdownCheck(True, Fraction(9), True)


def test_check_countdown_strips_a_trailing_equals_result():
    assert check_countdown("3*5+2 = 17", [2, 3, 5], 17).correct
    # The claimed result is not checked: the equation is.
    assert check_countdown("3*5+2 = 99", [2, 3, 5], 17).correct


def test_check_countdown_evaluates_division_exactly():
    check = check_countdown("(1 + 2) / 3 / 7", [1, 2, 3, 7], 0)
    assert check.value == Fraction(1, 7)
    assert check.numbers_valid and not check.correct


def test_check_countdown_numbers_are_a_multiset():
    assert not check_countdown("5 + 5", [5], 10).numbers_valid
    assert not check_countdown("5", [5, 5], 5).numbers_valid
    assert check_countdown("5 + 5", [5, 5], 10).correct


def test_check_countdown_reports_the_value_even_when_numbers_are_wrong():
    assert check_countdown("4 + 4", [3, 5], 8) == CountdownCheck(False, Fraction(8), False)


def test_check_countdown_division_by_zero_keeps_numbers_valid_without_value():
    assert check_countdown("8 / (5 - 5) + 3", [3, 5, 5, 8], 9) == CountdownCheck(True, None, False)


def test_check_countdown_reads_times_and_divide_signs():
    assert check_countdown("3 \u00d7 6 \u00f7 2", [2, 3, 6], 9).correct


@pytest.mark.parametrize(
    "equation",
    [
        "-3 + 8",  # unary minus: rejected, see the module docstring
        "+3 + 8",
        "8 - -3",
        "3 ** 8",
        "9**9**9**9",
        "8 // 3",
        "8 % 3",
        "3.0 + 8",
        "0x3 + 8",
        "3_0 + 8",
        "abs(3) + 8",
        "__import__('os').system('touch /tmp/pwned')",
        "x + 8",
        "3 8",
        "(3 + 8",
        "",
        "=11",
    ],
)
def test_check_countdown_rejects_anything_but_integers_and_four_operations(equation):
    assert check_countdown(equation, [3, 8], 11) == CountdownCheck(False, None, False)


def test_check_countdown_rejects_an_equation_over_the_length_limit():
    padded = "3 + 8" + " " * (MAX_EQUATION_CHARS - 5)
    assert check_countdown(padded, [3, 8], 11).correct
    assert check_countdown(padded + " ", [3, 8], 11) == CountdownCheck(False, None, False)


def test_check_countdown_survives_deep_nesting():
    assert check_countdown("(" * 149 + "3" + ")" * 149, [3], 3).correct
    assert not check_countdown("(" * 10_000 + "3" + ")" * 10_000, [3], 3).numbers_valid


def test_check_countdown_none_answer_is_invalid():
    assert check_countdown(None, [3], 3) == CountdownCheck(False, None, False)


def test_check_countdown_tolerance_is_one_millionth():
    assert check_countdown("1 / 3", [1, 3], 0.3333333).correct
    assert not check_countdown("1 / 3", [1, 3], 0.333).correct


# --- the two Countdown rewards (target 24 from 3, 5, 8 unless said otherwise) ---


def countdown_score(name, text, target=24, numbers=(3, 5, 8)):
    return get_reward(name)(completions=[text], target=[target], numbers=[list(numbers)])[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>3 * 5 + 8</answer>", 0.7),  # 23: error 1 < 10% of 24
        ("<answer>8 * 5 / 3</answer>", 0.5),  # 40/3: error 10.67 < 50% of 24
        ("<answer>(5 - 3) * 8</answer>", 0.5),  # 16: error 8 < 12
        ("<answer>3 * (8 - 5) = 9</answer>", 0.3),  # 9: error 15 >= 12
        ("<answer>(3 + 5) * 8</answer>", 0.3),  # 64
        ("<answer>(8 - 5) * 8</answer>", 0.1),  # 8 twice, 3 unused
        ("<answer>3 * 8 = 24</answer>", 0.1),  # 5 unused
        ("<answer>__import__('os')</answer>", 0.1),  # not an equation
        ("3 * 5 + 8", 0.0),  # no answer block
        ("<answer>3 * 5 + 8", 0.0),  # unclosed block
    ],
)
def test_countdown_reward_graduates_near_misses(text, expected):
    assert countdown_score("countdown_reward", text) == expected


def test_countdown_reward_full_credit_for_an_exact_equation():
    assert countdown_score("countdown_reward", "<answer>2 * 3 * 4</answer>", numbers=(2, 3, 4)) == 1.0


def test_countdown_reward_division_by_zero_with_valid_numbers_earns_0_3():
    assert countdown_score("countdown_reward", "<answer>8 / (5 - 5) + 3</answer>", numbers=(3, 5, 5, 8)) == 0.3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>2 * 3 * 4</answer>", 1.0),
        ("<answer>2 * 3 + 4</answer>", 0.1),
        ("<answer>9**9**9**9</answer>", 0.1),
        ("2 * 3 * 4", 0.0),
    ],
)
def test_countdown_binary_reward_is_one_correct_tenth_with_block_zero_without(text, expected):
    assert countdown_score("countdown_binary_reward", text, numbers=(2, 3, 4)) == expected


def test_countdown_rewards_read_the_answer_block_not_a_boxed_equation():
    assert countdown_score("countdown_binary_reward", r"\boxed{2 * 3 * 4}", numbers=(2, 3, 4)) == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Let me think.\n<answer>2 * 3 * 4</answer>", 1.0),
        ("<answer>2 * 3 * 4</answer>\n", 0.0),  # TinyZero reads only the last line: here it is empty
        ("<answer>2 * 3 * 4</answer>\nSo that is it.", 0.0),
        ("<answer>\n2 * 3 * 4\n</answer>", 0.0),  # the block spans lines: no match on the last line
        ("<answer>1 + 1</answer> <answer>2 * 3 * 4</answer>", 1.0),  # the last match on the line
    ],
)
def test_countdown_binary_reward_reads_the_answer_on_the_last_line_as_tinyzero(text, expected):
    assert countdown_score("countdown_binary_reward", text, numbers=(2, 3, 4)) == expected


def test_countdown_reward_reads_the_last_answer_block_anywhere():
    assert countdown_score("countdown_reward", "<answer>2 * 3 * 4</answer>\nSo that is it.", numbers=(2, 3, 4)) == 1.0


answer_soup = st.lists(st.sampled_from(["<answer>", "</answer>", "\n", " ", "1", "x"]), max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(answer_soup)
def test_last_line_answer_equals_tinyzeros_regex(text):
    matches = list(re.finditer(r"<answer>(.*?)</answer>", text.split("\n")[-1]))
    assert last_line_answer(text) == (matches[-1].group(1).strip() if matches else None)


def test_last_line_answer_stays_linear_on_a_line_of_unclosed_tags():
    assert last_line_answer("<answer>" * 200_000) is None


@pytest.mark.parametrize("name", ["countdown_reward", "countdown_binary_reward"])
@pytest.mark.parametrize(
    ("target", "numbers"),
    [
        (float("nan"), [3, 8]),
        (float("inf"), [3, 8]),
        (24.5, [3, 8]),
        ("24", [3, 8]),
        (True, [3, 8]),
        (24, [3, float("nan")]),
        (24, [3, 8.5]),
        (24, "3,8"),
    ],
)
def test_countdown_rewards_skip_and_count_a_gold_that_is_not_whole_numbers(name, target, numbers):
    reward = get_reward(name)
    texts = ["<answer>3 * 8</answer>"] * 3
    assert reward(completions=texts, target=[target, 24, 24.0], numbers=[numbers, [3, 8], [3.0, 8]]) == [None, 1.0, 1.0]
    assert reward.invalid_gold_count == 1
    assert "whole number" in reward.invalid_gold_examples[0]


@pytest.mark.parametrize("target", [float("nan"), float("inf"), "24", None])
def test_check_countdown_names_a_target_that_is_not_a_finite_number(target):
    with pytest.raises(ValueError, match="a Countdown target must be a finite number"):
        check_countdown("3 * 8", [3, 8], target)


@pytest.mark.parametrize(("name", "expected"), [("countdown_reward", 0.3), ("countdown_binary_reward", 0.1)])
def test_countdown_rewards_score_a_target_too_large_for_a_float_without_overflow(name, expected):
    assert countdown_score(name, "<answer>3 * 8</answer>", target=10**400, numbers=(3, 8)) == expected
