"""The run dir and its metrics file under faults: atomic rewrites, one run at a time, resume decisions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import run_with_checkpoints, write_tiny_config

from train.config import load_config
from train.errors import UserError
from train.records.rundir import RunDir
from train.records.tracking import MetricsLog


def test_a_kill_inside_the_resume_rewrite_leaves_the_old_file_whole(tmp_path, monkeypatch):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in range(1, 6):
        log.write({"type": "step", "step": step, "epoch": step / 5})
    log.write({"type": "epoch", "step": 5, "epoch": 1})
    before = log.path.read_text()

    def killed(source, target):  # the process dies between writing the new file and renaming it
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        log.truncate_after(3)
    assert log.path.read_text() == before  # it used to be rewritten in place: a kill left it empty or cut
    monkeypatch.undo()
    assert log.truncate_after(3) == 3
    assert [row["step"] for row in log.records()] == [1, 2, 3]


def test_a_second_run_of_a_locked_run_dir_stops_naming_the_holder(tmp_path):
    cfg = load_config(write_tiny_config(tmp_path))
    first = RunDir.choose(cfg, tmp_path / "run", resume=False)
    first.open()
    # Another process (a lock belongs to a process; this one already holds it) tries to resume the same dir.
    script = (
        "import sys\n"
        "from train.errors import exit_on_user_error\n"
        "from train.config import load_config\n"
        "from train.records.rundir import RunDir\n"
        "@exit_on_user_error\n"
        "def main():\n"
        f"    cfg = load_config({str(tmp_path / 'tiny.yaml')!r})\n"
        f"    RunDir.choose(cfg, {str(tmp_path / 'run')!r}, resume=True).open()\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "in use by process" in message
    assert str(os.getpid()) in message


def test_resume_with_overrides_is_refused(tmp_path):
    cfg = load_config(write_tiny_config(tmp_path))
    with pytest.raises(UserError, match="--resume runs with the run's own config.yaml"):
        RunDir.choose(cfg, tmp_path / "run", resume=True, overrides=["train.beta=0"])


def test_an_output_dir_that_is_a_file_or_unwritable_fails_before_any_model_loads(tmp_path):
    cfg = load_config(write_tiny_config(tmp_path))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(UserError, match="already exists and is not empty"):
        RunDir.choose(cfg, a_file, resume=False)
    inside_a_file = RunDir.choose(cfg, a_file / "run", resume=False)  # root can write anywhere else
    with pytest.raises(UserError, match="cannot write the run dir"):
        inside_a_file.open()


def test_a_finished_run_is_recognised(tmp_path):
    cfg = load_config(write_tiny_config(tmp_path))
    run = RunDir.choose(cfg, tmp_path / "run", resume=False)
    run.open()
    run.close()
    assert not run.finished
    (run.path / "summary.json").write_text(json.dumps({"final": {"pass@1": 0.5}}))
    assert RunDir.choose(cfg, tmp_path / "run", resume=True).finished


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("model.safetensors", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])),
        ("optimizer.pt", lambda p: p.write_bytes(b"garbage")),
    ],
)
def test_a_corrupt_checkpoint_names_the_file_and_the_previous_checkpoint(tmp_path, name, damage):
    run = run_with_checkpoints(tmp_path, steps=(4, 8))
    damage(run.checkpoint_dir / "checkpoint-8" / name)
    resumed = RunDir.choose(run.cfg, tmp_path / "run", resume=True)
    with pytest.raises(UserError, match=rf"checkpoint-8/{name} is corrupt.*continue from checkpoint-4"):
        resumed.open()


@pytest.mark.parametrize("state", ["cut off", "missing"])
def test_a_save_cut_short_by_a_kill_is_set_aside_and_the_resume_goes_back_one_checkpoint(tmp_path, capsys, state):
    # SIGKILL while the trainer writes checkpoint-12's trainer_state.json (it writes it last), or before it got there.
    run = run_with_checkpoints(tmp_path, steps=(4, 8, 12))
    torn = run.checkpoint_dir / "checkpoint-12" / "trainer_state.json"
    torn.write_text(torn.read_text()[:9]) if state == "cut off" else torn.unlink()
    resumed = RunDir.choose(run.cfg, tmp_path / "run", resume=True)
    assert resumed.open().path.name == "checkpoint-8"
    assert sorted(p.name for p in run.checkpoint_dir.iterdir()) == [
        "checkpoint-4",
        "checkpoint-8",
        "unfinished-checkpoint-12",
    ]
    assert "set aside checkpoint-12" in capsys.readouterr().err
    resumed.close()
