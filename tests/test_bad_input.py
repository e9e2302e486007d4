"""Bad input at the entry points: one paragraph on stderr, exit code 2, no traceback (docs/bad_input.md lists them)."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, entry_point, write_tiny_config

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
import math, sys, time

def raising_reward(completions, **kwargs):
    scores = []
    for text in completions:
        raise ValueError("no answer in " + repr(text))
    return scores

def exiting_reward(completions, **kwargs):
    sys.exit(0)

def none_reward(completions, **kwargs):
    return None

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

def training_raising_reward(completions, trainer_state=None, **kwargs):
    # Fine in the probe and the evaluations (no trainer_state), raises on every training batch.
    if trainer_state is not None:
        raise RuntimeError("gold column misread")
    return [0.5 for _ in completions]

def late_raising_reward(completions, trainer_state=None, **kwargs):
    # Raises on the third training step's batch only.
    if trainer_state is not None and trainer_state.global_step == 2:
        raise ZeroDivisionError("step 3")
    return [0.5 for _ in completions]
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
        ("none_reward", {}, ["reward 'none_reward'", "got NoneType"]),
        ("hanging_reward", {"call_timeout_seconds": 1}, ["hanging_reward", "did not return within 1 s"]),
        (
            "raising_reward",
            {},
            ["reward 'raising_reward'", "mine.py:raising_reward", "raised ValueError: no answer in", "mine.py:7"],
        ),
        ("exiting_reward", {}, ["reward 'exiting_reward'", "called sys.exit(0)", "mine.py:11", "never exit"]),
    ],
)
def test_a_broken_user_reward_stops_the_run_before_the_run_dir_naming_it(tmp_path, capsys, function, params, expected):
    """Its first call is a probe before the run dir opens: a reward that raised gave a traceback (rc 1), one that
    called sys.exit(0) ended the run with rc 0, and the other checks ran after the run dir was made."""
    config = user_reward_config(tmp_path, function, **params)
    message = fails_cleanly(capsys, entry_point("run_eval_test"), [str(config)], *expected)
    assert not (tmp_path / "runs").exists()
    if function in ("raising_reward", "exiting_reward"):
        assert "first call, made before anything trains" in message


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


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.seed=-1", ["train.seed = -1", "greater than or equal to 0"]),
        ("train.seed=4294967296", ["train.seed = 4294967296", "less than 4294967296"]),
        ("train.lr_scheduler_type=reduce_lr_on_plateau", ["train.lr_scheduler_type 'reduce_lr_on_plateau'", "eval"]),
        ("train.lr_scheduler_type=cosine_with_min_lr", ["train.lr_scheduler_type 'cosine_with_min_lr'", "min_lr"]),
        ("train.optim=galore_adamw", ["train.optim 'galore_adamw'", "galore_torch", "adamw_torch"]),
        ("train.temperature=1.0e-300", ["train.temperature = 1e-300", "greater than or equal to 0.01"]),
        ("eval.eval_temperature=1.0e-300", ["eval.eval_temperature = 1e-300", "greater than or equal to 0.01"]),
        ("train.gradient_accumulation_steps=8", ["16 prompts", "8 training prompts", "gradient_accumulation_steps"]),
        ("train.per_device_train_batch_size=40", ["10 prompts", "8 training prompts", "per_device_train_batch_size"]),
        ("train.num_threads=100000", ["train.num_threads 100000", "CPU"]),
        ("data.stop_strings=['🔥']", ["data.stop_strings", "'🔥'", "tokenizer"]),
        ("data.stop_strings=['']", ["data.stop_strings", "empty string"]),
        ("model.name=builtin:nope", ["unknown built-in model 'builtin:nope'"]),
        ("data.prompt_template=chat", ["has no chat template"]),
        ("train.vllm=colocate", ["train.vllm is colocate but vLLM is not installed"]),
        ("train.vllm_server=localhost:8000", ["train.vllm_server is set but vLLM is not installed"]),
        ("model.name=", ["model.name = ''", "at least 1 character"]),
    ],
)
def test_a_value_only_the_libraries_or_the_model_refuse_is_refused_before_the_run_dir(
    tmp_path, capsys, override, expected
):
    """Each of these passed validation and then failed (a traceback, or the right paragraph) after the run dir was
    created, which blocked a rerun with the same --output-dir."""
    if "vllm" in override and importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    refused_before_run_dir(tmp_path, capsys, ["--set", override], *expected)


def test_an_optimizer_whose_package_is_missing_is_refused_before_the_run_dir(tmp_path, capsys):
    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    refused_before_run_dir(
        tmp_path, capsys, ["--set", "train.optim=adamw_bnb_8bit"], "train.optim 'adamw_bnb_8bit'", "bitsandbytes"
    )


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        (["nothing"], ["model.target_modules", "'nothing'", "q_proj"]),
        ([], ["model.target_modules is empty", "q_proj"]),
    ],
)
def test_lora_target_modules_that_match_no_module_of_the_model_are_refused_before_the_run_dir(
    tmp_path, capsys, modules, expected
):
    config = write_tiny_config(
        tmp_path, model={"lora_rank": 8, "target_modules": modules}, output={"dir": str(tmp_path / "runs")}
    )
    refused_before_run_dir(tmp_path, capsys, [], *expected, config=config)


def test_a_model_dir_without_a_tokenizer_is_refused_before_the_run_dir(tmp_path, capsys):
    from train.models.builtin import build_tokenizer, random_tiny_model

    model_dir = tmp_path / "model"
    random_tiny_model(build_tokenizer(), hidden_size=32, num_layers=1, num_heads=2).save_pretrained(model_dir)
    config = write_tiny_config(
        tmp_path,
        model={"name": str(model_dir), "backend": "hf", "builtin": None},
        output={"dir": str(tmp_path / "runs")},
    )
    refused_before_run_dir(tmp_path, capsys, [], f"{model_dir}", "no tokenizer", config=config)


def test_a_reward_weight_past_float32_is_refused_before_the_run_dir(tmp_path, capsys):
    """A weight of 1e39 trained with reward inf (TRL sums the weighted rewards in float32)."""
    rewards = [{"name": "hard_format_reward", "weight": 1e39}, "countdown_reward"]
    config = write_tiny_config(tmp_path, rewards=rewards, output={"dir": str(tmp_path / "runs")})
    refused_before_run_dir(tmp_path, capsys, [], "rewards.0.weight is 1e+39", "float32", config=config)


ANCHOR_BOMB = (
    "{a: &a [x, x, x, x, x, x, x, x, x, x], b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], "
    + ", ".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]" for p, c in zip("bcdefg", "cdefgh", strict=True))
    + "}"
)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("&p {x: *p}", ["Reward 'mine'", "a value that holds itself"]),
        (ANCHOR_BOMB, ["Reward 'mine'", "more than 10000 values"]),
    ],
)
def test_reward_params_that_contain_themselves_or_expand_past_a_bound_are_refused_before_the_run_dir(
    tmp_path, capsys, params, expected
):
    """Params holding themselves (an alias inside its own anchor) failed once the run dir existed; 1 KB of nested
    anchors (10^8 values when expanded) exhausted the memory writing config.yaml."""
    (tmp_path / "mine.py").write_text(USER_REWARDS)
    rewards = [{"name": "mine", "path": f"{tmp_path / 'mine.py'}:late_nan_reward", "params": {}}]
    config = write_tiny_config(tmp_path, rewards=rewards, output={"dir": str(tmp_path / "runs")})
    config.write_text(config.read_text().replace("params: {}", f"params: {params}"))
    refused_before_run_dir(tmp_path, capsys, [], *expected, config=config)


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


# --- a user reward after its first call: exceptions counted, a reward that keeps failing stops, output captured ---

MOODY_REWARD = """
import sys

