"""No reward raises or leaves its declared range on any completion, however hostile."""

import os
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import REWARDS, answers_match, check_countdown, extract_answer, get_reward
from rewards.answers import MAX_ANSWER_CHARS

MB = 1_000_000
REQUIRED_PARAMS = {"soft_overlong_punishment": {"max_completion_len": 100, "soft_punish_cache": 20}}
PWNED = "/tmp/pwned"
HOSTILE = {
    "none": None,
    "empty": "",
    "unicode": "ünïcødé 🤖 \u202e <answer>١٢</answer> \x00",
    "1 MB of a": "a" * MB,
    "1 MB of digits": "1" * MB,
    "1 MB of numbers": "1, " * (MB // 3),
    "1 MB of braces": "{" * MB,
    "1 MB of boxed": "\\boxed{" * (MB // 7),
    "1 MB of newlines": "\n" * MB,
    "1 MB of think tags": "<think>\n\n</think>\n<answer>\n" * (MB // 26),
    "1 MB of reasoning tags": "<reasoning> </reasoning> <answer>" * (MB // 33),
    "1 MB answer block": "<answer>" + "1" * MB + "</answer>",
    "10,000 nested parentheses": "<answer>" + "(" * 10_000 + "1" + ")" * 10_000 + "</answer>",
    "shell injection": "<answer>__import__('os').system('touch /tmp/pwned')</answer>",
    "power tower": "<answer>9**9**9**9</answer>",
    "latex power tower": "<answer>9^{9^{9^{9}}}</answer>",
    "chat list": [{"role": "assistant", "content": "<answer>18</answer>"}],
    "not a completion": 12345,
}


def build(name):
    return get_reward(name, **REQUIRED_PARAMS.get(name, {}))


def gold(count):
    return {
        "answer": ["18"] * count,
        "target": [24] * count,
        "numbers": [[3, 5, 8]] * count,
        "question": ["Ava has 9 coins. She gets 9 more."] * count,
    }


def assert_in_range(reward, scores, count):
    low, high = reward.value_range
    assert len(scores) == count
    for score in scores:
        assert score is None or (isinstance(score, float) and low <= score <= high), score


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_every_reward_scores_hostile_completions_in_range_without_raising(name):
    # Time per completion is measured, not asserted, by benchmarks/reward_fuzz.py.
    reward = build(name)
    completions = list(HOSTILE.values())
    scores = reward(prompts=["p"] * len(completions), completions=completions, **gold(len(completions)))
    assert_in_range(reward, scores, len(completions))
    assert not os.path.exists(PWNED)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=300), min_size=1, max_size=4))
def test_every_reward_stays_in_range_on_arbitrary_text(texts):
    for name in REWARDS:
        if name == "math_accuracy_reward":
            continue  # sympy on random text is slow; covered by the hostile matrix and the test below
        reward = build(name)
        assert_in_range(reward, reward(prompts=["p"] * len(texts), completions=texts, **gold(len(texts))), len(texts))


@settings(max_examples=15, deadline=None)
@given(st.text(alphabet="0123456789+-*/^(){}\\frac.x =", max_size=40))
def test_math_accuracy_reward_stays_in_range_on_arbitrary_latex(text):
    reward = build("math_accuracy_reward")
    assert_in_range(reward, reward(completions=[f"<answer>{text}</answer>"], answer=["18"]), 1)


# --- answers ---


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_extract_answer_returns_the_final_block_content(text):
    assert extract_answer(text) is None or isinstance(extract_answer(text), str)
    if "<answer>" not in text and "</answer>" not in text:
        assert extract_answer(f"{text}<answer>{text}</answer>") == text.strip()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=MAX_ANSWER_CHARS // 2))
def test_answers_match_is_reflexive(text):
    assert answers_match(text, text)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_answers_match_reads_thousands_separators_currency_and_sign(n):
    assert answers_match(f"{n:,}", str(n))
    assert answers_match(f"{n}.0", str(n))
    assert answers_match(f"x = {n}", str(n))
    assert answers_match(str(-n), str(n)) == (n == 0)


# --- Countdown equations: arbitrary trees evaluated by an oracle that never parses text ---

OPERATIONS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def trees():
    leaves = st.integers(min_value=0, max_value=999)
    return st.recursive(leaves, lambda inner: st.tuples(inner, st.sampled_from("+-*/"), inner), max_leaves=8)


def render(tree):
    if isinstance(tree, int):
        return str(tree)
    left, op, right = tree
    return f"({render(left)} {op} {render(right)})"


def value(tree):
    if isinstance(tree, int):
        return Fraction(tree)
    left, op, right = value(tree[0]), tree[1], value(tree[2])
    if left is None or right is None:
        return None
    if op == "/":
        return None if right == 0 else left / right
    return OPERATIONS[op](left, right)


def leaves(tree):
    return [tree] if isinstance(tree, int) else leaves(tree[0]) + leaves(tree[2])


@settings(max_examples=300, deadline=None)
@given(trees())
def test_check_countdown_evaluates_any_equation_exactly(tree):
    equation = render(tree)
    check = check_countdown(equation, leaves(tree), target=0)
    if len(equation) > 300:
        assert not check.numbers_valid
        return
    assert check.numbers_valid
    assert check.value == value(tree)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789+-*/() .=x_e\n", max_size=60), st.lists(st.integers(0, 99), max_size=5))
def test_check_countdown_never_raises_on_arbitrary_equations(equation, numbers):
    check = check_countdown(equation, numbers, target=24)
    assert check.value is None or isinstance(check.value, Fraction)
    assert not check.correct or check.numbers_valid
