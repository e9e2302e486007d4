"""Format rewards: does the completion lay out its reasoning and answer in the tags the prompt asked for?

Three families, kept side by side so an experiment can compare them:
- the lenient set of the seed study (`hard_format_reward`, `mark_reward`) and its strict originals;
- the GSM8K demo by willccbb (`xmlcount_reward`, `strict_format_reward`, `soft_format_reward`; tag `reasoning`);
- open-r1's src/open_r1/rewards.py (`format_reward`, `tag_count_reward`, `reasoning_steps_reward`).

The "full match" rules are written with str.find instead of the lazy DOTALL regexes they come from: the same
rule (a property test checks it against the regex), in linear time, where the regex goes quadratic on a hostile
1 MB completion full of partial tags. "Exactly once" counts are str.count, as in both references.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from itertools import islice

from rewards.answers import last_block, numbers_in, single_number
from rewards.core import Completion, Reward, RewardConfigError, per_completion

REASONING_STEPS_MAX_CHARS = 100_000
_TAG_NAME = re.compile(r"[A-Za-z][\w-]*")
# No MULTILINE, as in open-r1: `^\d+\.` matches a numbered step only at the very start of the completion.
_REASONING_STEP = re.compile(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)")


def is_sandwich(text: str, head: str, middle: str, tail: str) -> bool:
    """Does `text` fully match `head .*? middle .*? tail` (DOTALL)? Linear time, no regex backtracking.

    True exactly when text starts with head, ends with tail, and middle occurs in between without overlapping
    either.
    """
    if not (text.startswith(head) and text.endswith(tail)):
        return False
    return text.find(middle, len(head), len(text) - len(tail)) != -1


def _has_block(text: str, tag: str) -> bool:
    return last_block(text, tag) is not None


def _check_tag(think_tag: str) -> None:
    if not isinstance(think_tag, str) or not _TAG_NAME.fullmatch(think_tag):
        raise RewardConfigError(
            f"think_tag must be a tag name such as 'reasoning' or 'think' (letters, digits, _ or -), got {think_tag!r}."
        )


# --- the lenient set (seed study) ---


def hard_format_reward() -> Reward:
    """0.5 when the completion has a `<think>...</think>` block and an `<answer>...</answer>` block; 0.25 when it has
    only the answer block; 0.0 otherwise.

    Lenient: newlines and spacing optional, blocks in any order. Range [0, 0.5]. Source: the seed study's
    relaxation of `strict_hard_format_reward`, which gave 0 to almost every early completion of a small model.
    """
    return per_completion(_hard_format, (0.0, 0.5), explain_one=_explain_hard_format)


def _hard_format(completion: Completion) -> float:
    if not _has_block(completion.text, "answer"):
        return 0.0
    return 0.5 if _has_block(completion.text, "think") else 0.25


def _explain_hard_format(completion: Completion) -> str:
    if not _has_block(completion.text, "answer"):
        return "no <answer>...</answer> block"
    if not _has_block(completion.text, "think"):
        return "answer block, no <think>...</think> block"
    return "think and answer blocks"


def mark_reward() -> Reward:
    """+0.125 for each of `<think>`, `</think>`, `<answer>`, `</answer>` present (at most 0.5).

    Lenient partial credit: newlines optional, repeats not punished. Range [0, 0.5]. Source: the seed study's
    relaxation of `strict_mark_reward`.
    """
    return per_completion(
        _count_present, (0.0, 0.5), explain_one=_explain_present, marks=("<think>", "</think>", "<answer>", "</answer>")
    )


def _count_present(completion: Completion, marks: tuple[str, ...]) -> float:
    return 0.125 * sum(mark in completion.text for mark in marks)


def _explain_present(completion: Completion, marks: tuple[str, ...]) -> str:
    missing = [mark for mark in marks if mark not in completion.text]
    return f"missing {', '.join(missing)}" if missing else f"all {len(marks)} tags"


def own_answer_reward(value: float = 0.25) -> Reward:
    """`value` when the last `<answer>...</answer>` block holds one number that the question does not hold (or that
    is the gold answer); 0.0 otherwise.

    The lenient layout credit that copying cannot earn: a small model rewarded for any answer block learns to put
    the question's first number in it (issue 25). Compared as numbers ("9.0" is 9); spacing optional. Dataset
    columns `question` and `answer`. Range [0, value]. Source: this project (the real-model quickstart).
    """
    return per_completion(
        _own_answer,
        (min(0.0, value), max(0.0, value)),
        ("question", "answer"),
        explain_one=_explain_own_answer,
        value=value,
    )


def _own_answer(completion: Completion, value: float) -> float:
    return value if _own_answer_reason(completion) == "a number of its own" else 0.0


def _explain_own_answer(completion: Completion, value: float) -> str:
    return _own_answer_reason(completion)


def _own_answer_reason(completion: Completion) -> str:
    block = last_block(completion.text, "answer")
    if block is None:
        return "no <answer>...</answer> block"
    number = single_number(block)
    if number is None:
        return "the answer block holds no single number"
    gold = single_number(str(completion.columns["answer"]))
    if number != gold and number in numbers_in(str(completion.columns["question"])):
        return f"{block} is copied from the question"
    return "a number of its own"


def strict_hard_format_reward() -> Reward:
    """0.5 for a full match of `^<think>\\n.*?\\n</think>\\n<answer>\\n.*?\\n</answer>\\n$` (DOTALL), else 0.

    Range [0, 0.5]. Source: the seed study's original, kept for comparison with `hard_format_reward`.
    """
    return per_completion(
        _sandwich_score,
        (0.0, 0.5),
        explain_one=_explain_sandwich,
        score=0.5,
        parts=("<think>\n", "\n</think>\n<answer>\n", "\n</answer>\n"),
    )


def _sandwich_score(completion: Completion, score: float, parts: tuple[str, str, str]) -> float:
    return score if is_sandwich(completion.text, *parts) else 0.0


def _explain_sandwich(completion: Completion, score: float, parts: tuple[str, str, str]) -> str:
    head, middle, tail = parts
    text = completion.text
    if not text.startswith(head):
        return f"does not start with {shown(head)}"
    if not text.endswith(tail):
        return f"does not end with {shown(tail)}"
    if not is_sandwich(text, head, middle, tail):
        return f"no {shown(middle)} in between"
    return "exact layout"


def shown(mark: str) -> str:
    """A tag as a reason quotes it, its newlines visible: "\\n</think>\\n"."""
    return '"' + mark.replace("\n", "\\n") + '"'


def strict_mark_reward() -> Reward:
    """0.125 for each of `<think>\\n`, `\\n</think>\\n`, `\\n<answer>\\n`, `\\n</answer>\\n` occurring exactly once.

    Range [0, 0.5]. Source: the seed study's original, kept for comparison with `mark_reward`.
    """
    return per_completion(
        _count_exactly_once,
        (0.0, 0.5),
        explain_one=_explain_exactly_once,
        score=0.125,
        marks=("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>\n"),
    )


def _count_exactly_once(completion: Completion, score: float, marks: tuple[str, ...]) -> float:
    return score * sum(completion.text.count(mark) == 1 for mark in marks)


def _explain_exactly_once(completion: Completion, score: float, marks: tuple[str, ...]) -> str:
    return _not_once(completion.text, marks) or f"all {len(marks)} tags exactly once"


def _not_once(text: str, marks: tuple[str, ...]) -> str:
    """The marks that do not occur exactly once: 'missing "<think>\\n"; "\\n</answer>" 2 times' ('' if none)."""
    counts = {mark: text.count(mark) for mark in marks}
    missing = [shown(mark) for mark, count in counts.items() if count == 0]
    repeated = [f"{shown(mark)} {count} times" for mark, count in counts.items() if count > 1]
    return "; ".join(([f"missing {', '.join(missing)}"] if missing else []) + repeated)


# --- the GSM8K demo set (willccbb's TRL GRPO demo, tags <reasoning>/<answer>) ---


def xmlcount_reward() -> Reward:
    """+0.125 for each of `<reasoning>\\n`, `\\n</reasoning>\\n`, `\\n<answer>\\n`, `\\n</answer>` occurring exactly
    once, less 0.001 a character of text after the answer.

    With the `\\n<answer>\\n` credit, subtract 0.001 x len(text.split("\\n</answer>\\n")[-1]) (the whole text
    when that separator is absent, as split gives); with the `\\n</answer>` credit, subtract
    0.001 x (len(text.split("\\n</answer>")[-1]) - 1). A perfect completion scores 0.5; one with 10 characters
    after its final newline 0.48. Range (-inf, 0.5]: the penalty grows with the trailing text, unbounded.
    Source: `count_xml` in willccbb's grpo_demo.py.
    """
    return per_completion(_xmlcount, (float("-inf"), 0.5), explain_one=_explain_xmlcount)


def _xmlcount(completion: Completion) -> float:
    text = completion.text
    score = 0.0
    if text.count("<reasoning>\n") == 1:
        score += 0.125
    if text.count("\n</reasoning>\n") == 1:
        score += 0.125
    # rpartition(...)[2] is split(...)[-1] without building the list (the whole text when the separator is absent).
    if text.count("\n<answer>\n") == 1:
        score += 0.125 - 0.001 * len(text.rpartition("\n</answer>\n")[2])
    if text.count("\n</answer>") == 1:
        score += 0.125 - 0.001 * (len(text.rpartition("\n</answer>")[2]) - 1)
    return score


def _explain_xmlcount(completion: Completion) -> str:
    text = completion.text
    marks = ("<reasoning>\n", "\n</reasoning>\n", "\n<answer>\n", "\n</answer>")
    reasons = [_not_once(text, marks) or "all 4 tags exactly once"]
    penalty = _xmlcount(completion) - 0.125 * sum(text.count(mark) == 1 for mark in marks)
    if penalty:
        reasons.append(f"{penalty:+.3f} for text after </answer>")
    return "; ".join(reasons)


def strict_format_reward(think_tag: str = "reasoning") -> Reward:
    """0.5 for a full match of `^<reasoning>\\n.*?\\n</reasoning>\\n<answer>\\n.*?\\n</answer>\\n$` (DOTALL), else 0.

    `think_tag` replaces `reasoning` (e.g. `think`). Range [0, 0.5]. Source: `strict_format_reward_func` in
    willccbb's grpo_demo.py (which forgot DOTALL, so multi-line reasoning never matched there).
    """
    _check_tag(think_tag)
    parts = (f"<{think_tag}>\n", f"\n</{think_tag}>\n<answer>\n", "\n</answer>\n")
    return per_completion(_sandwich_score, (0.0, 0.5), explain_one=_explain_sandwich, score=0.5, parts=parts)


def soft_format_reward(think_tag: str = "reasoning") -> Reward:
    """0.5 when `re.match(r"<reasoning>.*?</reasoning>\\s*<answer>.*?</answer>", text)` matches (no DOTALL), else 0.

    Exactly the demo's rule: the reasoning tag must open the completion (a leading newline or word gives 0), text
    after `</answer>` is allowed, and without DOTALL neither the reasoning nor the answer may span lines, so the
    demo's own layout (`<reasoning>\\n...`) never earns it; only the whitespace between `</reasoning>` and
    `<answer>` may hold newlines. `soft_format_anywhere_reward` is the lenient reading. `think_tag` replaces
    `reasoning`. Range [0, 0.5]. Source: `soft_format_reward_func` in willccbb's grpo_demo.py.
    """
    return _soft_format(_soft_format_at_start, _explain_soft_format_at_start, think_tag)


def _soft_format(score_one: Callable[..., float], explain_one: Callable[..., str], think_tag: str) -> Reward:
    """A soft format reward (0 or 0.5) for the tag `think_tag`: both readings search for the same junction."""
    _check_tag(think_tag)
    junction = re.compile(rf"</{re.escape(think_tag)}>\s*<answer>")
    return per_completion(score_one, (0.0, 0.5), explain_one=explain_one, open_tag=f"<{think_tag}>", junction=junction)


def _soft_format_at_start(completion: Completion, open_tag: str, junction: re.Pattern[str]) -> float:
    # Without DOTALL, `.*?` stops at a newline: the closing reasoning tag is on the first line, and `</answer>` on
    # the line where `<answer>` ends. Two candidates cover every match, found in linear time: the earliest
    # junction within the first line (it leaves the most room before that line's end), and the one junction
    # whose whitespace crosses the first newline (its closing tag is the first line's last text).
    text = completion.text
    if not text.startswith(open_tag):
        return 0.0
    first_line_end = _line_end(text, 0)
    joined = junction.search(text, len(open_tag), first_line_end)
    if joined and text.find("</answer>", joined.end(), first_line_end) != -1:
        return 0.5
    last_close = text.rfind("</" + open_tag[1:], len(open_tag), first_line_end)
    crossing = junction.match(text, last_close) if last_close != -1 else None
    if crossing and crossing.end() > first_line_end:
        return 0.5 if text.find("</answer>", crossing.end(), _line_end(text, crossing.end())) != -1 else 0.0
    return 0.0


def _explain_soft_format_at_start(completion: Completion, open_tag: str, junction: re.Pattern[str]) -> str:
    if not completion.text.startswith(open_tag):
        return f"does not start with {open_tag}"
    if _soft_format_at_start(completion, open_tag, junction):
        return f"{open_tag}...</{open_tag[1:]} <answer>...</answer> at the start"
    return f"no </{open_tag[1:]} <answer>...</answer> on the lines it opens (the demo's regex has no DOTALL)"


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end == -1 else end


def soft_format_anywhere_reward(think_tag: str = "reasoning") -> Reward:
    """0.5 when `<reasoning>.*?</reasoning>\\s*<answer>.*?</answer>` is found anywhere (re.search, DOTALL), else 0.

    The lenient reading of the demo's soft format: text may come first, and reasoning and answer may span lines.
    `think_tag` replaces `reasoning`. Range [0, 0.5]. Source: `soft_format_reward_func` in willccbb's grpo_demo.py,
    with re.search and DOTALL instead of re.match (this project's variant).
    """
    return _soft_format(_soft_format_anywhere, _explain_soft_format_anywhere, think_tag)


def _soft_format_anywhere(completion: Completion, open_tag: str, junction: re.Pattern[str]) -> float:
    # The earliest opening tag and the earliest closing-tag/answer junction after it leave the most room for
    # `</answer>`: if they do not lead to a match, no other choice does.
    text = completion.text
    opened = text.find(open_tag)
    if opened == -1:
        return 0.0
    joined = junction.search(text, opened + len(open_tag))
    return 0.5 if joined and text.find("</answer>", joined.end()) != -1 else 0.0


def _explain_soft_format_anywhere(completion: Completion, open_tag: str, junction: re.Pattern[str]) -> str:
    text = completion.text
    opened = text.find(open_tag)
    if opened == -1:
        return f"no {open_tag}"
    joined = junction.search(text, opened + len(open_tag))
    if joined is None:
        return f"no </{open_tag[1:]} followed by <answer> after {open_tag}"
    if text.find("</answer>", joined.end()) == -1:
        return "no </answer> after <answer>"
    return f"{open_tag}...</{open_tag[1:]} <answer>...</answer>"


# --- the open-r1 set (src/open_r1/rewards.py) ---


def format_reward() -> Reward:
    """1.0 for a full match of `^<think>\\n.*?\\n</think>\\n<answer>\\n.*?\\n</answer>$` (DOTALL, MULTILINE), else 0.

    Full match: nothing may follow the final `</answer>` (open-r1 uses re.match, which with MULTILINE also
    accepts text after a newline that follows `</answer>`). Range [0, 1]. Source: open-r1 `format_reward`.
    """
    return per_completion(
        _sandwich_score,
        (0.0, 1.0),
        explain_one=_explain_sandwich,
        score=1.0,
        parts=("<think>\n", "\n</think>\n<answer>\n", "\n</answer>"),
    )


def tag_count_reward() -> Reward:
    """0.25 for each of `<think>\\n`, `\\n</think>\\n`, `\\n<answer>\\n`, `\\n</answer>` occurring exactly once.

    Range [0, 1]. Source: open-r1 `tag_count_reward`.
    """
    return per_completion(
        _count_exactly_once,
        (0.0, 1.0),
        explain_one=_explain_exactly_once,
        score=0.25,
        marks=("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>"),
    )


def reasoning_steps_reward() -> Reward:
    """min(1, n / 3), n = matches of `(Step \\d+:|^\\d+\\.|\\n-|\\n\\*|First,|Second,|Next,|Finally,)` (no flags).

    Rewards visible step-by-step structure; three steps earn full credit. As in open-r1, without MULTILINE: `^\\d+\\.`
    counts a numbered step only at the start of the completion (open-r1's docstring says "at start of line", its
    regex does not), so "1. a\\n2. b\\n3. c" counts 1. Range [0, 1]. Source: open-r1 `reasoning_steps_reward`.
    Only the first three matches are looked for (more cannot change the score), within the first
    REASONING_STEPS_MAX_CHARS characters (the regex costs ~50 ns a character; a real completion is shorter).
    """
    return per_completion(_reasoning_steps, (0.0, 1.0), explain_one=_explain_reasoning_steps)


def _reasoning_steps(completion: Completion) -> float:
    return min(1.0, sum(1 for _ in _step_markers(completion.text)) / 3)


def _step_markers(text: str) -> Iterator[re.Match[str]]:
    """The first three step markers in the text's first REASONING_STEPS_MAX_CHARS characters (more cannot change
    the score)."""
    return islice(_REASONING_STEP.finditer(text, 0, REASONING_STEPS_MAX_CHARS), 3)


def _explain_reasoning_steps(completion: Completion) -> str:
    found = [marker.group() for marker in _step_markers(completion.text)]
    if not found:
        return "no step markers (Step 1:, a leading 1., - or * lists, First, Next, Finally)"
    steps = ", ".join(shown(step) for step in found)
    return f"{len(found)} step markers: {steps}" + ("" if len(found) >= 3 else " (3 earn full credit)")
