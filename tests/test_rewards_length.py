"""Length and repetition rewards, and the length penalty every reward takes."""

import math

import pytest

from rewards import RewardConfigError, get_reward
from rewards.length import REPETITION_MAX_WORDS


def answer_of_length(answer, length):
    """A completion of exactly `length` characters whose extracted answer is `answer`."""
    text = f"<answer>{answer}</answer>"
    return text + " " * (length - len(text))


# --- cosine_scaled_reward ---


@pytest.mark.parametrize(
    ("answer", "length", "expected"),
    [
        ("8", 500, 0.75),  # correct, half of max_len: c = cos(pi/2) = 0 -> 0.5 + 0.5 x 0.5 x 1
        ("8", 1000, 0.5),  # correct at max_len: c = -1 -> min_value_correct
        ("9", 500, -0.75),  # wrong, half: lo=-0.5, hi=-1.0 -> -0.5 + 0.5 x (-0.5) x 1
        ("9", 1000, -0.5),  # wrong at max_len: max_value_wrong
        ("8", 2000, 0.5),  # capped at max_len: no climb back up past it
    ],
)
def test_cosine_scaled_reward_hand_computed_values(answer, length, expected):
    text = answer_of_length(answer, length)
    assert get_reward("cosine_scaled_reward")(completions=[text], answer=["8"])[0] == pytest.approx(expected)


def test_cosine_scaled_reward_short_correct_earns_near_the_max_and_short_wrong_loses_the_most():
    short_right, short_wrong = "<answer>8</answer>", "<answer>9</answer>"
    c = math.cos(math.pi * len(short_right) / 1000)
    scores = get_reward("cosine_scaled_reward")(completions=[short_right, short_wrong], answer=["8", "8"])
    assert scores[0] == pytest.approx(0.5 + 0.5 * 0.5 * (1 + c))
    assert scores[1] == pytest.approx(-0.5 + 0.5 * (-0.5) * (1 + c))


def test_cosine_scaled_reward_math_checker_decides_with_math_verify():
    reward = get_reward("cosine_scaled_reward", checker="math", max_len=100)
    text = answer_of_length(r"\frac{1}{2}", 50)
    assert reward(completions=[text], answer=["0.5"])[0] == pytest.approx(0.75)


def test_cosine_scaled_reward_rejects_a_non_positive_max_len():
    with pytest.raises(RewardConfigError, match="max_len"):
        get_reward("cosine_scaled_reward", max_len=0)


# --- len_reward ---


def test_len_reward_kimi_lambda_within_each_prompt_group():
    texts = [answer_of_length(a, n) for a, n in [("8", 100), ("8", 200), ("9", 150), ("9", 300)]]
    # Group "a": lengths 100, 200 (both correct): lambda 0.5, -0.5.
    # Group "b": lengths 150, 300 (both wrong): lambda 0.5 -> min(0, 0.5) = 0, -0.5.
    scores = get_reward("len_reward")(prompts=["a", "a", "b", "b"], completions=texts, answer=["8"] * 4)
    assert scores == [0.5, -0.5, 0.0, -0.5]


def test_len_reward_defaults_give_open_r1s_unparseable_solution_case():
    # open-r1 tests/test_rewards.py TestLenReward.test_unparseable_solution: a gold math-verify cannot parse counts
    # as correct, so the shorter completion gets the full 0.5 and the longer -0.5 (the "answer" checker: [0.0, -0.5]).
    completions = [r"\boxed{answer}", r"\boxed{answer} " + "x" * 10]
    assert get_reward("len_reward")(completions=completions, answer=["unparseable_latex"] * 2) == [0.5, -0.5]
    answer_checker = get_reward("len_reward", checker="answer")
    assert answer_checker(completions=completions, answer=["unparseable_latex"] * 2) == [0.0, -0.5]


def test_len_reward_defaults_decide_correctness_with_math_verify():
    # 1/2 and 0.5 are the same number to math-verify; the shorter is correct, the longer wrong.
    texts = [answer_of_length(r"\frac{1}{2}", 40), answer_of_length("3", 60)]
    assert get_reward("len_reward")(completions=texts, answer=["0.5", "0.5"]) == [0.5, -0.5]


def test_len_reward_batch_scope_compares_the_whole_call():
    texts = [answer_of_length("8", 100), answer_of_length("8", 200), answer_of_length("8", 300)]
    scores = get_reward("len_reward", scope="batch")(prompts=["a", "a", "b"], completions=texts, answer=["8"] * 3)
    assert scores == [0.5, 0.0, -0.5]


def test_len_reward_without_prompts_is_one_group():
    texts = [answer_of_length("8", 100), answer_of_length("9", 200)]
    assert get_reward("len_reward")(completions=texts, answer=["8", "8"]) == [0.5, -0.5]


