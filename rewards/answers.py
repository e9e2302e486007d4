"""Answer parsing: pull the final answer out of a completion and compare it with the gold answer.

Everything here is pure standard library; `math_answers_match` hands the comparison to math-verify in a child
process (rewards/math_verify_check.py), so sympy is never imported here.

Work is bounded on hostile text (1 MB completions, thousands of `\\boxed{`): tag search uses str.rfind, the last
number is found from the end, and answers longer than `MAX_ANSWER_CHARS` never match. None of these bounds changes
a result on a completion of normal size.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

from rewards import math_verify_check
from rewards.math_verify_check import Verdict

BOXED_OPEN = "\\boxed{"

# An extracted answer longer than this is prose, not an answer: it never matches, and is never parsed.
MAX_ANSWER_CHARS = 1_000
# Only the last few `\boxed{` openings are tried, each for at most MAX_ANSWER_CHARS of content.
MAX_BOXED_TRIES = 20

# One number as people write it: optional sign (not when glued to a word, as in "x-3"), thousands commas,
# decimals, a/b fractions, LaTeX \frac{a}{b}. "18." stays 18: the dot needs a digit after it.
_UNSIGNED = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
_NUMBER_RE = re.compile(
    rf"(?P<sign>(?<![\w)])[-+])?\s?"
    rf"(?:\\[dt]?frac\{{(?P<fnum>{_UNSIGNED})\}}\{{(?P<fden>{_UNSIGNED})\}}"
    rf"|(?P<num>{_UNSIGNED})(?:\s?/\s?(?P<den>{_UNSIGNED}))?)"
)
# Everything from the final number back to the start of text (DOTALL greedy `.*` backtracks from the end: fast).
_LAST_DIGIT_RE = re.compile(r".*\d", re.DOTALL)
_UNICODE_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-"})


def last_block(text: str | None, tag: str) -> str | None:
    """Content of the last `<tag>...</tag>` block (the last closing tag and the last opening tag before it),
    stripped; None without one."""
    if not text:
        return None
    close = text.rfind(f"</{tag}>")
    open_ = text.rfind(f"<{tag}>", 0, close) if close != -1 else -1
    return text[open_ + len(tag) + 2 : close].strip() if open_ != -1 else None


def answer_block(text: str | None) -> str | None:
    """Content of the last `<answer>...</answer>` block, stripped; None without one (no `\\boxed` fallback)."""
    return last_block(text, "answer")


def has_answer_block(text: str | None) -> bool:
    """True when the text contains `<answer>` followed (anywhere later) by `</answer>`."""
    return answer_block(text) is not None


def extract_answer(text: str | None, fallback: str | None = None) -> str | None:
    """The final answer in a completion, or None.

    In order: the content of the LAST `<answer>...</answer>` block (stripped); else the content of the last
    `\\boxed{...}` whose braces balance (stripped); else, with `fallback="last_number"`, the last number in the
    text (as written, e.g. "1,000" or "-3.5"); else None.
    """
    if fallback not in (None, "last_number"):
        raise ValueError(f"fallback must be None or 'last_number', got {fallback!r}")
    if not text:
        return None
    block = answer_block(text)
    if block is not None:
        return block
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    if fallback == "last_number":
        return _last_number(text)
    return None


def _last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` whose braces balance within MAX_ANSWER_CHARS, or None."""
    end = len(text)
    for _ in range(MAX_BOXED_TRIES):
        start = text.rfind(BOXED_OPEN, 0, end)
        if start == -1:
            return None
        content_start = start + len(BOXED_OPEN)
        depth = 1
        # Scanning up to the later opening that failed is enough: it either never closes (so nothing opened
        # before it closes after it) or its content is too long (and so would be the content around it).
        scan_end = min(end, content_start + MAX_ANSWER_CHARS + 1)
        for match in re.finditer(r"[{}]", text[content_start:scan_end]):
            depth += 1 if match.group() == "{" else -1
            if depth == 0:
                return text[content_start : content_start + match.start()].strip()
        end = start
    return None