def moody_reward(completions, **kwargs):
    if any("boom" in text for text in completions):
        raise KeyError("boom")
    if any("exit" in text for text in completions):
        sys.exit(3)
    return [1.0 for _ in completions]

def noisy_reward(completions, **kwargs):
    print("x" * 1_000_000)
    print("y" * 10, file=sys.stderr)
    return [0.5 for _ in completions]
"""


def training_reward(tmp_path, function: str):
    from rewards import get_reward

    (tmp_path / "moody.py").write_text(MOODY_REWARD)
    reward = get_reward(function, path=f"{tmp_path / 'moody.py'}:{function}")
    reward.first_call_strict = True  # as build_rewards sets it for a training run
    return reward


def test_a_user_reward_that_raises_after_its_first_call_is_counted_and_three_failures_in_a_row_stop_it(
    tmp_path, capsys
):
    from rewards.core import RewardResultError, UserRewardRaised

    reward = training_reward(tmp_path, "moody_reward")
    assert reward(completions=["a", "b"]) == [1.0, 1.0]  # the first call (the probe) succeeds
    assert reward(completions=["boom", "b", "c"]) == [None, None, None]
    assert reward(completions=["exit"]) == [None]  # sys.exit(3) is caught as such, not an end of the run
    assert (reward.error_count, reward.failing_calls) == (4, 2)
    warning = " ".join(capsys.readouterr().err.split())
    assert warning.count("warning:") == 1 and "raised KeyError: 'boom'" in warning and "rewards/errors/moody" in warning
    assert reward(completions=["fine"]) == [1.0]  # a good batch resets the run of failures
    assert reward.failing_calls == 0
    reward(completions=["boom"])
    reward(completions=["boom"])
    with pytest.raises(RewardResultError, match="failed on 3 batches in a row") as stopped:
        reward(completions=["boom"])
    assert "--resume" in str(stopped.value) and reward.error_count == 7
    outside_training = get_user_reward_untouched(tmp_path)  # the CLI and evaluate.py: the first error is the error
    with pytest.raises(UserRewardRaised, match=r"moody.py:6 in moody_reward"):
        outside_training(completions=["boom"])


def get_user_reward_untouched(tmp_path):
    from rewards import get_reward

    return get_reward("moody_reward", path=f"{tmp_path / 'moody.py'}:moody_reward")


def test_a_user_reward_that_floods_the_console_is_captured_shown_once_and_counted(tmp_path, capsys):
    reward = training_reward(tmp_path, "noisy_reward")
    assert reward(completions=["a"]) == [0.5]
    assert reward(completions=["a"]) == [0.5]
    out, err = capsys.readouterr()
    assert out == ""  # nothing of the megabyte reached stdout
    assert "printed 1000012 characters in one call; the first 2048 follow" in err
    assert "x" * 2048 in err and "x" * 2049 not in err and err.count("characters in one call") == 1
    assert reward.printed_chars == 2 * 1_000_012


PROCESS_REWARDS = """
import os, sys, threading, time

def fd_writer(completions, **kwargs):
    os.write(1, b"z" * 3000)
    os.write(2, b"w" * 10)
    thread = threading.Thread(target=lambda: os.write(1, b"t" * 5))
    thread.start()
    thread.join()
    return [0.5 for _ in completions]

def mover(completions, **kwargs):
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    return [1.0 for _ in completions]

def closer(completions, **kwargs):
    os.close(1)
    return [1.0 for _ in completions]

def leaves_a_printer(completions, **kwargs):
    def chatter():
        time.sleep(0.2)  # after the call has returned
        for _ in range(20):
            print("tick")
            time.sleep(0.01)
    threading.Thread(target=chatter, name="chatter", daemon=True).start()
    return [1.0 for _ in completions]

def replacer(completions, **kwargs):
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 2)
    os.close(fd)
    return [1.0 for _ in completions]