def test_len_reward_is_zero_when_all_lengths_are_equal():
    texts = [answer_of_length("8", 100), answer_of_length("9", 100)]
    assert get_reward("len_reward")(prompts=["a", "a"], completions=texts, answer=["8", "8"]) == [0.0, 0.0]


def test_len_reward_groups_chat_prompts():
    chat_a, chat_b = [{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]
    texts = [answer_of_length("8", 100), answer_of_length("8", 300), answer_of_length("8", 200)]
    scores = get_reward("len_reward")(prompts=[chat_a, chat_a, chat_b], completions=texts, answer=["8"] * 3)
    assert scores == [0.5, -0.5, 0.0]


# --- repetition_penalty_reward ---


def test_repetition_penalty_reward_hand_computed():
    # 6 words -> 4 trigrams: (a b c), (b c a), (c a b), (a b c): 3 unique of 4 -> (1 - 3/4) x -1.
    assert get_reward("repetition_penalty_reward")(completions=["A b c a B c"]) == [-0.25]


def test_repetition_penalty_reward_is_zero_below_ngram_size_and_without_repeats():
    assert get_reward("repetition_penalty_reward")(completions=["a b", "", "a b c d"]) == [0.0, 0.0, 0.0]


def test_repetition_penalty_reward_scales_with_max_penalty_and_ngram_size():
    reward = get_reward("repetition_penalty_reward", ngram_size=1, max_penalty=-0.5)
    assert reward(completions=["a a a a"]) == [pytest.approx((1 - 1 / 4) * -0.5)]


def test_repetition_penalty_reward_positive_max_penalty_is_a_config_error():
    with pytest.raises(RewardConfigError, match="max_penalty"):
        get_reward("repetition_penalty_reward", max_penalty=0.5)


def test_repetition_penalty_reward_reads_only_the_first_bounded_words():
    distinct = " ".join(f"w{i}" for i in range(REPETITION_MAX_WORDS))
    assert get_reward("repetition_penalty_reward")(completions=[distinct + " a b c" * 1000]) == [0.0]


# --- soft_overlong_punishment (token lengths) ---


@pytest.mark.parametrize(("tokens", "expected"), [(80, 0.0), (90, -0.5), (100, -1.0), (101, -1.0), (0, 0.0)])
def test_soft_overlong_punishment_on_token_counts(tokens, expected):
    reward = get_reward("soft_overlong_punishment", max_completion_len=100, soft_punish_cache=20)
    assert reward(completions=["x"], completion_ids=[[7] * tokens]) == [pytest.approx(expected)]


def test_soft_overlong_punishment_estimates_tokens_from_characters_without_ids():
    reward = get_reward("soft_overlong_punishment", max_completion_len=100, soft_punish_cache=20)
    assert reward(completions=["x" * 360]) == [pytest.approx(-0.5)]  # 360 chars / 4 = 90 tokens


@pytest.mark.parametrize(("tokens", "expected"), [(0, 0.0), (100, 0.0), (101, -1.0)])
def test_soft_overlong_punishment_with_no_cache_is_a_hard_cutoff(tokens, expected):
    reward = get_reward("soft_overlong_punishment", max_completion_len=100, soft_punish_cache=0)
    assert reward(completions=["x"], completion_ids=[[7] * tokens]) == [expected]


def test_soft_overlong_punishment_needs_both_params():
    with pytest.raises(RewardConfigError, match="soft_punish_cache"):
        get_reward("soft_overlong_punishment", max_completion_len=100)
    for cache in (200, -1):
        with pytest.raises(RewardConfigError, match="0 <= soft_punish_cache <= max_completion_len"):
            get_reward("soft_overlong_punishment", max_completion_len=100, soft_punish_cache=cache)


# --- the length penalty any reward takes ---


@pytest.mark.parametrize(("tokens", "expected"), [(50, 0.5), (100, 0.5), (200, 0.5 * 0.9), (400, 0.5 * 0.85)])
def test_length_penalty_multiplies_by_0_8_plus_0_2_times_n_over_tokens(tokens, expected):
    reward = get_reward("mark_reward", length_penalty_tokens=100)
    text = "<think></think><answer></answer>"
    assert reward(completions=[text], completion_ids=[[1] * tokens]) == [pytest.approx(expected)]


def test_length_penalty_widens_the_declared_range_downwards():
    assert get_reward("mark_reward", length_penalty_tokens=100).value_range == (0.0, 0.5)
    assert get_reward("repetition_penalty_reward", length_penalty_tokens=100).value_range == (-1.0, 0.0)
    reward = get_reward("correctness_reward", length_penalty_tokens=10)
    assert reward(completions=["<answer>8</answer>"], answer=["8"], completion_ids=[[1] * 20]) == [pytest.approx(0.9)]


@pytest.mark.parametrize("bad", [0, -5, 1.5, "100", True])
def test_length_penalty_must_be_a_positive_whole_number(bad):
    with pytest.raises(RewardConfigError, match="length_penalty_tokens"):
        get_reward("mark_reward", length_penalty_tokens=bad)
