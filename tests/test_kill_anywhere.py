"""SIGKILL a short run at several points, resume it, and compare with a run that was never stopped.

The per-step prompts come from a user reward (weight 0: it changes nothing) that writes what TRL hands it: the
step it scores and the prompts of that step's batch. A kill inside --resume's own rewrite of metrics.jsonl is
tests/test_rundir.py's (it needs the kill at one exact line).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, write_tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("offline")]

RECORDER = """
import json, os, time

def record_prompts(prompts, completions, trainer_state=None, **kwargs):
    if trainer_state is None:  # an evaluation, not a training step: slowed down when a kill must land inside one
        time.sleep(float(os.environ.get("EVAL_SECONDS", "0")))
        return [0.0] * len(completions)
    with open(os.environ["PROMPT_LOG"], "a") as log:
        log.write(json.dumps({"step": trainer_state.global_step + 1, "prompts": list(prompts)}) + "\\n")
    return [0.0] * len(completions)
"""
STEPS = 12  # 3 epochs of 4 steps


def config(tmp_path: Path) -> Path:
    (tmp_path / "recorder.py").write_text(RECORDER)
    rewards = ["hard_format_reward", "countdown_reward"]
    rewards.append({"name": "record_prompts", "path": f"{tmp_path / 'recorder.py'}:record_prompts", "weight": 0.0})
    return write_tiny_config(
        tmp_path,
        rewards=rewards,
        train={"num_epochs": 3, "save_steps": 2},
        eval={"zero_shot": False, "pass_k": [1]},
    )


def launch(config_path: Path, run_dir: Path, prompt_log: Path, *extra: str, eval_seconds: float = 0):
    command = [sys.executable, str(ROOT / "experiments" / "run_eval_test.py"), str(config_path)]
    env = {**os.environ, "PROMPT_LOG": str(prompt_log), "OMP_NUM_THREADS": "1", "EVAL_SECONDS": str(eval_seconds)}
    return subprocess.Popen(
        [*command, "--output-dir", str(run_dir), *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def recorded(run_dir: Path, text: str) -> int:
    path = run_dir / "metrics.jsonl"
    return path.read_text().count(text) if path.exists() else 0


def prompts_by_step(prompt_log: Path) -> dict[int, list[str]]:
    steps: dict[int, list[str]] = {}
    for line in prompt_log.read_text().splitlines():
        row = json.loads(line)
        steps[row["step"]] = row["prompts"]  # a step redone after a resume: its last (completed) batch counts
    return steps


def records(run_dir: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["type"] == kind]


def test_a_run_killed_anywhere_and_resumed_matches_a_run_never_stopped(tmp_path):
    config_path = config(tmp_path)
    whole = launch(config_path, tmp_path / "whole", tmp_path / "whole.jsonl")
    assert whole.wait(timeout=600) == 0, whole.stderr.read().decode()[-2000:]
    uninterrupted = prompts_by_step(tmp_path / "whole.jsonl")
    assert sorted(uninterrupted) == list(range(1, STEPS + 1))

    # After step 3 (mid-epoch), step 4 (right at an epoch's end), step 9 (late in the last epoch, and mid-save), and
    # inside the epoch-1 evaluation: checkpoint-4 (save_steps) is saved before the epoch end's records, so the resume
    # starts past that epoch end and must make its evaluation first.
    for kill_after in (3, 4, 9, "epoch_1_evaluation"):
        run_dir, prompt_log = tmp_path / f"killed-{kill_after}", tmp_path / f"killed-{kill_after}.jsonl"
        in_evaluation = kill_after == "epoch_1_evaluation"
        process = launch(config_path, run_dir, prompt_log, eval_seconds=5 if in_evaluation else 0)
        wanted = ('"type": "epoch"', 1) if in_evaluation else ('"type": "step"', kill_after)
        deadline = time.monotonic() + 600
        while recorded(run_dir, wanted[0]) < wanted[1] and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if in_evaluation:  # the epoch record is written, its evaluation is not
            assert recorded(run_dir, '"label": "epoch_1"') == 0
        if kill_after == 9:  # and as if the kill had landed mid-save: the newest trainer_state.json cut off
            newest = max((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
            state = newest / "trainer_state.json"
            if state.exists():  # else the kill itself landed inside that save, before the state (written last)
                state.write_text(state.read_text()[:100])
        resumed = launch(config_path, run_dir, prompt_log, "--resume")
        assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()[-2000:]

        assert prompts_by_step(prompt_log) == uninterrupted, f"killed after {kill_after}"
        steps, epochs = records(run_dir, "step"), records(run_dir, "epoch")
        assert [row["step"] for row in steps] == list(range(1, STEPS + 1))  # each once, none past max_steps
        assert [row["epoch"] for row in epochs] == [1, 2, 3]
        assert [row["label"] for row in records(run_dir, "eval")] == ["epoch_1", "epoch_2", "epoch_3", "final"]
        assert len(records(run_dir, "train")) == 1
        for epoch in epochs:
            in_epoch = [row for row in steps if epoch["step"] - 4 < row["step"] <= epoch["step"]]
            assert epoch["epoch/accumulated_reward"] == pytest.approx(sum(row["reward_sum"] for row in in_epoch))
            assert epoch["epoch/num_samples"] == sum(row["num_completions"] for row in in_epoch) == 32