"""


def process_reward(tmp_path, function: str):
    from rewards import get_reward

    (tmp_path / "process.py").write_text(PROCESS_REWARDS)
    reward = get_reward(function, path=f"{tmp_path / 'process.py'}:{function}")
    reward.first_call_strict = True
    return reward


def test_a_user_reward_writing_to_file_descriptors_or_from_threads_is_captured_and_counted(tmp_path, capfd):
    """os.write(1, ...) and a thread's writes went around the sys.stdout capture, straight to the console."""
    reward = process_reward(tmp_path, "fd_writer")
    assert reward(completions=["a"]) == [0.5]
    assert reward(completions=["a"]) == [0.5]
    out, err = capfd.readouterr()
    assert out == "" and "z" * 2049 not in err
    assert "fd_writer' (" in err and "printed 3015 characters in one call; the first 2048 follow" in err
    assert reward.printed_chars == 2 * 3015
    print("after")  # fds 1 and 2 are back where they were
    assert capfd.readouterr().out == "after\n"


def test_a_thread_a_user_reward_leaves_running_prints_into_its_count_not_the_console(tmp_path, capsys):
    """A thread the reward started and left running printed over the run's console after the call returned."""
    import threading

    reward = process_reward(tmp_path, "leaves_a_printer")
    assert reward(completions=["a"]) == [1.0]
    for thread in threading.enumerate():
        if thread.name == "chatter":
            thread.join(timeout=30)
    print("the run's own line")
    out, err = capsys.readouterr()
    assert "tick" not in out and "tick" not in err
    assert out == "the run's own line\n"
    assert "left a thread running after its call (chatter) that prints" in err and err.count("left a thread") == 1
    assert "rewards/printed_chars/leaves_a_printer" in err
    assert reward.printed_chars == 20 * len("tick\n")


@pytest.mark.parametrize(
    ("function", "fragment"),
    [
        ("mover", "changed the current directory from"),
        ("closer", "closed file descriptor 1 (stdout)"),
        ("replacer", "replaced file descriptor 2 (stderr) with another file"),
    ],
)
def test_a_user_reward_that_moves_the_directory_or_closes_stdout_is_undone_and_counted_as_its_failure(
    tmp_path, monkeypatch, capfd, function, fragment
):
    """A reward's os.chdir moved the run dir's relative paths, and os.close(1) silenced or ended the run."""
    from rewards.core import UserRewardRaised

    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    reward = process_reward(tmp_path, function)
    with pytest.raises(UserRewardRaised, match=rf"reward '{function}' .*{re.escape(fragment)}.*it was put back"):
        reward(completions=["a"])  # the first call of a training run: the error, exit 2
    assert os.getcwd() == str(tmp_path / "work")
    reward.calls, reward.first_call_strict = 1, True
    assert reward(completions=["a"]) == [None]  # later: the batch is the reward's failure, counted
    assert reward.error_count == 1 and os.getcwd() == str(tmp_path / "work")
    print("still here")
    print("and here", file=sys.stderr)
    out, err = capfd.readouterr()
    assert out == "still here\n" and "and here" in err and fragment in err


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("moody_reward", ["reward 'moody_reward'", "raised KeyError: 'boom'", "moody.py:6 in moody_reward"]),
        ("moody_reward", ["reward 'moody_reward'", "called sys.exit(3)", "moody.py:8 in moody_reward"]),
    ],
)
def test_score_rewards_with_a_user_reward_that_raises_or_exits_is_one_paragraph(tmp_path, capsys, function, expected):
    """It used to print a traceback (exit 1) for a raise, and to end with the reward's own exit code for sys.exit."""
    (tmp_path / "moody.py").write_text(MOODY_REWARD)
    completion = "boom" if "KeyError" in expected[1] else "exit"
    argv = ["--completion", completion, "--rewards", f"{tmp_path / 'moody.py'}:{function}"]
    assert entry_point("score_rewards")(argv) == 2
    out, err = capsys.readouterr()
    message = " ".join(err.split())
    assert "Traceback" not in err and out == "" and len(err.strip().splitlines()) == 1
    for text in expected:
        assert text in message, message


def test_score_rewards_shows_the_head_of_what_a_reward_prints_once(tmp_path, capsys):
    (tmp_path / "moody.py").write_text(MOODY_REWARD)
    argv = ["--completion", "a", "--rewards", f"{tmp_path / 'moody.py'}:noisy_reward", "--json"]
    assert entry_point("score_rewards")(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["rows"][0]["rewards"] == {"noisy_reward": 0.5}  # stdout holds the JSON alone
    assert "printed 1000012 characters in one call" in err and len(err) < 3000


@pytest.mark.slow
def test_a_user_reward_that_raises_once_during_training_is_counted_per_step_and_the_run_finishes(tmp_path, capsys):
    config = user_reward_config(tmp_path, "late_raising_reward")
    summary = entry_point("run_eval_test")([str(config), "--output-dir", str(tmp_path / "run")])
    assert summary["final"] is not None
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lost = {row["step"]: row.get("rewards/errors/late_raising_reward", 0) for row in steps if row["type"] == "step"}
    assert lost == {1: 0, 2: 0, 3: 8, 4: 0}  # the 8 completions of step 3, scored None
    assert capsys.readouterr().err.count("raised ZeroDivisionError: step 3") == 1


# --- corrupt state: what a resume, a report or a comparison reads is named with its line, never skipped silently ---

REPORT_RUN = Path(__file__).resolve().parent / "fixtures" / "report_run"


def report_run(tmp_path) -> Path:
    path = tmp_path / "run"
    shutil.copytree(REPORT_RUN, path)
    return path


def garble_line(path: Path, number: int, garbage: str = "}{ not json") -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = garbage + "\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize("script", ["report", "compare"])
@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("garbage line", ["metrics.jsonl line 2 is not JSON", "Delete or repair that line"]),
        ("not a record", ["metrics.jsonl line 2 is not a record of this run", '"type"']),
        ("summary", ["summary.json is not valid JSON (line 1, column 1", "Delete it"]),
        ("summary list", ["summary.json holds a JSON list"]),
        ("evals an int", ['its "evals" is a number (5), not an object of evaluations by label', "Delete it"]),
        ("an eval a string", ['its evaluation "zero_shot" is a string ("x"), not an object of metrics']),
        ("eval without a label", ['metrics.jsonl line 1 is bad (an evaluation without its "label"']),
        ("config list", ["config.yaml holds a YAML list, not the run's config", "Restore the run's config.yaml"]),
    ],
)
def test_a_report_or_comparison_of_a_corrupt_run_names_the_file_and_line(tmp_path, capsys, script, damage, expected):
    """Both used to exit 0, skipping the bad line or reporting without the summary's figures."""
    run = report_run(tmp_path)
    if damage == "garbage line":
        garble_line(run / "metrics.jsonl", 2)
    elif damage == "not a record":
        garble_line(run / "metrics.jsonl", 2, '{"loss": 0.5}')
    elif damage == "config list":  # it used to give a table of "-"
        (run / "config.yaml").write_text("[]\n")
    elif damage == "summary":
        (run / "summary.json").write_text("<html>oops</html>\n")
    elif damage in ("evals an int", "an eval a string"):  # an AttributeError traceback in both scripts
        summary = json.loads((run / "summary.json").read_text())
        summary["evals"] = 5 if damage == "evals an int" else {**summary["evals"], "zero_shot": "x"}
        (run / "summary.json").write_text(json.dumps(summary))
    elif damage == "eval without a label":  # skipped without a word
        garble_line(run / "metrics.jsonl", 1, '{"type": "eval", "step": 0, "epoch": 0.0, "eval/pass@1": 0.1}')
    else:
        (run / "summary.json").write_text("[1, 2]\n")
    before = sorted(p.name for p in run.iterdir())
    fails_cleanly(capsys, entry_point(script), [str(run)], *expected)
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written beside it


