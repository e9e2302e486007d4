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


# --- config values that TRL, transformers or torch would refuse: refused by the schema, before a run dir exists ---


def refused_before_run_dir(tmp_path, capsys, argv_tail: list[str], *expected: str, config=None) -> str:
    """run_eval_test on the tiny config (or `config`) exits 2 with one paragraph and leaves no run dir."""
    config = config or write_tiny_config(tmp_path, output={"dir": str(tmp_path / "runs")})
    message = fails_cleanly(capsys, entry_point("run_eval_test"), [str(config), *argv_tail], *expected)
    assert not (tmp_path / "runs").exists()
    return message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.learning_rate=inf", ["train.learning_rate", "finite number"]),
        ("train.learning_rate=.nan", ["train.learning_rate", "finite number"]),
        ("train.temperature=.inf", ["train.temperature", "finite number"]),
        ("eval.eval_temperature=.nan", ["eval.eval_temperature", "finite number"]),
        ("train.max_grad_norm=.inf", ["train.max_grad_norm", "finite number"]),
        ("train.max_steps=0", ["train.max_steps", "would train nothing", "-1"]),
        ("train.max_steps=-2", ["train.max_steps", "greater than or equal to -1"]),
        ("train.lr_scheduler_type=cosin", ["lr_scheduler_type 'cosin'", "did you mean 'cosine'", "constant"]),
        ("train.optim=adamw", ["optim 'adamw'", "adamw_torch", "auto"]),
    ],
)
def test_a_config_value_torch_or_transformers_would_refuse_is_refused_first(tmp_path, capsys, override, expected):
    """These passed validation and then crashed after the run dir existed (inf, unknown names) or ran (0 steps)."""
    refused_before_run_dir(tmp_path, capsys, ["--set", override], *expected)


def test_a_reward_weight_or_parameter_that_is_not_finite_is_refused(tmp_path, capsys):
    rewards = [{"name": "hard_format_reward", "weight": float("nan")}, "countdown_reward"]
    config = write_tiny_config(tmp_path, rewards=rewards, output={"dir": str(tmp_path / "runs")})
    refused_before_run_dir(tmp_path, capsys, [], "rewards.0.weight", "finite number", config=config)
    rewards = [{"name": "correctness_reward", "params": {"value": float("inf")}}]
    config = write_tiny_config(tmp_path, rewards=rewards, output={"dir": str(tmp_path / "runs")})
    refused_before_run_dir(tmp_path, capsys, [], "parameter 'value' must be a finite number", config=config)


def test_the_scheduler_and_optimizer_names_are_the_installed_transformers_own():
    from transformers import SchedulerType
    from transformers.training_args import OptimizerNames

    from train.config import transformers_names

    transformers_names.cache_clear()  # read from the enums now that transformers is imported; before, from source
    assert transformers_names("trainer_utils", "SchedulerType") == tuple(s.value for s in SchedulerType)
    assert transformers_names("training_args", "OptimizerNames") == tuple(o.value for o in OptimizerNames)


def test_a_key_given_twice_is_refused_naming_it_and_both_lines(tmp_path, capsys):
    """YAML keeps the last of two equal keys without a word: `data:` twice trained on the second."""
    config = write_tiny_config(tmp_path, output={"dir": str(tmp_path / "runs")})
    text = config.read_text()
    config.write_text(text + "data:\n  task: gsm8k\n")
    first = 1 + next(i for i, line in enumerate(text.splitlines()) if line.startswith("data:"))
    last = len(text.splitlines()) + 1
    refused_before_run_dir(
        tmp_path, capsys, [], "key 'data' is given twice", f"at line {first} and at line {last}", config=config
    )
    nested = text.replace("train:\n", "train:\n  beta: 0.5\n", 1)  # the tiny config sets train.beta too
    config.write_text(nested)
    refused_before_run_dir(tmp_path, capsys, [], "key 'beta' is given twice", config=config)


def test_a_sweep_with_a_key_given_twice_is_refused(tmp_path, capsys):
    base = write_tiny_config(tmp_path)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"base: {base}\ngrid:\n  train.beta: [0.0, 0.1]\ngrid:\n  train.seed: [1, 2]\n")
    fails_cleanly(capsys, entry_point("sweep"), [str(sweep)], "key 'grid' is given twice", "line 2 and at line 4")
