"""The one JSONL reader: one JSON object a line, every bad line named by its number.

    rows = read_jsonl("samples.jsonl", required=("completion",)).rows

A bad line is one that is not UTF-8, not JSON, not a JSON object, lacks a required field, or holds a number that is
not finite. JSON has no NaN or Infinity, but Python's json module reads them (and `1e999` as inf); such a value only
breaks a reward or a loss much later, far from the line that caused it, so it is refused here, where the line
number is known.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Bad lines listed in an error message; the rest are counted.
LISTED_BAD_LINES = 10


class JsonlError(ValueError):
    """A JSONL file that is missing or has bad lines; the message names the file, each bad line and the fix."""


@dataclass(frozen=True)
class JsonlRows:
    """rows: the objects read, in file order; line_numbers: the file line of each row (1-based); skipped: one
    "line N: why" per bad line skipped (with skip_bad)."""

    rows: list[dict[str, Any]]
    line_numbers: list[int]
    skipped: list[str]


class _NotFinite(ValueError):
    pass


def read_jsonl(path: str | Path, *, required: Sequence[str] = (), skip_bad: bool = False) -> JsonlRows:
    """The objects of a JSONL file (blank lines skipped). Raises JsonlError when the file is missing, or when any
    line is bad and skip_bad is False; with skip_bad, bad lines are left out and listed in `skipped`."""
    path = Path(path)
    if not path.is_file():
        raise JsonlError(f"{path} not found (resolved to {path.resolve()}). Check the path.")
    rows, line_numbers, bad = [], [], []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            row, problem = _parse_line(raw, required)
            if problem is not None:
                bad.append(f"line {number}: {problem}")
            elif row is not None:
                rows.append(row)
                line_numbers.append(number)
    if bad and not skip_bad:
        fields = f" with {', '.join(repr(field) for field in required)}" if required else ""
        raise JsonlError(
            f"{path} has {len(bad)} bad line(s): {describe_bad_lines(bad)}. Each line must be one JSON object"
            f"{fields}; JSON has no NaN or Infinity (write null for a missing value). Fix those lines."
        )
    return JsonlRows(rows, line_numbers, bad)


def describe_bad_lines(bad: list[str]) -> str:
    """The first LISTED_BAD_LINES entries joined, and how many more there are."""
    listed = "; ".join(bad[:LISTED_BAD_LINES])
    return listed + (f"; and {len(bad) - LISTED_BAD_LINES} more" if len(bad) > LISTED_BAD_LINES else "")


def _parse_line(raw: bytes, required: Sequence[str]) -> tuple[dict[str, Any] | None, str | None]:
    """(row, None) for a good line, (None, None) for a blank one, (None, why) for a bad one."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"not UTF-8 (byte {error.start})"
    if not line.strip():
        return None, None
    try:
        row = json.loads(line, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotFinite as error:
        return None, str(error)
    except ValueError as error:  # JSONDecodeError, and ints past Python's digit limit
        return None, f"not JSON ({getattr(error, 'msg', error)})"
    if not isinstance(row, dict):
        return None, f"not a JSON object (a {type(row).__name__})"
    missing = [field for field in required if field not in row]
    if missing:
        return None, f"no {', '.join(repr(field) for field in missing)} field"
    return row, None


def _refuse_constant(name: str) -> float:
    raise _NotFinite(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"{text} is too large for a float (it reads as infinity)")
    return value
