"""Every built-in reward says why it gave its score (RewardFunction.explain), and training never asks it to."""

import pytest

from rewards import REWARDS, get_reward
from rewards.core import Reward
from rewards.registry import RewardFunction

# Parameters for the factories that need some.
PARAMS = {"soft_overlong_punishment": {"max_completion_len": 10, "soft_punish_cache": 4}}


def reasons(name, completions, **columns):
    reward = get_reward(name, **PARAMS.get(name, {}))
    return reward(completions=completions, **columns), reward.explain(completions=completions, **columns)


def countdown(name, *completions):
    n = len(completions)
    return reasons(name, list(completions), target=[24] * n, numbers=[[3, 5, 8]] * n)


def test_every_built_in_reward_explains_itself():
    assert [name for name in REWARDS if not get_reward(name, **PARAMS.get(name, {})).explains] == []


def test_countdown_names_the_misused_numbers_and_the_value():
    scores, why = countdown(
        "countdown_reward",
        "<answer>(8 - 5) * 8</answer>",
        "<answer>3 * 5 + 8</answer>",
        "<answer>3 * 8 - 5</answer>",
        "<answer>(8 - 5) * 7</answer>",
        "<answer>8 * (5 - 3)</answer>",
        "<answer>8 * 3 * (5 - 5)</answer>",
        "<answer>3 * 8 / (5 - 5)</answer>",
        "<answer>-3 + 5 * 8</answer>",
        "<answer>the answer</answer>",
        "no tags at all",
        "<answer>(8 - 5 + 5) * 3</answer>",
    )
    assert scores == [0.1, 0.7, 0.5, 0.1, 0.5, 0.1, 0.1, 0.1, 0.1, 0.0, 0.1]
    assert why == [
        "8 used twice; 3 not used (numbers 3, 5, 8); evaluates to 24, target 24",
        "evaluates to 23, target 24 (within 10%)",
        "evaluates to 19, target 24 (within 50%)",
        "7 is not one of the numbers; 3 not used (numbers 3, 5, 8); evaluates to 21, target 24",
        "evaluates to 16, target 24 (within 50%)",
        "5 used twice (numbers 3, 5, 8); evaluates to 0, target 24",
        "5 used twice (numbers 3, 5, 8); division by zero",
        "a sign before a number (-3): only + - * / between numbers",
        "not an equation of numbers and + - * / ( )",
        "no <answer> block",
        "5 used twice (numbers 3, 5, 8); evaluates to 24, target 24",
    ]


def test_countdown_says_correct_and_shows_fractions():
    scores, why = countdown("countdown_reward", "<answer>(5 + 3) * 3</answer>", "<answer>8 / 3 + 5</answer>")
    assert scores == [0.1, 0.3]
    assert why == [
        "3 used twice; 8 not used (numbers 3, 5, 8); evaluates to 24, target 24",
        "evaluates to 23/3, target 24",
    ]
    reward = get_reward("countdown_reward")
    assert reward.explain(completions=["<answer>3 * 8 * (5 / 5)</answer>"], target=[24], numbers=[[3, 5, 5, 8]]) == [
        "correct: 24"
    ]
    assert reward(completions=["<answer>2 / (4 - 4)</answer>"], target=[24], numbers=[[2, 4, 4]]) == [0.3]
    assert reward.explain(completions=["<answer>2 / (4 - 4)</answer>"], target=[24], numbers=[[2, 4, 4]]) == [
        "division by zero"
    ]
    assert reward.explain(completions=["<answer>5 / 2</answer>"], target=[24], numbers=[[5, 2]]) == [
        "evaluates to 2.5, target 24"
    ]
    assert reward.explain(completions=["<answer>5 * 5</answer>"], target=[24], numbers=[[5, 5, 5]]) == [
        "5 not used (numbers 5, 5, 5); evaluates to 25, target 24"
    ]
    assert reward.explain(completions=["<answer>5 * 5 * 5</answer>"], target=[24], numbers=[[5, 5]]) == [
        "5 used 3 times (given 2) (numbers 5, 5); evaluates to 125, target 24"
    ]