def _last_number(text: str) -> str | None:
    """The last number written in the text (as written), or None."""
    last_digit = _LAST_DIGIT_RE.match(text)
    if last_digit is None:
        return None
    stop = last_digit.end()
    window = text[max(0, stop - 100) : stop]
    candidates = list(_NUMBER_RE.finditer(window))
    return candidates[-1].group().strip() if candidates else None


def numbers_in(text: str) -> set[Fraction]:
    """The value of every number written in the text ("has 7 coins, gets 1,000 more" -> {7, 1000})."""
    values = (_value(match) for match in _NUMBER_RE.finditer(text[: 100 * MAX_ANSWER_CHARS]))
    return {value for value in values if value is not None}


def parse_number(text: str) -> Fraction | None:
    """The exact value of a text that is one number as written (`1,000`, `-3`, `0.5`, `1/2`, `\\frac{1}{2}`).

    Returns None when the text is not exactly one number (surrounding whitespace allowed). See `single_number`
    for the lenient reading that tolerates words and units around the number.
    """
    text = text.strip().translate(_UNICODE_MINUS)
    if len(text) > MAX_ANSWER_CHARS:
        return None
    match = _NUMBER_RE.fullmatch(text)
    return _value(match) if match else None


# An answer that IS one number, as people write it: an optional label ("x = ", "Answer: "), a sign and a currency
# sign in either order ("-$18", "$-18"), the number, an optional percent sign, unit words ("dollars", "km/h"), a
# final period. Nothing else: an operator, a digit or a symbol next to the number ("x^2", "2²", "--5") makes the
# text an expression, not a number. Words and separators are single-character steps: no backtracking blow-up.
_LABEL = r"(?:[^\W\d_]\w*(?: \w+)*\s*[=:]\s*)?"
_UNITS = r"(?:\s*\\?%)?(?:\s+[^\W\d_]+(?:[ /-][^\W\d_]+)*)?\.?"
_ANSWER_NUMBER_RE = re.compile(
    rf"{_LABEL}(?P<sign>[-+]?)\s*(?:\\?\$\s*)?(?P<currency_sign>[-+]?)\s*"
    rf"(?:\\[dt]?frac\{{(?P<fnum>{_UNSIGNED})\}}\{{(?P<fden>{_UNSIGNED})\}}"
    rf"|(?P<num>{_UNSIGNED})(?:\s?/\s?(?P<den>{_UNSIGNED}))?){_UNITS}"
)
_BOXED_WHOLE = re.compile(r"\\boxed\{(?P<inner>[^{}]*)\}")


# Completions of one prompt share a gold answer and often an answer: parse each text once.
@lru_cache(maxsize=8192)
def single_number(text: str) -> Fraction | None:
    """The value of a text that IS one number as an answer is written, or None.

    Accepted around the number: a label (`x = 18`, `Answer: 18`), a currency sign (`$18`, `-$18`), thousands
    separators (`1,000`), decimals (`18.0`), a fraction (`1/2`, `\\frac{1}{2}`), a percent sign, unit words
    (`18 dollars`), a final period (`18.`), a whole-answer `\\boxed{18}`. Anything else next to the number makes
    the text an expression, not that number: `x^2`, `2²`, `--5`, `2*3`, `18 or 19`, `the answer is 18` give None.
    None also beyond MAX_ANSWER_CHARS.
    """
    if len(text) > MAX_ANSWER_CHARS:
        return None
    text = text.strip().translate(_UNICODE_MINUS)
    boxed = _BOXED_WHOLE.fullmatch(text)
    if boxed:
        text = boxed.group("inner").strip()
    match = _ANSWER_NUMBER_RE.fullmatch(text)
    if match is None or (match.group("sign") and match.group("currency_sign")):
        return None
    return _value(match)


