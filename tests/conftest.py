"""Helpers shared by the test files: import them with `from conftest import ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Write one JSON value per line (json.dumps, so NaN is written as NaN) and return the path."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def score(reward: Any, completions: list[Any], **columns: Any) -> list[float | None]:
    """The scores of a reward (a registry name, or a built reward) on completions, called as TRL calls it."""
    from rewards import get_reward

    function = get_reward(reward) if isinstance(reward, str) else reward
    return function(completions=completions, **columns)