def test_countdown_binary_reads_the_last_line():
    scores, why = countdown(
        "countdown_binary_reward", "<answer>3 * 8 * (5 / 5)</answer>", "<answer>(8 - 3) * 5</answer>\nmore"
    )
    assert scores == [0.1, 0.0]
    assert why == [
        "5 used twice (numbers 3, 5, 8); evaluates to 24, target 24",
        "no <answer>...</answer> on the last line",
    ]


@pytest.mark.parametrize(
    ("name", "completion", "score", "reason"),
    [
        ("hard_format_reward", "<think>a</think><answer>1</answer>", 0.5, "think and answer blocks"),
        ("hard_format_reward", "<answer>1</answer>", 0.25, "answer block, no <think>...</think> block"),
        ("hard_format_reward", "1", 0.0, "no <answer>...</answer> block"),
        ("mark_reward", "<think>a<answer>1</answer>", 0.375, "missing </think>"),
        ("mark_reward", "<think>a</think><answer>1</answer>", 0.5, "all 4 tags"),
        ("strict_hard_format_reward", "<think>\na\n</think>\n<answer>\n1\n</answer>\n", 0.5, "exact layout"),
        ("strict_hard_format_reward", "<think>a</think>", 0.0, 'does not start with "<think>\\n"'),
        (
            "strict_hard_format_reward",
            "<think>\na\n</think>\n<answer>\n1\n</answer>",
            0.0,
            'does not end with "\\n</answer>\\n"',
        ),
        ("strict_hard_format_reward", "<think>\na\n</answer>\n", 0.0, 'no "\\n</think>\\n<answer>\\n" in between'),
        ("strict_mark_reward", "<think>\na\n</think>\n<answer>\n1\n</answer>\n", 0.5, "all 4 tags exactly once"),
        (
            "strict_mark_reward",
            "<think>\n<think>\na\n</think>\n",
            0.125,
            'missing "\\n<answer>\\n", "\\n</answer>\\n"; "<think>\\n" 2 times',
        ),
        ("xmlcount_reward", "<reasoning>\na\n</reasoning>\n<answer>\n1\n</answer>\n", 0.5, "all 4 tags exactly once"),
        (
            "xmlcount_reward",
            "<reasoning>\na\n</reasoning>\n<answer>\n1\n</answer>\nabcdefghij",
            0.48,
            "all 4 tags exactly once; -0.020 for text after </answer>",
        ),
        (
            "strict_format_reward",
            "<think>\na\n</think>\n<answer>\n1\n</answer>\n",
            0.0,
            'does not start with "<reasoning>\\n"',
        ),
        ("soft_format_reward", "\n<reasoning>a</reasoning><answer>1</answer>", 0.0, "does not start with <reasoning>"),
        (
            "soft_format_reward",
            "<reasoning>a</reasoning><answer>1</answer>",
            0.5,
            "<reasoning>...</reasoning> <answer>...</answer> at the start",
        ),
        (
            "soft_format_reward",
            "<reasoning>\na\n</reasoning>\n<answer>\n1\n</answer>",
            0.0,
            "no </reasoning> <answer>...</answer> on the lines it opens (the demo's regex has no DOTALL)",
        ),
        ("soft_format_anywhere_reward", "<answer>1</answer>", 0.0, "no <reasoning>"),
        (
            "soft_format_anywhere_reward",
            "<reasoning>a</reasoning> b <answer>1</answer>",
            0.0,
            "no </reasoning> followed by <answer> after <reasoning>",
        ),
        ("soft_format_anywhere_reward", "<reasoning>a</reasoning> <answer>1", 0.0, "no </answer> after <answer>"),
        (
            "soft_format_anywhere_reward",
            "x <reasoning>a</reasoning>\n<answer>1</answer>",
            0.5,
            "<reasoning>...</reasoning> <answer>...</answer>",
        ),
        ("format_reward", "<think>\na\n</think>\n<answer>\n1\n</answer>", 1.0, "exact layout"),
        ("format_reward", "<think>\na\n</think>\n<answer>\n1\n</answer>\n", 0.0, 'does not end with "\\n</answer>"'),
        ("tag_count_reward", "<think>\na\n</think>\n<answer>\n1\n</answer>\n</answer>", 0.75, '"\\n</answer>" 2 times'),
        (
            "reasoning_steps_reward",
            "Step 1: a\nStep 2: b",
            2 / 3,
            '2 step markers: "Step 1:", "Step 2:" (3 earn full credit)',
        ),
        (
            "reasoning_steps_reward",
            "First, a. Next, b. Finally, c. Step 4: d",
            1.0,
            '3 step markers: "First,", "Next,", "Finally,"',
        ),
        (
            "reasoning_steps_reward",
            "just text",
            0.0,
            "no step markers (Step 1:, a leading 1., - or * lists, First, Next, Finally)",
        ),
        ("repetition_penalty_reward", "a b c a b c", -0.25, "1 of 4 3-grams repeat"),
        ("repetition_penalty_reward", "a b", 0.0, "fewer than 3 words"),
        ("soft_overlong_punishment", "x" * 20, 0.0, "5 tokens, within 6"),
        ("soft_overlong_punishment", "x" * 32, -0.5, "8 tokens, 2 past 6 (max 10)"),
        ("soft_overlong_punishment", "x" * 60, -1.0, "15 tokens, over max 10"),
    ],
)
def test_text_rewards_say_why(name, completion, score, reason):
    scores, why = reasons(name, [completion])
    assert scores == [pytest.approx(score)]
    assert why == [reason]