def test_compare_refuses_an_unknown_best_by_naming_the_known_columns(tmp_path, capsys):
    """It used to be ignored: no row marked best, exit 0."""
    first, second = report_run(tmp_path), tmp_path / "other"
    shutil.copytree(REPORT_RUN, second)
    argv = [str(first), str(second), "--best-by=-final_pas@1"]
    fails_cleanly(
        capsys,
        entry_point("compare"),
        argv,
        "--best-by 'final_pas@1' is not a table column id",
        "did you mean final_pass@1?",
        "wall_seconds",
    )


def resumable_run(tmp_path, metrics_tail: str) -> Path:
    """A run dir that a resume takes back (config.yaml, the zero-shot record, two steps), no checkpoint yet."""
    from train.config import load_config

    path = tmp_path / "run"
    path.mkdir()
    cfg = load_config(write_tiny_config(tmp_path))
    (path / "config.yaml").write_text(cfg.to_yaml())
    records = [
        {"type": "eval", "label": "zero_shot", "step": 0, "epoch": 0, "eval/pass@1": 0.25},
        {"type": "step", "step": 1, "epoch": 0.25, "loss": 0.1},
        {"type": "step", "step": 2, "epoch": 0.5, "loss": 0.2},
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in records) + metrics_tail)
    return path


def test_a_resume_refuses_a_metrics_line_that_is_not_a_record_naming_it(tmp_path, capsys):
    """It used to continue (rc 0), the line dropped without a word, or to stop with a traceback."""
    run = resumable_run(tmp_path, '{"type": "step", "step": 3}\n')
    garble_line(run / "metrics.jsonl", 2, "garbage")
    before = (run / "metrics.jsonl").read_text()
    message = fails_cleanly(
        capsys,
        entry_point("run_eval_test"),
        [str(write_tiny_config(tmp_path)), "--output-dir", str(run), "--resume"],
        "metrics.jsonl line 2 is not JSON",
        "'garbage'",
        "then --resume again",
    )
    assert "repaired" not in message and (run / "metrics.jsonl").read_text() == before  # left as it was


def test_a_resume_repairs_a_torn_last_line_and_says_so(tmp_path, capsys):
    from train.config import load_config
    from train.records.rundir import RunDir

    run = resumable_run(tmp_path, '{"type": "step", "step": 3, "epo')  # a kill mid-write: no newline
    chosen = RunDir.choose(load_config(run / "config.yaml"), run, resume=True)
    assert chosen.open() is None  # no checkpoint: training restarts, the zero-shot record is kept
    chosen.close()
    said = " ".join(capsys.readouterr().err.split())
    assert "repaired" in said and "its last line (line 4) was cut off mid-write" in said
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0]


# --- a destination that refuses writes (read-only, no permission, full): exit 2 and the path ---
# Root ignores chmod, so a read-only destination is simulated where the write happens: every open for writing,
# os.open with a write flag and mkdir under `root` raise the OSError a read-only mount (or a full disk) raises.


