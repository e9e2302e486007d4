"""Format rewards: hand-computed values, and the str.find rewrites proven equal to the regexes they replace."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards import RewardConfigError, get_reward
from rewards.formats import REASONING_STEPS_MAX_CHARS, is_sandwich

THINK = "<think>\nI add 3 and 5.\n</think>\n<answer>\n8\n</answer>\n"
REASONING = "<reasoning>\nI add 3 and 5.\n</reasoning>\n<answer>\n8\n</answer>\n"


def score(name, text, **params):
    return get_reward(name, **params)(completions=[text])[0]


# --- the lenient set and its strict originals ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (THINK, 0.5),
        ("<think>hm</think><answer>8</answer>", 0.5),  # newlines optional
        ("<answer>8</answer> <think>late</think>", 0.5),  # any order
        ("<answer>8</answer>", 0.25),
        ("<think>hm</think> 8", 0.0),
        ("<think>hm</think><answer>8", 0.0),  # unclosed answer
        ("", 0.0),
    ],
)
def test_hard_format_reward_gives_half_for_both_blocks_quarter_for_answer_only(text, expected):
    assert score("hard_format_reward", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (THINK, 0.5),
        ("<think></think><answer></answer>", 0.5),
        ("<think><think></think>", 0.25),  # repeats are not punished
        ("<answer>8", 0.125),
        ("8", 0.0),
    ],
)
def test_mark_reward_gives_an_eighth_per_tag_present(text, expected):
    assert score("mark_reward", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (THINK, 0.5),
        ("<think>\n\n</think>\n<answer>\n\n</answer>\n", 0.5),  # empty reasoning and answer
        ("<think>\na\nb\n</think>\n<answer>\n8\n</answer>\n", 0.5),  # DOTALL: multi-line reasoning
        ("<think>\nhm\n</think>\n<answer>\n8\n</answer>", 0.0),  # missing final newline
        ("<think>hm</think><answer>8</answer>", 0.0),
        (" " + THINK, 0.0),
        (THINK + "x", 0.0),
    ],
)
def test_strict_hard_format_reward_needs_the_exact_layout(text, expected):
    assert score("strict_hard_format_reward", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (THINK, 0.5),
        ("<think>\n" + THINK, 0.375),  # `<think>\n` twice: no credit for it
        ("<think>hm</think><answer>8</answer>", 0.0),
        ("<answer>\n8\n</answer>\n", 0.125),  # `\n<answer>\n` needs the newline before it: only `\n</answer>\n`
    ],
)
def test_strict_mark_reward_credits_tags_with_newlines_occurring_exactly_once(text, expected):
    assert score("strict_mark_reward", text) == expected


# --- the GSM8K demo set ---


def test_xmlcount_reward_perfect_completion_scores_half():
    assert score("xmlcount_reward", REASONING) == pytest.approx(0.5)


def test_xmlcount_reward_ten_junk_characters_after_the_final_newline_score_0_48():
    assert score("xmlcount_reward", REASONING + "x" * 10) == pytest.approx(0.48)


def test_xmlcount_reward_without_final_newline_penalizes_the_whole_text_as_split_gives():
    text = REASONING[:-1]  # ends with "\n</answer>": the "\n</answer>\n" separator is absent
    # 0.125 x 2 for the reasoning tags; "\n<answer>\n": 0.125 - 0.001 x len(text); "\n</answer>": 0.125 + 0.001.
    expected = 0.25 + 0.125 - 0.001 * len(text) + 0.125 + 0.001
    assert score("xmlcount_reward", text) == pytest.approx(expected)


def test_xmlcount_reward_goes_below_zero_with_long_trailing_text():
    assert score("xmlcount_reward", REASONING + "x" * 1000) == pytest.approx(0.5 - 2 * 0.001 * 1000)


@pytest.mark.parametrize(
    ("text", "tag", "expected"),
    [
        (REASONING, "reasoning", 0.5),
        (THINK, "reasoning", 0.0),
        (THINK, "think", 0.5),
        (REASONING + "\n", "reasoning", 0.0),  # full match: nothing after the final newline
    ],
)
def test_strict_format_reward_full_match_with_configurable_tag(text, tag, expected):
    assert score("strict_format_reward", text, think_tag=tag) == expected


@pytest.mark.parametrize(
    ("text", "tag", "expected"),
    [
        ("<reasoning>r</reasoning><answer>8</answer>", "reasoning", 0.5),
        ("<reasoning>r</reasoning> \n\t <answer>8</answer> outro", "reasoning", 0.5),  # re.match: text may follow
        ("<think>r</think>\n<answer>8</answer>", "think", 0.5),
        ("\n<reasoning>r</reasoning><answer>8</answer>", "reasoning", 0.0),  # re.match: the tag opens the text
        ("intro <reasoning>r</reasoning><answer>8</answer>", "reasoning", 0.0),
        (REASONING, "reasoning", 0.0),  # no DOTALL: the demo's own multi-line layout never matches
        ("<reasoning>r</reasoning>\n<answer>\n8</answer>", "reasoning", 0.0),  # the answer spans lines
        ("<reasoning>r</reasoning>\n<answer>8</answer>\n<answer>9", "reasoning", 0.5),
        ("<reasoning>r</reasoning> so <answer>8</answer>", "reasoning", 0.0),  # only whitespace in between
        ("<reasoning>r</reasoning><answer>8", "reasoning", 0.0),
    ],
)
def test_soft_format_reward_is_the_demos_re_match_without_dotall(text, tag, expected):
    assert score("soft_format_reward", text, think_tag=tag) == expected


@pytest.mark.parametrize(
    ("text", "tag", "expected"),
    [
        ("<reasoning>r</reasoning><answer>8</answer>", "reasoning", 0.5),
        ("intro <reasoning>r</reasoning> \n\t <answer>8</answer> outro", "reasoning", 0.5),
        (REASONING, "reasoning", 0.5),  # DOTALL: multi-line reasoning and answer
        ("<reasoning>r</reasoning> so <answer>8</answer>", "reasoning", 0.0),  # only whitespace in between
        ("<think>r</think>\n<answer>8</answer>", "think", 0.5),
        ("<reasoning>r</reasoning><answer>8", "reasoning", 0.0),
    ],
)
def test_soft_format_anywhere_reward_finds_the_tags_anywhere_across_lines(text, tag, expected):
    assert score("soft_format_anywhere_reward", text, think_tag=tag) == expected


def test_soft_format_reward_stays_linear_on_a_first_line_of_failing_junctions():
    # Each junction fails for want of `</answer>` on its line: a backtracking regex rescans the line for each.
    text = "<reasoning>" + "</reasoning><answer>" * 50_000
    assert score("soft_format_reward", text) == 0.0


def test_think_tag_must_be_a_tag_name():
    with pytest.raises(RewardConfigError, match="think_tag"):
        get_reward("strict_format_reward", think_tag="<think>")


# --- the open-r1 set ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>\nhm\n</think>\n<answer>\n8\n</answer>", 1.0),
        (THINK, 0.0),  # full match: a trailing newline is text after </answer>
        ("<think>\nhm\n</think>\n<answer>\n8\n</answer>\njunk", 0.0),
        ("<think>hm</think><answer>8</answer>", 0.0),
    ],
)
def test_format_reward_open_r1_full_match(text, expected):
    assert score("format_reward", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (THINK, 1.0),
        ("<think>\nhm\n</think>\n<answer>\n8\n</answer>", 1.0),
        ("<think>\n<think>\nhm\n</think>\n", 0.25),
        ("no tags", 0.0),
    ],
)
def test_tag_count_reward_gives_a_quarter_per_tag_occurring_exactly_once(text, expected):
    assert score("tag_count_reward", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Step 1: add. Step 2: carry.", 2 / 3),
        ("1. add\n2. carry\n3. done\n4. check", 1 / 3),  # no MULTILINE: only the first "1." counts
        ("First, add.\n- carry\n* done", 1.0),
        ("Just 8.", 0.0),
    ],
)
def test_reasoning_steps_reward_is_a_third_per_step_up_to_one(text, expected):
    assert score("reasoning_steps_reward", text) == pytest.approx(expected)


def test_reasoning_steps_reward_counts_numbered_steps_only_at_the_start_of_the_text_as_open_r1_does():
    # open-r1's regex has `^\d+\.` without re.MULTILINE: a numbered list after an intro line earns nothing.
    assert score("reasoning_steps_reward", "Let me see.\n1. add\n2. carry\n3. done") == 0.0
    assert score("reasoning_steps_reward", "1. add\n- carry\n* done") == 1.0


def test_reasoning_steps_reward_reads_only_the_first_bounded_characters():
    padding = "x" * REASONING_STEPS_MAX_CHARS
    assert score("reasoning_steps_reward", padding + "Step 1: Step 2: Step 3:") == 0.0
    assert score("reasoning_steps_reward", "Step 1: Step 2: Step 3:" + padding) == 1.0


# --- the linear-time rewrites equal the regexes they replace ---

# Texts built from the pieces the patterns care about, so that matches and near-misses are both common.
tag_soup = st.lists(
    st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "\n", " ", "x", "<reasoning>", "</reasoning>"]),
    max_size=14,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(tag_soup)
def test_is_sandwich_equals_the_strict_regex_full_match(text):
    head, middle = "<think>\n", "\n</think>\n<answer>\n"
    for pattern, tail in [
        (r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>\n$", "\n</answer>\n"),
        (r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", "\n</answer>"),
    ]:
        regex_says = re.fullmatch(pattern, text, re.DOTALL | re.MULTILINE) is not None
        assert is_sandwich(text, head, middle, tail) == regex_says


@settings(max_examples=600, deadline=None)
@given(st.one_of(tag_soup, tag_soup.map("<reasoning>".__add__)))  # half of them open with the tag, as re.match needs
def test_soft_format_reward_equals_the_demos_regex(text):
    regex_says = re.match(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", text) is not None
    assert score("soft_format_reward", text) == (0.5 if regex_says else 0.0)


@settings(max_examples=400, deadline=None)
@given(tag_soup)
def test_soft_format_anywhere_reward_equals_its_regex(text):
    regex_says = re.search(r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>", text, re.DOTALL) is not None
    assert score("soft_format_anywhere_reward", text) == (0.5 if regex_says else 0.0)


# --- own_answer_reward: layout credit that copying a number from the question cannot earn ---

QUESTION = "Ava has 7 coins. She gets 2 more. How many coins does Ava have now?"


@pytest.mark.parametrize(
    ("text", "expected", "reason"),
    [
        ("7 + 2 = 9 <answer>9</answer>", 0.25, "a number of its own"),
        ("<answer> 10 coins </answer>", 0.25, "a number of its own"),  # wrong, but not copied: partial credit
        ("<answer>7</answer>", 0.0, "7 is copied from the question"),
        ("<answer>2.0</answer>", 0.0, "2.0 is copied from the question"),
        ("<answer>your number</answer>", 0.0, "the answer block holds no single number"),
        ("<answer>7 + 2</answer>", 0.0, "the answer block holds no single number"),
        ("the answer is 9", 0.0, "no <answer>...</answer> block"),
    ],
)
def test_own_answer_reward_pays_only_for_a_number_not_copied_from_the_question(text, expected, reason):
    reward = get_reward("own_answer_reward")
    columns = {"question": [QUESTION], "answer": ["9"]}
    assert reward(completions=[text], **columns) == [expected]
    assert reward.explain(completions=[text], **columns) == [reason]


def test_own_answer_reward_pays_for_the_gold_even_when_the_question_holds_it():
    reward = get_reward("own_answer_reward", value=0.5)
    question = "Ben has 4 cards. He gets 4 more. He loses 4. How many cards does Ben have now?"
    assert reward(completions=["<answer>4</answer>"], question=[question], answer=["4"]) == [0.5]
