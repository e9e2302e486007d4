"""score_rewards --json gives what it gave before its runtime moved into the library (rewards/scoring.py).

The expected files were written by main's experiments/score_rewards.py (commit 0f3ed1b, before the move) on the
fixtures beside them: a run's samples (greedy and sampled, four prompts of the quickstart's epoch 1), the same with
the quickstart's rewards, a parameter and --explain, and answer rows with a user's reward file. Only the seconds
spent inside each reward differ from run to run; they are left out of the comparison.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import entry_point

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = "tests/fixtures/score_rewards"
CASES = {
    "samples": [f"{FIXTURES}/samples.jsonl"],
    "samples_config_explain": [
        f"{FIXTURES}/samples.jsonl",
        "--config",
        "experiment_configs/quickstart.yaml",
        "--explain",
        "--param",
        "countdown_reward.length_penalty_tokens=10",
    ],
    "answers": [
        f"{FIXTURES}/answers.jsonl",
        "--rewards",
        "correctness_reward,len_reward",
        "--reward-file",
        f"{FIXTURES}/my_rewards.py",
        "--param",
        "correctness_reward.value=2.0",
        "--explain",
    ],
}


def without_seconds(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: without_seconds(item) for key, item in value.items() if key != "seconds"}
    if isinstance(value, list):
        return [without_seconds(item) for item in value]
    return value


@pytest.mark.parametrize("case", list(CASES))
def test_score_rewards_json_is_unchanged_on_the_fixtures(case, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the expected output names the user's reward file by the relative path given
    assert entry_point("score_rewards")([*CASES[case], "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    expected = json.loads((ROOT / FIXTURES / f"{case}.expected.json").read_text())
    assert without_seconds(got) == without_seconds(expected)