def refuse_writes_under(monkeypatch, root: Path, code: int = errno.EROFS) -> None:
    import builtins
    import io

    root = Path(root).resolve()

    def refused(path) -> bool:
        try:
            return Path(os.fsdecode(path)).resolve().is_relative_to(root)
        except (TypeError, ValueError):
            return False

    def deny(path):
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, str | bytes | os.PathLike) and any(c in mode for c in "wax+") and refused(file):
            deny(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and refused(path):
            deny(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if refused(path):
            deny(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)


def test_a_report_into_a_read_only_run_dir_names_the_path(tmp_path, capsys, monkeypatch):
    run = report_run(tmp_path)
    refuse_writes_under(monkeypatch, run)
    fails_cleanly(capsys, entry_point("report"), [str(run)], f"cannot write {run}", "Read-only file system")


@pytest.mark.parametrize("flag", ["--csv", "--markdown"])
def test_a_comparison_table_into_a_read_only_dir_names_the_path(tmp_path, capsys, monkeypatch, flag):
    run = report_run(tmp_path)
    (tmp_path / "ro").mkdir()
    refuse_writes_under(monkeypatch, tmp_path / "ro")
    out = tmp_path / "ro" / "table.txt"
    fails_cleanly(capsys, entry_point("compare"), [str(run), flag, str(out)], f"cannot write {out}", "Read-only")


def test_a_comparison_table_onto_a_full_disk_names_the_path_without_resume_advice(tmp_path, capsys, monkeypatch):
    run = report_run(tmp_path)
    (tmp_path / "full").mkdir()
    refuse_writes_under(monkeypatch, tmp_path / "full", errno.ENOSPC)
    out = tmp_path / "full" / "table.csv"
    message = fails_cleanly(
        capsys, entry_point("compare"), [str(run), "--csv", str(out)], f"no space left on device while writing {out}"
    )
    assert "--resume" not in message and "run again" in message


def saved_full_weights_run(tmp_path) -> Path:
    """A run dir as open_run reads it: config.yaml and a full fine-tune's adapter/ (config.json and weights)."""
    from train.config import load_config

    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "config.yaml").write_text(load_config(write_tiny_config(tmp_path)).to_yaml())
    (run / "adapter" / "config.json").write_text("{}")
    (run / "adapter" / "model.safetensors").write_bytes(b"weights")
    return run


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_an_export_to_a_read_only_or_full_destination_is_refused_before_it_writes(tmp_path, capsys, monkeypatch, code):
    """It used to fail with a traceback in the middle of writing (rc 1), after loading the model."""
    run = saved_full_weights_run(tmp_path)
    (tmp_path / "ro").mkdir()
    refuse_writes_under(monkeypatch, tmp_path / "ro", code)
    out = tmp_path / "ro" / "merged"
    fails_cleanly(
        capsys,
        entry_point("export"),
        [str(run), "--merged", str(out)],
        f"cannot write --merged {out}",
        os.strerror(code),
    )
    assert not out.exists()


def test_a_write_refused_in_the_middle_of_a_run_names_the_path_and_the_resume(tmp_path, capsys, monkeypatch):
    """The run dir was writable when the run began (its probe passed) and a later write is refused."""
    from train.errors import exit_on_user_error, note_output_dir

    run = tmp_path / "run"
    run.mkdir()

    @exit_on_user_error
    def main(argv):
        note_output_dir(run)  # as RunDir.open does
        (run / "samples").mkdir()
        refuse_writes_under(monkeypatch, run, errno.EACCES)
        (run / "samples" / "epoch_1.jsonl").write_text("{}\n")

    fails_cleanly(
        capsys, main, [], f"cannot write {run / 'samples' / 'epoch_1.jsonl'}", "Permission denied", "--resume"
    )


@pytest.mark.slow
def test_a_user_reward_that_raises_on_every_training_batch_stops_the_run_after_three(tmp_path, capsys):
    config = user_reward_config(tmp_path, "training_raising_reward")
    message = fails_cleanly(
        capsys,
        entry_point("run_eval_test"),
        [str(config), "--output-dir", str(tmp_path / "run")],
        "reward 'training_raising_reward'",
        "failed on 3 batches in a row",
        "raised RuntimeError: gold column misread",
        "--resume",
    )
    assert message.count("warning:") == 1  # the first failure warned once; the third stopped the run
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lost = [row["rewards/errors/training_raising_reward"] for row in steps if row["type"] == "step"]
    assert lost == [8, 8]  # steps 1 and 2 were logged with their 8 lost scores; step 3's call stopped the run


# --- data files: every row checked before the run dir exists, naming the file and the line ---


def data_file_config(tmp_path, lines: list[str], task: str = "jsonl", **data):
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8", errors="surrogatepass")
    rewards = ["countdown_reward"] if task == "countdown" else ["hard_format_reward"]
    data = {"task": task, "source": str(source), "options": None, "train_samples": None, "test_samples": 1, **data}
    config = write_tiny_config(tmp_path, data=data, rewards=rewards, output={"dir": str(tmp_path / "runs")})
    raw = yaml.safe_load(config.read_text())
    raw["data"]["options"] = {"extra_columns": ["level"]} if task == "jsonl" else {}
    config.write_text(yaml.safe_dump(raw))
    return config


GOOD = '{"question": "1 + 1", "answer": "2", "level": 1}'


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ('{"question": "2 + 2", "level": 1}', ["rows.jsonl", "line 2 has no column 'answer'"]),
        ('{"question": null, "answer": "4", "level": 1}', ["line 2: 'question' is null, not text or a number"]),
        ('{"question": "2 + 2", "answer": null, "level": 1}', ["line 2: 'answer' is null"]),
        ('{"question": ["2 + 2"], "answer": "4", "level": 1}', ["line 2: 'question' is a list"]),
        ('{"question": "2 + 2", "answer": "4", "level": "hard"}', ["line 2: 'level' is text, but a number at line 1"]),
        ('{"question": "2 + 2 \\ud800", "answer": "4", "level": 1}', ["rows.jsonl line 2 holds a lone surrogate"]),
        ('{"question": "' + "x" * 1_000_001 + '", "answer": "4", "level": 1}', ["line 2 is longer than 1,000,000"]),
        (  # JSON keeps the last "answer" without a word: the gold was "5", the row's author meant one of the two
            '{"question": "2 + 2", "answer": "4", "level": 1, "answer": "5"}',
            ["rows.jsonl has 1 bad line(s): line 2: key 'answer' appears twice in one object"],
        ),
    ],
)
def test_a_data_file_row_after_the_first_is_checked_and_named_by_its_line(tmp_path, capsys, bad_line, expected):
    """Only the first row was checked: a later row missing a column, a null (which became the prompt or gold
    "None"), a list, mixed types (a pyarrow traceback), a lone surrogate or a 60 MB line failed or hung later."""
    config = data_file_config(tmp_path, [GOOD, bad_line, GOOD, GOOD])
    refused_before_run_dir(tmp_path, capsys, [], *expected, config=config)


