"""Bad input at the entry points: one paragraph on stderr, exit code 2, no traceback (docs/bad_input.md lists them)."""

from __future__ import annotations

import json

import pytest
from conftest import entry_point, write_tiny_config

pytestmark = pytest.mark.usefixtures("offline")


def fails_cleanly(capsys, main, argv: list[str], *expected: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in message
    for text in expected:
        assert text in message, message
    return message


def test_evaluate_with_an_adapter_dir_that_holds_no_adapter(tmp_path, capsys):
    not_an_adapter = tmp_path / "notes"
    not_an_adapter.mkdir()
    (not_an_adapter / "readme.txt").write_text("hello")
    config = write_tiny_config(tmp_path)
    fails_cleanly(
        capsys, entry_point("evaluate"), [str(config), "--adapter", str(not_an_adapter)], "not a saved adapter"
    )


def test_a_countdown_data_file_with_a_target_that_is_not_a_number(tmp_path, capsys):
    rows = [{"target": 8, "nums": [3, 5]}, {"target": "abc", "nums": [3, 5]}, {"target": 9, "nums": [4, 5]}]
    source = tmp_path / "countdown.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = {"source": str(source), "train_samples": None, "test_samples": 1}
    config = write_tiny_config(tmp_path, data=data, output={"dir": str(tmp_path / "runs")})
    fails_cleanly(capsys, entry_point("run_eval_test"), [str(config)], "'abc'", "whole number")
    assert not (tmp_path / "runs").exists()


USER_REWARDS = """
import math, time

def inf_reward(completions, **kwargs):
    return [math.inf for _ in completions]

def short_reward(completions, **kwargs):
    return [1.0]

def hanging_reward(completions, **kwargs):
    while True:
        time.sleep(0.1)

calls = {"n": 0}

def late_nan_reward(completions, trainer_state=None, **kwargs):
    # Finite on the first batches, NaN for one completion from the third training step on.
    step = trainer_state.global_step if trainer_state is not None else -1
    return [math.nan if step >= 2 and i == 0 else 0.5 for i, _ in enumerate(completions)]
"""


def user_reward_config(tmp_path, function: str, **params):
    (tmp_path / "mine.py").write_text(USER_REWARDS)
    reward = {"name": function, "path": f"{tmp_path / 'mine.py'}:{function}", "params": params}
    return write_tiny_config(
        tmp_path,
        rewards=["hard_format_reward", reward],
        train={"num_epochs": 1},
        output={"dir": str(tmp_path / "runs")},
    )


@pytest.mark.parametrize(
    ("function", "params", "expected"),
    [
        ("inf_reward", {}, ["reward 'inf_reward'", "returned inf on its first batch"]),
        ("short_reward", {}, ["reward 'short_reward'", "one float (or None) per completion"]),
        ("hanging_reward", {"call_timeout_seconds": 1}, ["hanging_reward", "1"]),
    ],
)
def test_a_broken_user_reward_stops_the_run_before_training_naming_it(tmp_path, capsys, function, params, expected):
    """A reward returning inf used to train the whole run and crash at its end; one that hung was never stopped."""
    config = user_reward_config(tmp_path, function, **params)
    fails_cleanly(capsys, entry_point("run_eval_test"), [str(config)], *expected)
    (run_dir,) = (tmp_path / "runs").iterdir()
    metrics = run_dir / "metrics.jsonl"  # the zero-shot evaluation's first call stops it, before any record
    assert not metrics.exists() or '"type": "step"' not in metrics.read_text()


@pytest.mark.slow
def test_a_user_reward_that_turns_nan_later_is_counted_per_step_and_the_run_finishes(tmp_path):
    config = user_reward_config(tmp_path, "late_nan_reward")
    summary = entry_point("run_eval_test")([str(config), "--output-dir", str(tmp_path / "run")])
    assert summary["final"] is not None
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    counts = {row["step"]: row.get("rewards/non_finite/late_nan_reward", 0) for row in steps if row["type"] == "step"}
    assert counts == {1: 0, 2: 0, 3: 1, 4: 1}  # one NaN a step from step 3 (global_step 2) on, dropped to None
