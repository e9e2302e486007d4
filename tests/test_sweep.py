"""Sweeps: the YAML (validation, expansion, run names, overrides), the runner's bookkeeping (skip, resume, record a
failure and go on) with a stand-in for run_eval_test.py, and one real two-variant sweep on the tiny model that is
killed mid-way and resumed (slow).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_tiny_config

from experiments import sweep as sweep_script
from train.config import apply_override
from train.errors import UserError
from train.lab.reports.sweep_report import STATE_FILE
from train.lab.sweep import format_override, load_sweep, run_sweep, sanitize
from train.records.format import summary_eval

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "experiment_configs" / "quickstart.yaml"
FIXTURE = ROOT / "tests" / "fixtures" / "report_run"


def write_sweep(tmp_path: Path, body: dict, name: str = "study.yaml") -> Path:
    body = {"base": str(QUICKSTART), **body}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def test_grid_axes_explicit_variants_and_repeats_expand_to_named_runs(tmp_path):
    path = write_sweep(
        tmp_path,
        {
            "set": {"train.num_epochs": 2},
            "grid": {
                "loss_type": {
                    "grpo": {"train.loss_type": "grpo"},
                    "dr_grpo": {"train.loss_type": "dr_grpo", "train.scale_rewards": "none"},
                },
                "train.max_completion_length": [16, 64],
            },
            "variants": [{"train.beta": 0.0, "rewards": ["hard_format_reward", "countdown_binary_reward"]}],
            "repeats": 2,
        },
    )
    runs = load_sweep(path).runs
    assert [run.name for run in runs] == [
        "loss_type=grpo,max_completion_length=16,seed=42",
        "loss_type=grpo,max_completion_length=16,seed=43",
        "loss_type=grpo,max_completion_length=64,seed=42",
        "loss_type=grpo,max_completion_length=64,seed=43",
        "loss_type=dr_grpo,max_completion_length=16,seed=42",
        "loss_type=dr_grpo,max_completion_length=16,seed=43",
        "loss_type=dr_grpo,max_completion_length=64,seed=42",
        "loss_type=dr_grpo,max_completion_length=64,seed=43",
        "beta=0,rewards=hard_format_reward+countdown_binary_reward,seed=42",
        "beta=0,rewards=hard_format_reward+countdown_binary_reward,seed=43",
    ]
    dr = runs[5]
    assert dr.group == "loss_type=dr_grpo,max_completion_length=16"
    assert dr.labels == {"loss_type": "dr_grpo", "max_completion_length": "16"}
    assert dr.set_args() == [
        "train.num_epochs=2",
        "train.loss_type=dr_grpo",
        "train.scale_rewards=none",
        "train.max_completion_length=16",
        "train.seed=43",
    ]


def test_named_variants_and_explicit_seeds(tmp_path):
    path = write_sweep(tmp_path, {"variants": {"no KL": {"train.beta": 0.0}}, "seeds": [7, 9]})
    runs = load_sweep(path).runs
    assert [(run.name, run.seed, run.labels) for run in runs] == [
        ("no_KL,seed=7", 7, {"variant": "no KL"}),
        ("no_KL,seed=9", 9, {"variant": "no KL"}),
    ]


@pytest.mark.parametrize(
    "value",
    [7e-06, 0.0, 1024, True, None, [1, 5, 10], [], {"min_numbers": 2, "operations": ["+", "-"]}, "dr_grpo"],
)
def test_an_override_reaches_run_eval_test_as_the_same_value(value):
    key = "data.options" if isinstance(value, dict) else "eval.pass_k"  # a key that --set parses as YAML
    raw: dict = {}
    apply_override(raw, format_override(key, value))
    section, name = key.split(".")
    got = raw[section][name]
    assert got == value and type(got) is type(value)


def test_run_names_are_safe_directory_names():
    assert sanitize("model=unsloth/Qwen3-1.7B,lr=7e-06") == "model=unsloth_Qwen3-1.7B,lr=7e-06"
    assert sanitize("../../etc") == "etc"
    long = sanitize("x=" + "a" * 300)
    assert len(long) <= 120 and long != sanitize("x=" + "a" * 299)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"grid": {"train.betta": [0.0]}}, "run 'betta=0': .*unknown config key 'train.betta'. Did you mean 'beta'"),
        ({"grid": {"train.loss_type": ["grpo", "ppo"]}}, "run 'loss_type=ppo'.*train.loss_type = 'ppo' is not allowed"),
        ({"grdi": {"train.beta": [0.0]}}, "not a valid sweep: grdi: Extra inputs are not permitted"),
        ({"table": {"columns": ["accuracy"]}}, "unknown table column"),
        ({"variants": [{"train.beta": 0.0}, {"train.beta": 0.0}]}, "are the same run"),
        ({"base": "missing.yaml"}, "base config missing.yaml not found"),
        ({"seeds": [1, 2], "repeats": 3}, "repeats \\(3\\) and the number of seeds \\(2\\) differ"),
    ],
)
def test_a_bad_sweep_is_one_paragraph_before_anything_runs(tmp_path, body, message):
    path = write_sweep(tmp_path, body)
    with pytest.raises(UserError, match=message):
        load_sweep(path)


def test_the_sweep_script_exits_2_on_bad_input(tmp_path, capsys):
    path = write_sweep(tmp_path, {"grid": {"train.beta": ["high"]}})
    with pytest.raises(SystemExit) as stopped:
        sweep_script.main([str(path), "--sweep-dir", str(tmp_path / "sweep")])
    assert stopped.value.code == 2
    assert "train.beta" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()


# ----------------------------------------------------------------------------------------------------------------
# The runner, with a stand-in for run_eval_test.py

FAKE_RUNNER = textwrap.dedent(
    """
    import json, os, pathlib, shutil, sys
    args = sys.argv[1:]
    sets = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--set")
    out = pathlib.Path(args[args.index("--output-dir") + 1])
    resume = "--resume" in args
    with open(os.environ["FAKE_CALLS"], "a") as calls:
        calls.write(json.dumps({"run": out.name, "resume": resume}) + "\\n")
    if resume and sets:  # as run_eval_test.py: a resumed run keeps its own config
        print("error: --resume runs with the run's own config.yaml, so --set would be ignored.", file=sys.stderr)
        sys.exit(2)
    beta = float((out / "beta").read_text()) if resume else float(sets["train.beta"])
    if beta == 0.5:
        print("loading ...")
        print("error: beta 0.5 fails here on purpose. Fix the config.", file=sys.stderr)
        sys.exit(2)
    out.mkdir(parents=True, exist_ok=True)
    (out / "beta").write_text(str(beta))
    shutil.copy(os.path.join(os.environ["FIXTURE"], "config.yaml"), out / "config.yaml")
    shutil.copy(os.path.join(os.environ["FIXTURE"], "metrics.jsonl"), out / "metrics.jsonl")
    if beta == 0.1 and not resume:
        sys.exit(137)  # dies mid-run: a config.yaml, records, no summary
    summary = json.loads(open(os.path.join(os.environ["FIXTURE"], "summary.json")).read())
    summary["final"]["pass@1"] = 1.0 - beta
    (out / "summary.json").write_text(json.dumps(summary))
    """
)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_run_eval_test.py"
    script.write_text(FAKE_RUNNER)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.setenv("FIXTURE", str(FIXTURE))

    def read_calls() -> list[dict]:
        return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []

    return [sys.executable, str(script)], read_calls


def test_a_failing_run_is_recorded_and_the_sweep_goes_on_then_resume_skips_and_continues(tmp_path, fake):
    runner, calls = fake
    sweep = load_sweep(write_sweep(tmp_path, {"grid": {"train.beta": [0.04, 0.5, 0.1]}}))
    sweep_dir = tmp_path / "sweep"
    lines: list[str] = []

    state = run_sweep(sweep, sweep_dir, runner=runner, echo=lines.append)
    statuses = {entry["name"]: (entry["status"], entry["attempts"], entry["returncode"]) for entry in state["runs"]}
    assert statuses == {"beta=0.04": ("done", 1, None), "beta=0.5": ("failed", 1, 2), "beta=0.1": ("failed", 1, 137)}
    failed = next(entry for entry in state["runs"] if entry["name"] == "beta=0.5")
    assert failed["error"] == "error: beta 0.5 fails here on purpose. Fix the config."
    assert json.loads((sweep_dir / STATE_FILE).read_text()) == state
    assert "error: beta 0.5 fails here on purpose" in (sweep_dir / "logs" / "beta=0.5.log").read_text()
    assert [call["resume"] for call in calls()] == [False, False, False]

    # Resume: the finished run is skipped, the one that died mid-run continues (--resume), the failed one is retried.
    state = run_sweep(sweep, sweep_dir, runner=runner, echo=lines.append)
    assert calls()[3:] == [{"run": "beta=0.5", "resume": False}, {"run": "beta=0.1", "resume": True}]
    statuses = [(entry["status"], entry["attempts"]) for entry in state["runs"]]
    assert statuses == [("done", 1), ("failed", 2), ("done", 2)]
    assert "[1/3] beta=0.04: finished, skipped" in lines

    # --skip-failed leaves the failed run alone.
    run_sweep(sweep, sweep_dir, runner=runner, retry_failed=False, echo=lines.append)
    assert len(calls()) == 5

    # The table: a row per variant with each run's summary figures; the failed one marked; the best row marked.
    rows = list(csv.DictReader((sweep_dir / "table.csv").open()))
    assert [(row["beta"], row["final pass@1"], row["status"], row["best"]) for row in rows] == [
        ("0.04", "0.96", "finished", "true"),
        ("0.5", "", "failed (1 of 1)", "false"),
        ("0.1", "0.9", "finished", "false"),
    ]
    assert "| **0.04 (best)** | **0.250** | **0.960** | **+0.710** |" in (sweep_dir / "table.md").read_text()
    report = (sweep_dir / "report.md").read_text()
    assert "## Failed runs" in report and "beta=0.5" in report
    assert (sweep_dir / "report.html").is_file() and (sweep_dir / "beta=0.04" / "report.html").is_file()


def test_an_existing_sweep_dir_needs_resume(tmp_path, fake, capsys):
    runner, _ = fake
    path = write_sweep(tmp_path, {"grid": {"train.beta": [0.04]}})
    sweep_dir = tmp_path / "sweep"
    run_sweep(load_sweep(path), sweep_dir, runner=runner, echo=lambda line: None)
    with pytest.raises(SystemExit) as stopped:
        sweep_script.main([str(path), "--sweep-dir", str(sweep_dir)])
    assert stopped.value.code == 2
    assert "Pass --resume" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# A real sweep on the tiny model: killed after its first run, resumed


def tiny_base(tmp_path: Path) -> Path:
    """The tests' tiny experiment, two steps of one epoch, checkpointing every step, greedy evaluation only."""
    return write_tiny_config(
        tmp_path,
        name="sweep_e2e",
        rewards=["hard_format_reward", "countdown_reward"],
        train={"num_epochs": 1, "max_steps": 2, "save_steps": 1, "temperature": 0.9},
        eval={"pass_k": []},
        output={"save_adapter": False},
    )