def test_countdown_numbers_past_2_to_the_53_are_refused_before_the_run_dir(tmp_path, capsys):
    rows = ['{"target": 8, "nums": [3, 5]}', '{"target": 9, "nums": [1e29, 5]}', '{"target": 7, "nums": [2, 5]}']
    config = data_file_config(tmp_path, rows, task="countdown")
    refused_before_run_dir(tmp_path, capsys, [], "1e+29", "is past 9,007,199,254,740,992 (2**53)", config=config)


def test_a_generated_split_past_a_million_problems_is_refused_before_the_run_dir(tmp_path, capsys):
    """data.test_samples=100000000 on a generated task hung drawing problems."""
    refused_before_run_dir(
        tmp_path, capsys, ["--set", "data.test_samples=100000000"], "would generate 100,000,000 problems"
    )


def test_the_countdown_solver_gives_up_on_seven_numbers_in_bounded_time():
    """A row of 7 numbers without a solution searched for over 120 s (6 numbers: 25 s on a busy CPU)."""
    import time

    from train.tasks.countdown import solve

    started = time.monotonic()
    assert solve([2, 3, 5, 7, 11, 13, 17], 999983) is None
    assert solve([2, 3, 5, 7, 11, 13], 999983) is None
    assert time.monotonic() - started < 5
    assert solve([25, 50, 75, 100], 125) is not None  # a small row is still solved


# --- user rewards: whatever they return or raise, at import or call, is named as theirs ---

HOSTILE_REWARDS = """
import fractions, sys

def huge_reward(completions, **kwargs):
    return [10**400 for _ in completions]

def fraction_reward(completions, **kwargs):
    return [fractions.Fraction(10**400, 3) for _ in completions]

def interrupting_reward(completions, **kwargs):
    raise KeyboardInterrupt

def ranged_reward(completions, **kwargs):
    return [0.5 for _ in completions]

ranged_reward.value_range = "0..1"

def columned_reward(completions, **kwargs):
    return [0.5 for _ in completions]

columned_reward.required_columns = 5
"""


@pytest.mark.parametrize(
    ("function", "code", "expected"),
    [
        ("huge_reward", 0, ["huge_reward: 1 score(s) were inf or NaN, left out"]),
        ("fraction_reward", 0, ["fraction_reward: 1 score(s) were inf or NaN, left out"]),
        ("interrupting_reward", 2, ["reward 'interrupting_reward'", "raised KeyboardInterrupt", "no Ctrl-C pressed"]),
        ("ranged_reward", 2, ["value_range attribute must be two numbers", "'0..1'"]),
        ("columned_reward", 2, ["required_columns attribute must be a list of column names", "got 5"]),
    ],
)
def test_score_rewards_names_what_a_hostile_user_reward_returns_or_raises(tmp_path, capsys, function, code, expected):
    """10**400 and a Fraction past float's range, a KeyboardInterrupt raised by the reward, a value_range or
    required_columns that is not what it should be: each was a traceback."""
    (tmp_path / "hostile.py").write_text(HOSTILE_REWARDS)
    argv = ["--completion", "<answer>1</answer>", "--rewards", f"{tmp_path / 'hostile.py'}:{function}"]
    assert entry_point("score_rewards")(argv) == code
    out, err = capsys.readouterr()
    message = " ".join((out + err).split())
    assert "Traceback" not in message
    for text in expected:
        assert text in message, message


def test_a_reward_that_returns_a_non_number_or_interrupts_in_training_counts_as_its_failure(tmp_path, capsys):
    """After its first call a training run counts these and goes on (they were tracebacks that ended the run)."""
    from rewards import get_reward
    from rewards.core import RewardResultError

    (tmp_path / "hostile.py").write_text(HOSTILE_REWARDS)
    huge = get_reward("huge", path=f"{tmp_path / 'hostile.py'}:huge_reward")
    huge.first_call_strict = True
    with pytest.raises(RewardResultError, match="returned 1000000.* on its first batch"):
        huge(completions=["a"])
    assert huge(completions=["a", "b"]) == [None, None] and huge.non_finite_count == 2
    interrupting = get_reward("interrupting", path=f"{tmp_path / 'hostile.py'}:interrupting_reward")
    interrupting.first_call_strict = True
    interrupting.calls = 1  # past its first call
    assert interrupting(completions=["a"]) == [None] and interrupting.error_count == 1
    assert "raised KeyboardInterrupt" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source", "params", "expected"),
    [
        ("import sys\nsys.exit(0)\n", {}, ["Importing reward file", "called sys.exit(0)", "mine.py:2"]),
        ("raise KeyboardInterrupt\n", {}, ["Importing reward file", "KeyboardInterrupt", "mine.py:1"]),
        ("import time\ntime.sleep(30)\n", {"call_timeout_seconds": 1}, ["did not finish within 1 s"]),
        (
            "",
            {"call_timeout_seconds": float("inf")},
            ["call_timeout_seconds must be a positive number of seconds, and finite"],
        ),
    ],
)
def test_a_reward_file_that_exits_interrupts_or_sleeps_at_import_is_refused_before_the_run_dir(
    tmp_path, capsys, source, params, expected
):
    """sys.exit(0) at import ended the run with exit code 0 and no word; a KeyboardInterrupt was a traceback; a
    file that sleeps at import held the run; call_timeout_seconds .inf crashed the watchdog and ran unbounded."""
    (tmp_path / "mine.py").write_text(
        source + "def mine(completions, **kwargs):\n    return [0.5 for _ in completions]\n"
    )
    rewards = [{"name": "mine", "path": f"{tmp_path / 'mine.py'}:mine", "params": params}]
    config = write_tiny_config(tmp_path, rewards=rewards, output={"dir": str(tmp_path / "runs")})
    refused_before_run_dir(tmp_path, capsys, [], *expected, config=config)


STUBBORN = """
import os, time

def stubborn_loop():
    while True:  # catches the time limit's interruption every time
        try:
            time.sleep(100)
        except BaseException:
            pass
"""


