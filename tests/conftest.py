"""Shared test helpers: JSONL files, and a reward's scores on completions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """One JSON value per line (a row that is already a string is written as is: malformed input on purpose)."""
    path = Path(path)
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def score(reward: Any, completions: list[Any], **columns: Any) -> list[float | None]:
    """The scores of a reward (a registry name, or a built reward) on completions, called as TRL calls it."""
    from rewards import get_reward

    function = get_reward(reward) if isinstance(reward, str) else reward
    return function(completions=completions, **columns)
