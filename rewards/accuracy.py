"""Accuracy rewards: is the completion's final answer the gold answer (dataset column `answer`)?

`answer` holds the gold answer already extracted: "18" for GSM8K (see parse_gsm8k_gold), a LaTeX string for
MATH / MATH-500. The answer in the completion is `extract_answer`'s: the last `<answer>` block, else the last
`\\boxed{}`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from rewards.answers import MAX_ANSWER_CHARS, Verdict, answers_match, extract_answer, math_verdicts
from rewards.core import Completion, Reward, per_completion

Checker = Literal["answer", "math"]
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


def verdicts(completions: Sequence[Completion], checker: Checker = "answer") -> list[Verdict]:
    """The correctness decision shared by the accuracy and length rewards, one per completion (gold column `answer`).

    checker "answer": `answers_match(extract_answer(text), gold)` (numbers compared as numbers, else text), EQUAL or
    DIFFERENT. checker "math": `math_verdicts` on the extracted answers, all in one request to math-verify's child
    process; it may also say GOLD_UNPARSEABLE or UNDECIDED (past its time or memory bound).
    """
    if checker == "math":
        return math_verdicts([(extract_answer(c.text), str(c.columns["answer"])) for c in completions])
    return [
        Verdict.EQUAL if answers_match(extract_answer(c.text), str(c.columns["answer"])) else Verdict.DIFFERENT
        for c in completions
    ]


def correctness_reward(value: float = 1.0, fallback: Literal["last_number"] | None = None) -> Reward:
    """`value` when the extracted answer equals the gold answer (answers_match), else 0.0.

    fallback="last_number" also accepts the last number of a completion that has neither an answer block nor a
    boxed answer. Dataset column `answer`. Range [0, value]. Source: `correctness_reward_func` in willccbb's
    grpo_demo.py (value 2.0 there) and the seed study (value 1.0).
    """
    return per_completion(
        _correctness,
        (min(0.0, value), max(0.0, value)),
        ("answer",),
        explain_one=_explain_correctness,
        value=value,
        fallback=fallback,
    )


def _correctness(completion: Completion, value: float, fallback: str | None) -> float:
    predicted = extract_answer(completion.text, fallback=fallback)
    return value if answers_match(predicted, str(completion.columns["answer"])) else 0.0


def _explain_correctness(completion: Completion, value: float, fallback: str | None) -> str:
    predicted = extract_answer(completion.text, fallback=fallback)
    gold = str(completion.columns["answer"])
    verdict = Verdict.EQUAL if answers_match(predicted, gold) else Verdict.DIFFERENT
    return explain_verdict(predicted, gold, verdict, fallback=fallback)


def explain_verdict(
    predicted: str | None, gold: str, verdict: Verdict, checker: Checker = "answer", fallback: str | None = None
) -> str:
    """Why an answer was judged as it was: "parsed 18, gold 18.0", "parsed 17, gold 18: different", "no answer";
    "(math-verify)" after a verdict of the math checker."""
    if verdict is Verdict.GOLD_UNPARSEABLE:
        return f"math-verify cannot parse the gold {_clip(gold)}"
    if verdict is Verdict.UNDECIDED:
        return "math-verify stopped at its time or memory bound"
    if predicted is None:
        return "no answer: no <answer> block or \\boxed{}" + (", no number" if fallback else "")
    if len(predicted) > MAX_ANSWER_CHARS:
        return f"answer over {MAX_ANSWER_CHARS} characters"
    parsed = f"parsed {_clip(predicted)}, gold {_clip(gold)}"
    judged = parsed if verdict is Verdict.EQUAL else f"{parsed}: different"
    return f"{judged} (math-verify)" if checker == "math" else judged


def _clip(text: str, limit: int = 30) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def math_accuracy_reward() -> Reward:
    """1.0 when math-verify finds the extracted answer equal to the LaTeX gold answer, else 0.0; None when it cannot
    decide: the gold does not parse (as open-r1), or the comparison passed its time or memory bound.

    Each comparison runs in math-verify's child process, at most 3 s and 1 GiB (rewards/math_verify_check.py).
    Dataset column `answer`. Range [0, 1]. Source: open-r1 `accuracy_reward` (which parses the whole completion;
    here the extracted answer is compared, as for the other accuracy rewards).
    """
    return Reward(_math_accuracy_scores, (0.0, 1.0), ("answer",), explain=_explain_math_accuracy)


_MATH_ACCURACY = {Verdict.EQUAL: 1.0, Verdict.DIFFERENT: 0.0, Verdict.GOLD_UNPARSEABLE: None, Verdict.UNDECIDED: None}


def _math_accuracy_scores(completions: Sequence[Completion]) -> list[float | None]:
    return [_MATH_ACCURACY[verdict] for verdict in verdicts(completions, "math")]


def _explain_math_accuracy(completions: Sequence[Completion]) -> list[str]:
    return [
        explain_verdict(extract_answer(c.text), str(c.columns["answer"]), verdict, checker="math")
        for c, verdict in zip(completions, verdicts(completions, "math"), strict=True)
    ]


def int_reward() -> Reward:
    """0.5 when the extracted answer is a whole number written in digits (`18`, `-3`; not `18.5`, `1,000`, `x`).

    Teaches the answer's shape before its value. Range [0, 0.5]. Source: `int_reward_func` in willccbb's
    grpo_demo.py (str.isdigit there: no minus sign, and Unicode digits such as "²" passed).
    """
    return per_completion(_int, (0.0, 0.5), explain_one=_explain_int)


def _int(completion: Completion) -> float:
    answer = extract_answer(completion.text)
    return 0.5 if answer is not None and _WHOLE_NUMBER.fullmatch(answer) else 0.0


def _explain_int(completion: Completion) -> str:
    answer = extract_answer(completion.text)
    if answer is None:
        return "no answer: no <answer> block or \\boxed{}"
    whole = _WHOLE_NUMBER.fullmatch(answer)
    return f"{_clip(answer)} is a whole number" if whole else f"{_clip(answer)} is not a whole number in digits"