def run_script(script: str, argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """An entry point in a process of its own (one whose end the test must see), under the test's own bound."""
    command = [sys.executable, str(ROOT / "experiments" / f"{script}.py"), *argv]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


@pytest.mark.parametrize("where", ["call", "import"])
def test_a_user_reward_that_catches_its_time_limit_ends_the_process_naming_it(tmp_path, where):
    """A reward that caught BaseException past its timeout hung the run for good: the limit only ever interrupted
    it once. Now interrupted every 0.5 s, and 2 s past its 0.5 s limit the process ends with exit 2."""
    body = "stubborn_loop()\n" if where == "import" else ""
    (tmp_path / "mine.py").write_text(STUBBORN + body + "\ndef mine(completions, **kwargs):\n    stubborn_loop()\n")
    (tmp_path / "exp.yaml").write_text(
        "rewards:\n  - {name: mine, path: mine.py:mine, params: {call_timeout_seconds: 0.5}}\n"
    )
    done = run_script("score_rewards", ["--completion", "x", "--answer", "x", "--config", "exp.yaml"], tmp_path)
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert "Traceback" not in message
    named = "reward 'mine' (mine.py:mine)" if where == "call" else f"importing reward file {tmp_path / 'mine.py'}"
    assert f"error: {named} was still running 2.5 s after it started" in message, message
    assert "interrupted at its 0.5 s limit (call_timeout_seconds)" in message
    assert "Catch Exception, not BaseException" in message


@pytest.mark.slow
@pytest.mark.usefixtures("offline")
def test_a_reward_that_turns_stubborn_mid_run_ends_it_and_the_run_resumes_once_fixed(tmp_path):
    """The hard stop mid-run is a kill with a message: what was logged is kept, --resume finishes the run."""
    (tmp_path / "mine.py").write_text(
        STUBBORN + "\ncalls = [0]\n\ndef mine(completions, **kwargs):\n    calls[0] += 1\n"
        "    if calls[0] > 3:  # past the probe and the first steps\n        stubborn_loop()\n"
        "    return [0.5 for _ in completions]\n"
    )
    reward = {"name": "mine", "path": f"{tmp_path / 'mine.py'}:mine", "params": {"call_timeout_seconds": 0.5}}
    config = write_tiny_config(tmp_path, rewards=["hard_format_reward", reward], train={"num_epochs": 1})
    run_dir = tmp_path / "run"
    stopped = run_script("run_eval_test", [str(config), "--output-dir", str(run_dir)], tmp_path, timeout=600)
    assert stopped.returncode == 2 and "was still running 2.5 s after it started" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    logged = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert logged and json.loads(logged[0])["label"] == "zero_shot"
    (tmp_path / "mine.py").write_text("def mine(completions, **kwargs):\n    return [0.5 for _ in completions]\n")
    resumed = run_script("run_eval_test", [str(config), "--output-dir", str(run_dir), "--resume"], tmp_path, 600)
    assert resumed.returncode == 0, resumed.stderr
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in rows if row["type"] == "step"]
    assert steps == list(range(1, len(steps) + 1)) and steps
    assert [row["label"] for row in rows if row["type"] == "eval"] == ["zero_shot", "epoch_1", "final"]


AXES = [f"train.{key}" for key in ("seed", "num_epochs", "max_steps", "num_iterations", "logging_steps")] + [
    f"eval.{key}" for key in ("seed", "batch_size", "every_steps", "num_samples", "max_new_tokens")
]


@pytest.mark.parametrize(
    ("sweep_body", "expected"),
    [
        ("grid:\n  train.beta: [0.0, 0.1]\nrepeats: 100000000\n", ["asks for 200,000,000 runs", "more than 1,000"]),
        (
            "grid:\n" + "".join(f"  {key}: [{', '.join(str(v) for v in range(1, 11))}]\n" for key in AXES),
            ["asks for 10,000,000,000 runs", "10 x 10 x 10"],
        ),
    ],
)
def test_a_sweep_past_a_thousand_runs_is_refused_before_it_is_expanded(tmp_path, capsys, sweep_body, expected):
    """repeats: 10^8, or a grid of 10 axes of 10 values, hung sweep.py (even --dry-run) expanding every run."""
    base = write_tiny_config(tmp_path)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"base: {base}\n{sweep_body}")
    fails_cleanly(capsys, entry_point("sweep"), [str(sweep), "--dry-run"], *expected)


@pytest.mark.parametrize("script", ["report", "compare"])
def test_a_record_whose_epoch_is_null_is_named_not_a_traceback(tmp_path, capsys, script):
    """report.py drew its epoch plot with int(None) (a traceback); compare.py tabled it silently."""
    run = report_run(tmp_path)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if '"type": "epoch"' in line)
    record = json.loads(lines[number])
    garble_line(run / "metrics.jsonl", number + 1, json.dumps({**record, "epoch": None}))
    fails_cleanly(capsys, entry_point(script), [str(run)], "the epoch record of step 3 has epoch None, not a number")


def test_a_report_of_a_run_whose_samples_file_is_binary_names_it(tmp_path, capsys):
    run = report_run(tmp_path)
    (run / "samples" / "zero_shot.jsonl").write_bytes(bytes(range(256)) * 4)
    fails_cleanly(capsys, entry_point("report"), [str(run)], "zero_shot.jsonl has 4 bad line(s)", "not UTF-8")


def test_a_report_flags_step_records_out_of_order_in_one_line_and_a_warning(tmp_path, capsys):
    """Two runs interleaved in one metrics.jsonl were drawn as loops without a word."""
    run = report_run(tmp_path)
    clean = entry_point("report")([str(run)])
    assert "out of order" not in capsys.readouterr().err and "out of order" not in (run / "report.md").read_text()
    with (run / "metrics.jsonl").open("a") as metrics:  # another run's first two steps, appended after ours
        for step in (1, 2):
            metrics.write(json.dumps({"type": "step", "step": step, "epoch": step / 3, "loss": 0.5}) + "\n")
    assert entry_point("report")([str(run)]) == clean
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err and err.count("out of order") == 1
    assert "metrics.jsonl has step records out of order: line 14 records step 1 after step 6 (line 9)" in err
    assert "such records in all" not in err  # step 2 after step 1 is in order again
    for report in ("report.md", "report.html"):
        text = " ".join((run / report).read_text().split())
        assert text.count("step records out of order") == 1, report
        assert "line 14 records step 1 after step 6 (line 9)" in text, report


