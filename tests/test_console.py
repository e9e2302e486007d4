"""What a run prints, end to end: the tiny experiment through experiments/run_eval_test.py in a subprocess, its
stdout a pipe (as in CI or a log file). Also a Ctrl-C (SIGINT) and its resume, and the resume of a finished run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, entry_point, write_tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("offline")]

run_eval_test_main = entry_point("run_eval_test")
SCRIPT = str(ROOT / "experiments" / "run_eval_test.py")
# The tiny run: 2 epochs of 4 steps, 3 evaluations (zero-shot, one per epoch; the final one is epoch 2's).
# What it prints: the model build (2 lines, when the session has not built it yet) and a header, per evaluation
# a table of 6 rows (+ title, header, rule, caption) and 2 samples of 2 lines, one progress line per step (8 steps
# < LINES_PER_RUN), one line per epoch, the final evaluation's line, the run summary (zero-shot, 2 epochs, final
# + title, header, rule, caption), the wandb line and the run dir; and the diagnosis (issue 24): at most 3 new
# findings after each evaluation, and at the end the verdict, up to 3 problems and the count of findings.
MOST_LINES = 3 + 3 * (10 + 4 + 3) + 8 + 2 + 1 + 8 + 2 + 5


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WANDB_SILENT", None)  # wandb as a user has it: its noise is ours to filter
    return env


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory, builtin_cache):
    """One tiny run with stdout and stderr to a pipe, named by the entry point (no --output-dir)."""
    tmp_path = tmp_path_factory.mktemp("console")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRPO_LAB_CACHE", str(builtin_cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("WANDB_DIR", str(tmp_path))
        patch.delenv("WANDB_API_KEY", raising=False)
        patch.delenv("WANDB_MODE", raising=False)
        config = write_tiny_config(tmp_path, logging={"wandb": "offline"}, output={"dir": str(tmp_path / "runs")})
        result = subprocess.run(
            [sys.executable, SCRIPT, str(config), "--set", "train.temperature=0.9"],
            capture_output=True,
            text=True,
            env=subprocess_env(tmp_path),
            timeout=900,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    return config, result, run_dir


def test_a_logged_run_prints_a_few_lines_and_no_step_dicts(logged_run):
    _, result, _ = logged_run
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) <= MOST_LINES, "\n".join(lines)
    text = "\n".join(lines)
    for noise in (
        "{'loss'",
        "'completions/mean_length'",
        "it/s]",
        "pin_memory",
        "URL not available",
        "Loading weights",
    ):
        assert noise not in text, noise
    assert sum(line.count(" step ") for line in lines if line.startswith("tiny-")) == 8  # one line a step here
    assert "=== Epoch 2/2 Summary === Accumulated Reward:" in text
    titles = [line.strip() for line in lines if line.strip() in ("zero-shot", "epoch 1 (step 4)", "epoch 2 (step 8)")]
    assert titles == ["zero-shot", "epoch 1 (step 4)", "epoch 2 (step 8)"]  # each table once; final refers to 2's
    assert "final evaluation = the epoch 2 (step 8) evaluation" in text
    assert "wandb sync " in text
    assert sum(line.startswith("verdict ") for line in lines) == 1  # the diagnosis' one line at the end


def test_every_figure_trl_logs_is_in_metrics_jsonl(logged_run):
    _, _, run_dir = logged_run
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in records if row["type"] == "step"]
    assert [row["step"] for row in steps] == list(range(1, 9))
    for row in steps:
        for key in ("loss", "reward", "reward_std", "kl", "entropy", "completions/mean_length", "step_time"):
            assert key in row, key
        assert "rewards/countdown_reward/mean" in row
    evals = [row for row in records if row["type"] == "eval"]
    for key in (
        "eval/correct",
        "eval/partial",
        "eval/budget_utilization",
        "eval/reward/mark_reward",
        "eval/num_prompts",
    ):
        assert all(key in row for row in evals), key


def test_the_run_dir_is_named_by_its_overrides_which_the_summary_keeps(logged_run):
    _, _, run_dir = logged_run
    assert run_dir.name.startswith("tiny-temperature=0.9-")
    assert json.loads((run_dir / "summary.json").read_text())["overrides"] == ["train.temperature=0.9"]


def test_resuming_a_finished_run_names_it_and_changes_nothing(logged_run, capsys):
    config, _, run_dir = logged_run
    before = {name: (run_dir / name).read_bytes() for name in ("metrics.jsonl", "summary.json")}
    assert run_eval_test_main([str(config), "--resume"]) == {}  # no --output-dir: the newest run of the config
    assert f"{run_dir} has finished" in capsys.readouterr().out
    assert {name: (run_dir / name).read_bytes() for name in before} == before


def test_ctrl_c_exits_130_with_the_resume_command_and_resume_completes(tmp_path):
    config = write_tiny_config(tmp_path, train={"num_epochs": 4}, logging={"wandb": "disabled"})
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, SCRIPT, str(config), "--output-dir", str(run_dir), "--set", "train.temperature=0.9"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_env(tmp_path),
    )
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 900
    while not (metrics.exists() and '"type": "step"' in metrics.read_text()):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first step"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)

    assert process.returncode == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    hint = [line for line in output.splitlines() if line.startswith("interrupted:")]
    assert len(hint) == 1
    assert f"--output-dir {run_dir} --resume" in hint[0] and str(config) in hint[0]
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]  # every line whole

    run_eval_test_main([str(config), "--output-dir", str(run_dir), "--resume"])
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [row["step"] for row in rows if row["type"] == "step"] == list(range(1, 17))
    epochs = [row for row in rows if row["type"] == "epoch"]
    assert [row["epoch"] for row in epochs] == [1, 2, 3, 4]
    assert all(row["epoch/num_samples"] == 32 for row in epochs)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final"] is not None
    assert summary["overrides"] == ["train.temperature=0.9"]  # kept from the first session (invocation.json)


def test_the_run_diagnoses_itself_in_summary_json_the_console_and_the_report(logged_run):
    _, result, run_dir = logged_run
    diagnosis = json.loads((run_dir / "summary.json").read_text())["diagnosis"]
    assert diagnosis["learning"] in (True, False) and diagnosis["verdict"]
    for finding in diagnosis["findings"]:
        assert set(finding) == {"name", "severity", "title", "subject", "evidence", "meaning", "to_try"}
        assert finding["severity"] in ("problem", "watch", "note")
    verdict = next(line for line in result.stdout.splitlines() if line.startswith("verdict "))
    assert verdict == f"verdict {diagnosis['verdict']}"
    report = (run_dir / "report.md").read_text()
    assert "## What happened in this run" in report and f"Verdict: {diagnosis['verdict']}." in report
    for finding in diagnosis["findings"]:
        assert f"### {finding['severity']}: {finding['title']}" in report