@pytest.mark.parametrize(
    ("name", "completion", "answer", "score", "reason"),
    [
        ("correctness_reward", "<answer>18</answer>", "18.0", 1.0, "parsed 18, gold 18.0"),
        ("correctness_reward", "<answer>17</answer>", "18", 0.0, "parsed 17, gold 18: different"),
        ("correctness_reward", "\\boxed{x^2}", "18", 0.0, "parsed x^2, gold 18: different"),
        ("correctness_reward", "it is 18", "18", 0.0, "no answer: no <answer> block or \\boxed{}"),
        ("int_reward", "<answer>-3</answer>", "1", 0.5, "-3 is a whole number"),
        ("int_reward", "<answer>1,000</answer>", "1", 0.0, "1,000 is not a whole number in digits"),
        ("int_reward", "none", "1", 0.0, "no answer: no <answer> block or \\boxed{}"),
        (
            "math_accuracy_reward",
            "<answer>\\frac{1}{2}</answer>",
            "0.5",
            1.0,
            "parsed \\frac{1}{2}, gold 0.5 (math-verify)",
        ),
        ("math_accuracy_reward", "<answer>3</answer>", "\\frac{", None, "math-verify cannot parse the gold \\frac{"),
        (
            "cosine_scaled_reward",
            "<answer>18</answer>",
            "18",
            pytest.approx(0.99955, abs=1e-5),
            "correct; 19 characters of max_len 1000",
        ),
        (
            "cosine_scaled_reward",
            "<answer>7</answer>",
            "18",
            pytest.approx(-0.99960, abs=1e-5),
            "wrong (parsed 7, gold 18: different); 18 characters of max_len 1000",
        ),
    ],
)
def test_answer_rewards_say_what_they_parsed(name, completion, answer, score, reason):
    scores, why = reasons(name, [completion], answer=[answer])
    assert scores == [score]
    assert why == [reason]


def test_correctness_with_the_last_number_fallback_says_so():
    reward = get_reward("correctness_reward", fallback="last_number")
    assert reward.explain(completions=["it is 18", "no digits"], answer=["18", "18"]) == [
        "parsed 18, gold 18",
        "no answer: no <answer> block or \\boxed{}, no number",
    ]


def test_len_reward_names_the_group_lengths():
    reward = get_reward("len_reward")
    completions = ["<answer>18</answer>", "<answer>18</answer> padding", "<answer>5</answer>"]
    scores = reward(prompts=["p", "p", "q"], completions=completions, answer=["18", "18", "18"])
    why = reward.explain(prompts=["p", "p", "q"], completions=completions, answer=["18", "18", "18"])
    assert scores == [0.5, -0.5, 0.0]
    assert why == [
        "correct; 19 characters, group lengths 19..27",
        "correct; 27 characters, group lengths 19..27",
        "wrong (parsed 5, gold 18: different); 18 characters, alone in its group",
    ]


def test_rows_without_gold_and_golds_it_cannot_score_are_named():
    reward = get_reward("countdown_reward")
    why = reward.explain(
        completions=["<answer>3*8</answer>"] * 3, target=[24, None, float("nan")], numbers=[[3, 8], [3, 8], [3, 8]]
    )
    assert why == ["correct: 24", "not applicable: no gold target", "not applicable: target nan is not a whole number"]
    assert reward.invalid_gold_count == 0  # explaining counts nothing: only scoring does