def test_a_comparison_table_into_a_directory_is_refused_before_it_writes(tmp_path, capsys):
    run = report_run(tmp_path)
    (tmp_path / "tables").mkdir()
    fails_cleanly(capsys, entry_point("compare"), [str(run), "--csv", str(tmp_path / "tables")], "is a directory")


@pytest.mark.parametrize(
    ("config_json", "expected"),
    [
        ("{not json", ["cannot read the model config", "config.json", "Expecting property name"]),
        ("[1, 2]", ["lacks what the memory planner needs"]),
        (
            json.dumps({"hidden_size": 0, "num_hidden_layers": 0, "num_attention_heads": 0, "vocab_size": 0}),
            ["gives a model of no size (layers 0, hidden 0"],
        ),
    ],
)
def test_plan_memory_names_a_model_config_that_is_not_json_or_of_no_size(tmp_path, capsys, config_json, expected):
    """A config.json that is not JSON was a JSONDecodeError traceback, one of zeros a ZeroDivisionError."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(config_json)
    config = write_tiny_config(tmp_path, model={"name": str(model), "builtin": None})
    fails_cleanly(capsys, entry_point("plan_memory"), [str(config)], *expected)


def test_a_sweep_report_of_a_state_file_with_a_run_without_a_name_names_it(tmp_path, capsys):
    """report.py on a sweep dir whose state lists a run with no name was a KeyError traceback."""
    from train.lab.reports.sweep_report import STATE_FILE

    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    (sweep_dir / STATE_FILE).write_text(json.dumps({"name": "s", "runs": [{"group": "beta=0", "status": "done"}]}))
    fails_cleanly(
        capsys, entry_point("report"), [str(sweep_dir)], f"{STATE_FILE}: run 1 of its list has no usable name"
    )


def saved_lora_run(tmp_path) -> Path:
    """A run dir with config.yaml and a real LoRA adapter (rank 8 on q_proj) of the tiny built-in model's shape."""
    from peft import LoraConfig, get_peft_model

    from train.config import load_config
    from train.models.builtin import build_tokenizer, random_tiny_model

    run = tmp_path / "run"
    run.mkdir()
    lora = {"lora_rank": 8, "target_modules": ["q_proj"]}
    (run / "config.yaml").write_text(load_config(write_tiny_config(tmp_path, model=lora)).to_yaml())
    base = random_tiny_model(build_tokenizer(), hidden_size=32, num_layers=1, num_heads=2)
    get_peft_model(base, LoraConfig(r=8, target_modules=["q_proj"])).save_pretrained(run / "adapter")
    return run


@pytest.mark.parametrize("script", ["export", "evaluate"])
@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("truncated", ["adapter_model.safetensors is damaged", "incomplete metadata"]),
        ("peft_type", ["names peft_type 'BOGUS', which the installed peft does not know"]),
        ("full weights truncated", ["model.safetensors is damaged"]),
    ],
)
def test_a_damaged_saved_adapter_is_named_never_exported_or_loaded(tmp_path, capsys, script, damage, expected):
    """A truncated adapter or an unknown peft_type was a traceback; a truncated full-weights save was exported as
    "merged weights" with exit 0."""
    run = saved_lora_run(tmp_path)
    adapter = run / "adapter"
    if damage == "truncated":
        weights = adapter / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-16])  # cut inside the last tensor
    elif damage == "peft_type":
        config = json.loads((adapter / "adapter_config.json").read_text())
        (adapter / "adapter_config.json").write_text(json.dumps({**config, "peft_type": "BOGUS"}))
    else:
        from train.models.builtin import build_tokenizer, random_tiny_model

        shutil.rmtree(adapter)
        random_tiny_model(build_tokenizer(), hidden_size=32, num_layers=1, num_heads=2).save_pretrained(adapter)
        weights = adapter / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out = tmp_path / "out"
    if script == "export":
        argv = [str(run), "--merged", str(out)]
    else:
        argv = [str(run / "config.yaml"), "--adapter", str(adapter), "--output-dir", str(out)]
    fails_cleanly(capsys, entry_point(script), argv, *expected)
    assert not out.exists()


def test_evaluate_names_an_output_dir_that_is_a_file_and_an_adapter_of_another_shape(tmp_path, capsys):
    run = saved_lora_run(tmp_path)
    (tmp_path / "a_file").write_text("")
    argv = [str(run / "config.yaml"), "--adapter", str(run / "adapter"), "--output-dir", str(tmp_path / "a_file")]
    fails_cleanly(capsys, entry_point("evaluate"), argv, f"cannot write --output-dir {tmp_path / 'a_file'}")
    wider = write_tiny_config(
        tmp_path, model={"lora_rank": 8, "target_modules": ["q_proj"], "builtin": {"hidden_size": 64}}
    )
    argv = [str(wider), "--adapter", str(run / "adapter"), "--output-dir", str(tmp_path / "out")]
    fails_cleanly(capsys, entry_point("evaluate"), argv, "was trained on a model of another shape", "size mismatch")


def test_a_reward_listed_twice_is_refused_before_the_run_dir(tmp_path, capsys):
    """Both were logged under one name: their metrics collided (negative timings)."""
    rewards = ["hard_format_reward", "countdown_reward", {"name": "hard_format_reward", "weight": 0.5}]
    config = write_tiny_config(tmp_path, rewards=rewards, output={"dir": str(tmp_path / "runs")})
    refused_before_run_dir(
        tmp_path, capsys, [], "reward 'hard_format_reward' is listed twice (rewards.0 and rewards.2)", config=config
    )