@pytest.mark.slow
def test_a_killed_sweep_resumes_and_its_table_matches_the_runs(tmp_path):
    base = tiny_base(tmp_path)
    sweep_file = tmp_path / "two.yaml"
    sweep_file.write_text(yaml.safe_dump({"base": str(base), "grid": {"train.beta": [0.0, 0.04]}}))
    sweep_dir = tmp_path / "sweep"
    env = {
        **os.environ,
        "GRPO_LAB_CACHE": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, str(ROOT / "experiments" / "sweep.py"), str(sweep_file), "--sweep-dir", str(sweep_dir)]
    first, second = sweep_dir / "beta=0", sweep_dir / "beta=0.04"

    # Start, and kill the whole sweep (runner and run) once the second run has started writing its run dir.
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (second / "config.yaml").exists():
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, "the second run never started"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (first / "summary.json").exists() and not (second / "summary.json").exists()
    state = json.loads((sweep_dir / STATE_FILE).read_text())
    assert [entry["status"] for entry in state["runs"]] == ["done", "running"]
    first_summary = (first / "summary.json").read_text()

    # Resume: the first run is skipped, the second continues in its own run dir (run_eval_test.py --resume).
    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "[1/2] beta=0: finished, skipped" in resumed.stdout
    assert "[2/2] beta=0.04: resuming" in resumed.stdout
    assert (first / "summary.json").read_text() == first_summary
    state = json.loads((sweep_dir / STATE_FILE).read_text())
    assert [(entry["status"], entry["attempts"]) for entry in state["runs"]] == [("done", 1), ("done", 2)]
    assert "--resume" in (sweep_dir / "logs" / "beta=0.04.log").read_text()

    # The table has both rows, with the figures of each run's summary.json.
    rows = list(csv.DictReader((sweep_dir / "table.csv").open()))
    assert [row["beta"] for row in rows] == ["0", "0.04"]
    for row, run_dir in zip(rows, (first, second), strict=True):
        summary = json.loads((run_dir / "summary.json").read_text())
        zero_shot, final = summary_eval(summary, "zero_shot"), summary_eval(summary, "final")
        assert float(row["zero-shot pass@1"]) == pytest.approx(zero_shot["pass@1"])
        assert float(row["final pass@1"]) == pytest.approx(final["pass@1"])
        assert float(row["improvement"]) == pytest.approx(final["pass@1"] - zero_shot["pass@1"])
        assert float(row["correct"]) == final["correct"]
        assert float(row["mean output tokens"]) == pytest.approx(final["mean_output_tokens"], abs=1e-4)
        assert float(row["final epoch mean reward"]) == pytest.approx(summary["epochs"][-1]["mean_reward"], rel=1e-5)
        assert float(row["wall time (s)"]) == pytest.approx(summary["wall_seconds"])
        assert row["status"] == "finished"
    table_md = (sweep_dir / "table.md").read_text().split("\n\n")
    assert len(table_md[0].splitlines()) == 4  # header, separator, two rows
    # then, when the other row's final pass@1 is within sampling noise of the best row's, the line that says so
    assert table_md[1:] in ([], [""]) or table_md[1].startswith("Within sampling noise of ")
    for name in ("report.md", "report.html", "plots/pass_at_1.png"):
        assert (sweep_dir / name).is_file()
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