def test_the_length_penalty_shows_its_factor():
    reward = get_reward("hard_format_reward", length_penalty_tokens=5)
    completions = ["<answer>1</answer>", "<answer>1</answer>" + "x" * 22]
    assert reward(completions=completions) == [0.25, pytest.approx(0.25 * (0.8 + 0.2 * 5 / 10))]
    assert reward.explain(completions=completions) == [
        "answer block, no <think>...</think> block",
        "answer block, no <think>...</think> block; x0.90 length penalty (10 tokens > 5)",
    ]


def test_scoring_never_calls_explain():
    def refuse(batch):
        raise AssertionError("explain was called while scoring")

    reward = RewardFunction("plain", Reward(lambda batch: [1.0] * len(batch), (0.0, 1.0), explain=refuse))
    assert reward(completions=["a", "b"]) == [1.0, 1.0]


def test_a_reward_without_reasons_says_so():
    reward = RewardFunction("plain", Reward(lambda batch: [1.0] * len(batch), (0.0, 1.0)))
    assert not reward.explains
    with pytest.raises(ValueError, match="gives no reasons"):
        reward.explain(completions=["a"])


def test_a_user_reward_gives_reasons_through_its_explain_attribute(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "def digits(completions, **kwargs):\n"
        "    return [float(any(c.isdigit() for c in text)) for text in completions]\n"
        "def why_digits(completions, **kwargs):\n"
        "    return ['has a digit' if any(c.isdigit() for c in t) else 'no digit' for t in completions]\n"
        "digits.explain = why_digits\n"
        "def plain(completions, **kwargs):\n"
        "    return [0.0 for _ in completions]\n"
    )
    reward = get_reward("digits", path=f"{path}:digits")
    assert reward(completions=["a1", "b"]) == [1.0, 0.0]
    assert reward.explain(completions=["a1", "b"]) == ["has a digit", "no digit"]
    assert not get_reward("plain", path=f"{path}:plain").explains


def test_a_user_explain_that_returns_the_wrong_length_is_named(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "def one(completions, **kwargs):\n    return [1.0 for _ in completions]\n"
        "one.explain = lambda completions, **kwargs: ['why']\n"
    )
    with pytest.raises(Exception, match="one reason \\(a string\\) per completion, 2 in all"):
        get_reward("one", path=f"{path}:one").explain(completions=["a", "b"])


def test_countdown_reasons_agree_with_the_scores_on_random_equations():
    import random

    rng = random.Random(0)
    completions, targets, numbers = [], [], []
    for _ in range(500):
        given = [rng.randint(1, 9) for _ in range(rng.randint(2, 4))]
        used = rng.sample(given, len(given)) if rng.random() < 0.7 else [rng.randint(0, 9) for _ in given]
        equation = str(used[0])
        for n in used[1:]:
            equation = f"({equation} {rng.choice('+-*/')} {n})"
        completions.append(f"<answer>{equation}</answer>")
        targets.append(rng.randint(1, 30))
        numbers.append(given)
    reward = get_reward("countdown_reward")
    scores = reward(completions=completions, target=targets, numbers=numbers)
    why = reward.explain(completions=completions, target=targets, numbers=numbers)
    misused = ("used twice", "used 3 times", "used 4 times", "is not one of the numbers", "not used")
    for score, reason in zip(scores, why, strict=True):
        assert (score == 1.0) == reason.startswith("correct"), reason
        assert (score == 0.7) == reason.endswith("(within 10%)"), reason
        assert (score == 0.5) == reason.endswith("(within 50%)"), reason
        assert (score == 0.1) == any(word in reason for word in misused), reason
    assert {0.1, 0.3, 0.5, 0.7, 1.0} <= set(scores)


def test_a_user_explain_attribute_that_is_not_a_function_is_named(tmp_path):
    from rewards import RewardConfigError

    path = tmp_path / "mine.py"
    path.write_text("def one(completions, **kwargs):\n    return [1.0 for _ in completions]\n\none.explain = 'why'\n")
    with pytest.raises(RewardConfigError, match="its `explain` attribute must be a function .* got str"):
        get_reward("one", path=f"{path}:one")
