"""Countdown: reach `target` using each of `numbers` exactly once with + - * / and (), and its two rewards.

The equation is the content of the completion's last `<answer>...</answer>` block. It is parsed with `ast` and
evaluated with exact Fractions by walking the tree: no eval(), so an answer like `__import__('os').system(...)`
or `9**9**9**9` is simply not a valid equation.

Decisions (each pinned by a test):
- Allowed: integer literals written in decimal digits, binary + - * /, parentheses, whitespace. The multiplication
  and division signs x (U+00D7) and ÷ (U+00F7) are read as * and /.
- Rejected: every unary operator (`-3`, `+3`, `-(3-5)`): the game's rules are binary operations on the given
  numbers, and subtraction already gives every difference. Also rejected: `**`, `//`, `%`, names, calls, floats,
  underscores, hex/octal/binary literals, anything over MAX_EQUATION_CHARS characters.
- A trailing `= <number>` is removed first (`3*5+2 = 17`); the number after `=` is not checked, the equation is.
- Division by zero: the numbers may still be valid, the value is None.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rewards.answers import answer_block
from rewards.core import Completion, Reward, per_completion

MAX_EQUATION_CHARS = 300
TOLERANCE = Fraction(1, 10**6)

# Characters an equation may contain at all. Checked before ast.parse so that no Python spelling other than
# plain decimal integers and the four operators (0x10, 1_0, 1e3, 3j, names, strings) can reach the tree walk.
_ALLOWED_CHARS = re.compile(r"[0-9+\-*/() \t\n]*")
_RESULT_SUFFIX = re.compile(r"=\s*-?\d+(?:\.\d+)?\s*\Z")
_SIGNS = str.maketrans({"\u00d7": "*", "\u00f7": "/"})
_OPERATIONS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b if b != 0 else None,
}


@dataclass(frozen=True)
class CountdownCheck:
    """The verdict on one Countdown answer.

    numbers_valid: the equation parses and its integer literals are exactly the given numbers (as a multiset).
    value: the exact value of the equation when it parses and no division by zero occurs, else None (it is
        also given when the numbers are not valid, for diagnostics).
    correct: numbers_valid and |value - target| < 1e-6.
    """

    numbers_valid: bool
    value: Fraction | None
    correct: bool


_INVALID = CountdownCheck(numbers_valid=False, value=None, correct=False)


class _NotAnEquation(Exception):
    pass


def check_countdown(answer_text: str | None, numbers: list[int], target: int | float) -> CountdownCheck:
    """Check a Countdown answer such as `(8 - 5) * 3 = 9` against the given numbers and target.

    Raises ValueError for a target that is not a finite number (the rewards skip such rows, see gold_problem).
    """
    finite_number = isinstance(target, int) or (isinstance(target, float) and math.isfinite(target))
    if isinstance(target, bool) or not finite_number:
        raise ValueError(f"a Countdown target must be a finite number, got {target!r}")
    parsed = parse_equation(answer_text)
    if isinstance(parsed, str):
        return _INVALID
    literals, value = parsed
    numbers_valid = Counter(literals) == Counter(int(n) for n in numbers)
    correct = numbers_valid and reaches(value, target)
    return CountdownCheck(numbers_valid=numbers_valid, value=value, correct=correct)


def reaches(value: Fraction | None, target: int | float) -> bool:
    """Whether an equation's value (None: a division by zero) is the target, within TOLERANCE."""
    return value is not None and abs(value - Fraction(target)) < TOLERANCE


def parse_equation(answer_text: str | None) -> tuple[list[int], Fraction | None] | str:
    """The integer literals of an answer's equation and its exact value (None after a division by zero), or why
    it is not an equation of numbers and + - * / ( ) (a string)."""
    if answer_text is None:
        return "no equation"
    if len(answer_text) > MAX_EQUATION_CHARS:
        return f"equation over {MAX_EQUATION_CHARS} characters"
    equation = _RESULT_SUFFIX.sub("", answer_text.translate(_SIGNS)).strip()
    if not equation:
        return "empty answer"
    if not _ALLOWED_CHARS.fullmatch(equation):
        return "not an equation of numbers and + - * / ( )"
    try:
        tree = ast.parse(equation, mode="eval")
        literals: list[int] = []
        value = _evaluate(tree.body, literals)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return "does not parse as an equation"
    except _NotAnEquation as error:
        if str(error) == "UnaryOp":
            return "a sign before a number (-3): only + - * / between numbers"
        return "not an equation of numbers and + - * / ( )"
    return literals, value


