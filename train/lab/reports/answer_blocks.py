"""What the answer blocks of an evaluation hold: the right number, a number copied from the question, something
else, or no block at all. A pure function over the greedy samples of samples/<label>.jsonl.

    answer_block_counts(samples)   # -> {"right number": 31, "number from the question": 4, "something else": 9,
                                   #     "no answer block": 6}

It tells a layout learned by copying (the question's first number in the tags) from answers learned (issue 25).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rewards.answers import answers_match, last_block, numbers_in, single_number

RIGHT = "right number"
COPIED = "number from the question"
OTHER = "something else"
NO_BLOCK = "no answer block"
KINDS = (RIGHT, COPIED, OTHER, NO_BLOCK)


def answer_block_kind(completion: str, gold: str, question: str) -> str:
    """One of KINDS for the last `<answer>` block of a completion: the gold answer (compared as by the grader,
    answers_match), else one number that the question holds, else anything else in a block, else no block."""
    block = last_block(completion, "answer")
    if block is None:
        return NO_BLOCK
    if answers_match(block, gold):
        return RIGHT
    number = single_number(block)
    return COPIED if number is not None and number in numbers_in(question) else OTHER


def answer_block_counts(samples: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many greedy samples fall in each of KINDS (all four keys, in that order). A sample's question is its
    `question` field, else its prompt's text; its gold is `answer`. A sample without an `answer` (Countdown grades
    an equation against its target) is not counted: "the right number" would mean nothing for it."""
    counts = dict.fromkeys(KINDS, 0)
    for sample in samples:
        if sample.get("kind", "greedy") != "greedy" or sample.get("answer") is None:
            continue
        question = sample.get("question") or _prompt_text(sample.get("prompt"))
        counts[answer_block_kind(str(sample.get("completion") or ""), str(sample.get("answer")), question)] += 1
    return counts


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list):  # a chat prompt: the user's messages (the system prompt holds no question)
        return "\n".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict) and m.get("role") == "user")
    return str(prompt or "")
