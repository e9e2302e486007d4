"""An evaluation's samples file, samples/<label>.jsonl: one JSON line per completion, greedy and sampled.

Each line: label, kind (greedy or sampled), index (the test prompt), sample, prompt, completion, num_tokens,
truncated, the row's gold columns, rewards (each reward's score, None where it did not apply), reward_total,
correct and outcome. Written batch by batch, so an interrupted evaluation keeps the samples it made;
experiments/score_rewards.py scores such a file again, the reports show a few of its completions, and the diagnosis
quotes one with the reason a reward gives for its score (`sample_explainer`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Sequence
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


# The keys a sample record has besides the row's gold columns (question, answer, target, numbers, ...).
RECORD_KEYS = frozenset(
    {"label", "kind", "index", "sample", "prompt", "completion", "num_tokens", "truncated", "rewards",
     "reward_total", "correct", "outcome"}
)  # fmt: skip


def reward_names(reward_funcs: Sequence[Callable[..., Any]]) -> list[str]:
    """Each reward's `__name__`; a name used twice (the same reward with other params) gets _2, _3, ... (the names
    of a sample's `rewards` and of the eval metrics reward/<name>)."""
    names: list[str] = []
    for func in reward_funcs:
        name = getattr(func, "__name__", type(func).__name__)
        unique, count = name, 1
        while unique in names:
            count += 1
            unique = f"{name}_{count}"
        names.append(unique)
    return names


def sample_explainer(reward_funcs: Sequence[Callable[..., Any]]) -> Callable[[str, dict[str, Any]], str | None]:
    """(reward name, sample record) -> the reward's reason for the sample's score, as score_rewards.py --explain
    gives it (`RewardFunction.explain`), or None for a reward that gives none or cannot score the sample."""
    by_name = dict(zip(reward_names(reward_funcs), reward_funcs, strict=True))

    def explain(name: str, sample: dict[str, Any]) -> str | None:
        func = by_name.get(name)
        if func is None or not getattr(func, "explains", False):
            return None
        columns = {key: [value] for key, value in sample.items() if key not in RECORD_KEYS}
        try:
            reasons = func.explain(
                prompts=[sample.get("prompt")], completions=[sample.get("completion", "")], **columns
            )
        except Exception:  # noqa: BLE001 - a reason is a courtesy: a reward that cannot give one gives none
            return None
        return (reasons[0] or None) if reasons else None

    return explain


def explainer_from_config(config: dict[str, Any]) -> Callable[[str, dict[str, Any]], str | None] | None:
    """`sample_explainer` for the rewards a run's config.yaml lists (None when it lists none, the task's default
    set, or one of them cannot be built here, say a user's reward file that moved)."""
    specs = config.get("rewards") if isinstance(config, dict) else None
    if not specs:
        return None
    from rewards import get_reward

    try:
        funcs = [get_reward(spec["name"], path=spec.get("path"), **(spec.get("params") or {})) for spec in specs]
    except Exception:  # noqa: BLE001 - the reasons are optional; the diagnosis goes on without them
        return None
    return sample_explainer(funcs)
