"""An evaluation's samples file, samples/<label>.jsonl: one JSON line per completion, greedy and sampled.

Each line: label, kind (greedy or sampled), index (the test prompt), sample, prompt, completion, num_tokens,
truncated, the row's gold columns, rewards (each reward's score, None where it did not apply), reward_total,
correct and outcome. Written batch by batch, so an interrupted evaluation keeps the samples it made;
experiments/score_rewards.py scores such a file again, and the reports show a few of its completions.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rewards.jsonl import read_jsonl


def samples_path(samples_dir: Path, label: str) -> Path:
    return Path(samples_dir) / f"{label}.jsonl"


@contextmanager
def samples_writer(path: Path | None) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """A function that appends records to the samples file as JSON lines (a no-op without a path)."""
    if path is None:
        yield lambda records: None
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as file:
        # Written batch by batch: an interrupted evaluation keeps the samples it made.
        yield lambda records: file.writelines(json.dumps(record, default=str) + "\n" for record in records)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The records of a samples file, [] when it is missing, by the one JSONL reader (rewards.jsonl.read_jsonl): an
    evaluation killed mid-write leaves a torn last line, which is left out; any other bad line is a JsonlError
    naming the file and the line."""
    if not Path(path).exists():
        return []
    return read_jsonl(path, torn_last_line=True).rows


def copy_samples(samples_dir: Path, label: str, to_label: str) -> None:
    """Give an evaluation reused under another label (the final one = the last epoch's) its samples file too."""
    source = samples_path(samples_dir, label)
    if source.exists():
        shutil.copyfile(source, samples_path(samples_dir, to_label))