def _value(match: re.Match[str]) -> Fraction | None:
    numerator = match.group("fnum") or match.group("num")
    denominator = match.group("fden") or match.group("den")
    value = Fraction(numerator.replace(",", ""))
    if denominator is not None:
        divisor = Fraction(denominator.replace(",", ""))
        if divisor == 0:
            return None
        value /= divisor
    sign = match.group("sign") or (match.groupdict().get("currency_sign") or "")
    return -value if sign == "-" else value


def answers_match(pred: str | None, gold: str) -> bool:
    """Does the predicted answer equal the gold answer?

    When each side IS one number (`single_number`), the numbers are compared exactly (Fractions): `1,000` =
    `1000` = `1000.0`, `$18` = `18` = `18.` = `18 dollars` = `x = 18`, `1/2` = `0.5`, `-3` != `3`; an expression
    that contains the number (`x^2`, `2²`, `--5`) is not that number. Otherwise the two texts are compared after
    collapsing whitespace. None, or a prediction longer than MAX_ANSWER_CHARS, never matches.
    """
    if pred is None or len(pred) > MAX_ANSWER_CHARS:
        return False
    pred_text, gold_text = " ".join(pred.split()), " ".join(str(gold).split())
    if pred_text == gold_text:
        return True  # equal texts are equal answers either way; skips parsing the common case
    pred_value, gold_value = single_number(pred_text), single_number(gold_text)
    return pred_value is not None and pred_value == gold_value


def parse_gsm8k_gold(answer_field: str) -> str:
    """The gold answer of a GSM8K row: the text after the last `####`, without commas or spaces.

    `"... #### 1,234"` -> `"1234"`. Raises ValueError when the field has no `####` (not a GSM8K answer).
    """
    _, marker, tail = answer_field.rpartition("####")
    if not marker:
        raise ValueError(f"not a GSM8K answer (no '####' marker): {answer_field[-80:]!r}")
    return "".join(tail.split()).replace(",", "")


def math_answers_match(pred: str | None, gold_latex: str) -> bool | None:
    """Is `pred` mathematically equal to `gold_latex`, by math-verify? None when math-verify cannot decide: the gold
    does not parse, or the comparison passed its time or memory bound (see `math_verdicts`)."""
    return _AS_MATCH[math_verdicts([(pred, gold_latex)])[0]]


_AS_MATCH = {Verdict.EQUAL: True, Verdict.DIFFERENT: False, Verdict.GOLD_UNPARSEABLE: None, Verdict.UNDECIDED: None}


def math_verdicts(pairs: Sequence[tuple[str | None, object]]) -> list[Verdict]:
    """math-verify's verdict on each (prediction, gold) pair, made in a child process under a time and a memory
    bound (rewards/math_verify_check.py): EQUAL, DIFFERENT, GOLD_UNPARSEABLE, or UNDECIDED past a bound.

    Both sides are LaTeX answers without delimiters (`\\frac{\\pi}{2}`, `(3, \\frac{\\pi}{2})`); a side that already
    contains `\\boxed` or an unescaped `$` is given to math-verify as is, otherwise it is wrapped in `$...$` (so
    `\\$18.90` is read as 18.90). A gold that math-verify turns into no expression (`\\frac{`, `unparseable_latex`:
    only its raw text comes back) is GOLD_UNPARSEABLE, as open-r1 skips it. A prediction of None is DIFFERENT;
    answers longer than MAX_ANSWER_CHARS are never parsed (gold: GOLD_UNPARSEABLE, prediction: as None).
    """
    checked: list[tuple[str | None, str]] = []
    for pred, gold in pairs:
        gold_text = str(gold)
        if len(gold_text) <= MAX_ANSWER_CHARS:
            checked.append((pred if pred is not None and len(pred) <= MAX_ANSWER_CHARS else None, gold_text))
    verdicts = iter(math_verify_check.compare_many(checked))
    return [Verdict.GOLD_UNPARSEABLE if len(str(gold)) > MAX_ANSWER_CHARS else next(verdicts) for _, gold in pairs]


def clear_caches() -> None:
    """Forget every parsed answer and math-verify verdict (for benchmarks and tests that need cold runs)."""
    single_number.cache_clear()
    math_verify_check.clear_cache()