def _evaluate(node: ast.expr, literals: list[int]) -> Fraction | None:
    """Exact value of an allowed expression tree (None after a division by zero); collects its literals."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        literals.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATIONS:
        # Both sides are walked even after a division by zero, so every literal is counted.
        left, right = _evaluate(node.left, literals), _evaluate(node.right, literals)
        if left is None or right is None:
            return None
        return _OPERATIONS[type(node.op)](left, right)
    raise _NotAnEquation(type(node).__name__)


def gold_problem(row: Mapping[str, Any]) -> str | None:
    """Why a row's `target` and `numbers` cannot be scored, or None: the target must be a whole number (24, or
    24.0), finite, and the numbers a list of whole numbers. NaN, inf, 24.5, "24" and [3, "5"] are not."""
    target, numbers = row["target"], row["numbers"]
    if not _is_whole_number(target):
        return f"target {target!r} is not a whole number"
    if not isinstance(numbers, list | tuple) or not all(_is_whole_number(n) for n in numbers):
        return f"numbers {numbers!r} is not a list of whole numbers"
    return None


def _is_whole_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())


def countdown_reward() -> Reward:
    """1.0 numbers valid and |value - target| < 1e-6; 0.7 numbers valid and |value - target| < 10% of |target|;
    0.5 numbers valid and within 50% of |target|; 0.3 numbers valid otherwise (including division by zero);
    0.1 an answer block that fails the above; 0.0 no answer block.

    Graduated, so that near misses still teach. Dataset columns `target` (int) and `numbers` (list of int); a row
    whose target or numbers are not whole numbers (NaN, inf, 24.5) is not applicable (None) and counted in
    `invalid_gold_count`. Range [0, 1]. Source: the seed study, after TinyZero's countdown reward (0.1 for
    format, 1.0 for correct).
    """
    return per_completion(_countdown, (0.0, 1.0), ("target", "numbers"), gold_problem, _explain_countdown)


def _check(completion: Completion, equation_of: Callable[[str], str | None]) -> CountdownCheck | None:
    """The completion's equation (`equation_of` its text) checked against its row, or None when it has none."""
    equation = equation_of(completion.text)
    if equation is None:
        return None
    return check_countdown(equation, completion.columns["numbers"], completion.columns["target"])


def last_line_answer(text: str) -> str | None:
    """TinyZero's extraction: the content of the last `<answer>(.*?)</answer>` match on the LAST line of the text
    (re.finditer, no DOTALL), stripped; None without one. A completion ending in a newline has an empty last line.

    Matches found as re.finditer finds them (leftmost `<answer>`, then the nearest `</answer>`), with str.find in
    linear time where the lazy regex goes quadratic on a long line of unclosed tags.
    """
    line = text[text.rfind("\n") + 1 :]
    found, position = None, 0
    while (start := line.find("<answer>", position)) != -1:
        end = line.find("</answer>", start + len("<answer>"))
        if end == -1:
            break
        found, position = line[start + len("<answer>") : end], end + len("</answer>")
    return None if found is None else found.strip()


def _countdown(completion: Completion) -> float:
    check = _check(completion, answer_block)
    if check is None:
        return 0.0
    if not check.numbers_valid:
        return 0.1
    if check.correct:
        return 1.0
    if check.value is None:
        return 0.3
    target = Fraction(completion.columns["target"])
    error = abs(check.value - target)
    if error < abs(target) / 10:
        return 0.7
    if error < abs(target) / 2:
        return 0.5
    return 0.3


_NEAR_MISS = {0.7: " (within 10%)", 0.5: " (within 50%)"}


def _explain_countdown(completion: Completion) -> str:
    return _why(completion, answer_block, "no <answer> block") + _NEAR_MISS.get(_countdown(completion), "")


def _why(completion: Completion, equation_of: Callable[[str], str | None], no_equation: str) -> str:
    """Why a Countdown answer scored what it did: the numbers it misused, else its value against the target."""
    equation = equation_of(completion.text)
    if equation is None:
        return no_equation
    parsed = parse_equation(equation)
    if isinstance(parsed, str):
        return parsed
    literals, value = parsed
    numbers, target = [int(n) for n in completion.columns["numbers"]], completion.columns["target"]
    problems = _number_problems(literals, numbers)
    result = "division by zero" if value is None else f"evaluates to {_show(value)}, target {_show(Fraction(target))}"
    if problems:
        return f"{'; '.join(problems)} (numbers {', '.join(map(str, numbers))}); {result}"
    if reaches(value, target):
        return f"correct: {_show(value)}"
    return result


def _number_problems(literals: list[int], numbers: list[int]) -> list[str]:
    """How the equation's numbers differ from the given ones: "8 used twice", "7 is not one of the numbers", "3 not
    used"."""
    used, given = Counter(literals), Counter(numbers)
    problems = []
    for number, count in used.items():
        if number not in given:
            problems.append(f"{number} is not one of the numbers")
        elif count > given[number]:
            times = "twice" if count == 2 else f"{count} times"
            problems.append(f"{number} used {times}" + (f" (given {given[number]})" if given[number] > 1 else ""))
    problems += [f"{number} not used" for number in given if used[number] < given[number]]
    return problems


def _show(value: Fraction) -> str:
    """A value as people write it: 21, -3, 2.5, or 7/3 when the decimal does not end."""
    if value.denominator == 1:
        return str(value.numerator)
    decimal = value.numerator / value.denominator
    return f"{decimal:g}" if Fraction(decimal) == value else f"{value.numerator}/{value.denominator}"


def countdown_binary_reward() -> Reward:
    """1.0 for a correct equation, 0.1 for an equation that is not correct for any reason, 0.0 without one.

    The equation is read as TinyZero reads it: the last `<answer>...</answer>` on the completion's LAST line
    (`last_line_answer`), so an answer followed by more lines, or by a final newline, earns 0. Dataset columns
    `target` and `numbers` (not whole numbers: None, as for countdown_reward). Range [0, 1]. Source: TinyZero's
    countdown `compute_score` (format score 0.1); the equation is checked by `check_countdown`, never eval'd
    (see docs/rewards.md for how that differs).
    """
    return per_completion(_countdown_binary, (0.0, 1.0), ("target", "numbers"), gold_problem, _explain_binary)


def _countdown_binary(completion: Completion) -> float:
    check = _check(completion, last_line_answer)
    if check is None:
        return 0.0
    return 1.0 if check.correct else 0.1


def _explain_binary(completion: Completion) -> str:
    return _why(completion, last_line_answer, "no <answer>...</answer> on the last line")
