"""The one JSONL reader: one JSON object a line, every bad line named by its number.

    rows = read_jsonl("samples.jsonl", required=("completion",)).rows

Every JSONL file of the project is read here: data files, samples files, a run's metrics.jsonl, score_rewards' input.
A bad line is one that is not UTF-8, not JSON, not a JSON object, lacks a required field, fails the caller's `check`,
or holds a number that is not finite. JSON has no NaN or Infinity, but Python's json module reads them (and `1e999`
as inf); such a value only breaks a reward or a loss much later, far from the line that caused it, so it is refused
here, where the line number is known. Any bad line is a JsonlError naming the file and the lines, unless the caller
asks for one of two exceptions: `skip_bad` (leave bad lines out, listed) or `torn_last_line` (a file a process
appends to, which a kill can leave with its last line cut off mid-write: that line, when it lacks its newline and
does not parse, is left out and its number returned).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Bad lines listed in an error message; the rest are counted.
LISTED_BAD_LINES = 10


@dataclass(frozen=True)
class BadLine:
    number: int  # 1-based
    problem: str  # "not JSON (Expecting value)", "no 'completion' field", ...
    text: str  # the start of the line, for a message that shows it

    def __str__(self) -> str:
        return f"line {self.number}: {self.problem}"


class JsonlError(ValueError):
    """A JSONL file that is missing or has bad lines; the message names the file, each bad line and the fix, and
    `bad` holds the bad lines (empty for a missing file)."""

    def __init__(self, message: str, bad: Sequence[BadLine] = ()):
        super().__init__(message)
        self.bad = list(bad)


@dataclass(frozen=True)
class JsonlRows:
    """rows: the objects read, in file order; line_numbers: the file line of each row (1-based); skipped: one
    "line N: why" per bad line skipped (with skip_bad); torn_line: the number of a torn last line left out (with
    torn_last_line), else None."""

    rows: list[dict[str, Any]]
    line_numbers: list[int]
    skipped: list[str]
    torn_line: int | None = None


class _NotFinite(ValueError):
    pass


def read_jsonl(
    path: str | Path,
    *,
    required: Sequence[str] = (),
    check: Callable[[dict[str, Any]], str | None] | None = None,
    skip_bad: bool = False,
    torn_last_line: bool = False,
    unique_keys: bool = False,
) -> JsonlRows:
    """The objects of a JSONL file (blank lines skipped). Raises JsonlError when the file is missing, or when any
    line is bad and skip_bad is False; with skip_bad, bad lines are left out and listed in `skipped`. `check` says
    what is wrong with a parsed object (None: nothing). With torn_last_line, a last line without its newline that
    does not parse is left out and its number is `torn_line`. With unique_keys (data files, which people write), an
    object that repeats a key is a bad line: JSON keeps the last value without a word, so one of the two is lost."""
    path = Path(path)
    if not path.is_file():
        raise JsonlError(f"{path} not found (resolved to {path.resolve()}). Check the path.")
    rows, line_numbers, bad, torn = [], [], [], None
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            row, problem = _parse_line(raw, required, check, unique_keys)
            if problem is not None and torn_last_line and not raw.endswith(b"\n") and not _parses(raw):
                torn = number
            elif problem is not None:
                text = raw.decode("utf-8", errors="replace").rstrip("\n")
                bad.append(BadLine(number, problem, text if len(text) <= 60 else text[:57] + "..."))
            elif row is not None:
                rows.append(row)
                line_numbers.append(number)
    if bad and not skip_bad:
        fields = f" with {', '.join(repr(field) for field in required)}" if required else ""
        raise JsonlError(
            f"{path} has {len(bad)} bad line(s): {describe_bad_lines([str(line) for line in bad])}. Each line must "
            f"be one JSON object{fields}; JSON has no NaN or Infinity (write null for a missing value). Fix those "
            "lines.",
            bad,
        )
    return JsonlRows(rows, line_numbers, [str(line) for line in bad], torn)


def describe_bad_lines(bad: list[str]) -> str:
    """The first LISTED_BAD_LINES entries joined, and how many more there are."""
    listed = "; ".join(bad[:LISTED_BAD_LINES])
    return listed + (f"; and {len(bad) - LISTED_BAD_LINES} more" if len(bad) > LISTED_BAD_LINES else "")


def _parse_line(
    raw: bytes,
    required: Sequence[str],
    check: Callable[[dict[str, Any]], str | None] | None,
    unique_keys: bool = False,
) -> tuple[dict[str, Any] | None, str | None]:
    """(row, None) for a good line, (None, None) for a blank one, (None, why) for a bad one."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"not UTF-8 (byte {error.start})"
    if not line.strip():
        return None, None
    try:
        hook = _unique_object if unique_keys else None
        row = json.loads(line, parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=hook)
    except (_NotFinite, _DuplicateKey) as error:
        return None, str(error)
    except ValueError as error:  # JSONDecodeError, and ints past Python's digit limit
        return None, f"not JSON ({getattr(error, 'msg', error)})"
    if not isinstance(row, dict):
        return None, f"not a JSON object (a {type(row).__name__})"
    missing = [field for field in required if field not in row]
    if missing:
        return None, f"no {', '.join(repr(field) for field in missing)} field"
    problem = check(row) if check is not None else None
    return (row, None) if problem is None else (None, problem)


def _parses(raw: bytes) -> bool:
    try:
        json.loads(raw.decode("utf-8"))
        return True
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False


class _DuplicateKey(ValueError):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in pairs:
        if key in row:
            raise _DuplicateKey(f"key {key!r} appears twice in one object (JSON would keep the last value silently)")
        row[key] = value
    return row


def _refuse_constant(name: str) -> float:
    raise _NotFinite(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"{text} is too large for a float (it reads as infinity)")
    return value
