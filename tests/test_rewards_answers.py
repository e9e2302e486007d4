"""Answer extraction and comparison: the API the tasks module grades with."""

import pytest

from rewards import answers_match, extract_answer, has_answer_block, math_answers_match, parse_gsm8k_gold
from rewards.answers import MAX_ANSWER_CHARS, MAX_BOXED_TRIES


def test_extract_answer_takes_the_last_answer_block_stripped():
    assert extract_answer("<answer> 5 </answer> then <answer>\n7\n</answer>") == "7"


def test_extract_answer_ignores_an_unclosed_final_answer_tag():
    assert extract_answer("<answer>5</answer> <answer>7") == "5"


def test_extract_answer_falls_back_to_the_last_boxed_with_balanced_braces():
    assert extract_answer(r"first \boxed{1} then \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"


def test_extract_answer_skips_a_truncated_last_boxed():
    assert extract_answer(r"\boxed{4} and finally \boxed{\frac{1}{2}") == "4"


def test_extract_answer_prefers_the_answer_block_over_boxed():
    assert extract_answer(r"\boxed{4} <answer>5</answer> \boxed{6}") == "5"


def test_extract_answer_gives_none_without_block_or_boxed_by_default():
    assert extract_answer("the answer is 42") is None


def test_extract_answer_last_number_fallback_keeps_the_number_as_written():
    assert extract_answer("paid $1,234.50 in total.", fallback="last_number") == "1,234.50"
    assert extract_answer("it drops to -3", fallback="last_number") == "-3"
    assert extract_answer("x-3", fallback="last_number") == "3"
    assert extract_answer("no digits here", fallback="last_number") is None


def test_extract_answer_rejects_an_unknown_fallback():
    with pytest.raises(ValueError, match="last_number"):
        extract_answer("42", fallback="first_number")


@pytest.mark.parametrize("text", [None, "", "<answer>", "</answer><answer>"])
def test_extract_answer_gives_none_on_empty_or_malformed_text(text):
    assert extract_answer(text) is None


def test_extract_answer_tries_only_the_last_few_boxed_openings():
    text = r"\boxed{9}" + r" \boxed{" * (MAX_BOXED_TRIES + 1)
    assert extract_answer(text) is None
    assert extract_answer(r"\boxed{9}" + r" \boxed{" * (MAX_BOXED_TRIES - 1)) == "9"


def test_extract_answer_ignores_a_boxed_answer_longer_than_the_bound():
    assert extract_answer(r"\boxed{" + "x" * (MAX_ANSWER_CHARS + 1) + "}") is None
    assert extract_answer(r"\boxed{" + "x" * MAX_ANSWER_CHARS + "}") == "x" * MAX_ANSWER_CHARS


def test_has_answer_block_needs_an_open_tag_before_a_close_tag():
    assert has_answer_block("<answer>5</answer>")
    assert has_answer_block("<answer></answer>")
    assert not has_answer_block("</answer><answer>")
    assert not has_answer_block("<answer>5")
    assert not has_answer_block(None)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("1,000", "1000"),
        ("1000.0", "1000"),
        ("$18", "18"),
        ("18.", "18"),
        ("1/2", "0.5"),
        (r"\frac{1}{2}", "0.5"),
        ("18 dollars", "18"),
        ("x = 18", "18"),
        ("x = -3", "-3"),
        ("\u22123", "-3"),  # the Unicode minus sign
        ("Answer: 18", "18"),
        ("-$18", "-18"),
        ("$8.00", "8"),
        ("18 dollars.", "18"),
        ("50%", "50"),
        (r"\boxed{18}", "18"),
        ("  Paris ", "Paris"),
        ("New   York", "New York"),
    ],
)
def test_answers_match_equal_answers(pred, gold):
    assert answers_match(pred, gold)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("-3", "3"),
        ("18", "19"),
        ("18 or 19", "18"),  # two numbers: compared as text
        ("1,0000", "10000"),  # not a thousands separator: two numbers
        ("paris", "Paris"),
        (None, "18"),
        ("1/0", "0"),
    ],
)
def test_answers_match_different_answers(pred, gold):
    assert not answers_match(pred, gold)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("2\u00b2", "2"),  # 2 squared
        ("x^2", "2"),
        ("--5", "-5"),
        ("-$-5", "5"),
        ("2*3", "3"),
        ("the answer is 18", "18"),  # prose around the number: not the number
    ],
)
def test_answers_match_an_expression_containing_the_gold_number_is_not_that_number(pred, gold):
    assert not answers_match(pred, gold)


def test_answers_match_compares_numbers_exactly_not_as_floats():
    assert not answers_match("0.30000000000000004", "0.3")
    assert answers_match("0.1", "1/10")


def test_answers_match_never_matches_a_prediction_over_the_length_bound():
    long_pred = "18" + " " * MAX_ANSWER_CHARS
    assert not answers_match(long_pred, "18")


def test_answers_match_accepts_a_numeric_gold():
    assert answers_match("18", 18)


def test_parse_gsm8k_gold_takes_the_number_after_the_last_marker_without_commas():
    assert parse_gsm8k_gold("She makes 9 * 2 = $<<9*2=18>>18.\n#### 1,234") == "1234"
    assert parse_gsm8k_gold("#### 5 #### -7 ") == "-7"


def test_parse_gsm8k_gold_rejects_a_field_without_marker():
    with pytest.raises(ValueError, match="####"):
        parse_gsm8k_gold("18")


def test_math_answers_match_equal_latex_forms():
    assert math_answers_match(r"\frac{1}{2}", "0.5") is True
    assert math_answers_match(r"(3, \frac{\pi}{2})", r"\left( 3, \frac{\pi}{2} \right)") is True


def test_math_answers_match_reads_an_escaped_dollar_as_currency_not_a_delimiter():
    # Three MATH-500 golds look like this; taken as a `$` delimiter they did not parse at all.
    assert math_answers_match("18.90", r"\$18.90") is True
    assert math_answers_match("32348", r"\$32,\!348") is True


def test_math_answers_match_different_values():
    assert math_answers_match("3", r"\frac{1}{2}") is False
    assert math_answers_match(None, r"\frac{1}{2}") is False


def test_math_answers_match_is_none_when_the_gold_cannot_be_parsed():
    assert math_answers_match("1", "\\") is None
    assert math_answers_match("1", "x" * (MAX_ANSWER_CHARS + 1)) is None
