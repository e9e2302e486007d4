"""--resume is exact: every record once, never a step past max_steps, an evaluation cut by a kill redone; what
cannot be repaired exactly is refused with one paragraph. Also: the run holds its run dir, checking a checkpoint runs
no code from it, and a full disk names the path and what was being written.

Each kill is reproduced by the run dir it leaves (a finished run's files cut back to that moment), so the tests run
one short run per fixture and resume copies of it in-process.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from conftest import entry_point, run_with_checkpoints, write_tiny_config

from train.config import load_config
from train.errors import UserError
from train.records.rundir import RunDir
from train.records.tracking import MetricsLog

SHORT = ["--set", "train.max_steps=2", "--set", "data.train_samples=16", "--set", "data.test_samples=4"]


def run_main(argv: list[str]) -> None:
    entry_point("run_eval_test")(argv)


@pytest.fixture(scope="module")
def module_env(tmp_path_factory, builtin_cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRPO_LAB_CACHE", str(builtin_cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("WANDB_MODE", "disabled")
        yield tmp_path_factory.mktemp("resume-runs")


@pytest.fixture(scope="module")
def max_steps_run(module_env) -> tuple[Path, Path]:
    """A finished 2-step run (max_steps mid-epoch): its config and its run dir (checkpoint-2 only)."""
    config = write_tiny_config(module_env)
    run_main([str(config), "--output-dir", str(module_env / "max-steps"), *SHORT])
    return config, module_env / "max-steps"


@pytest.fixture(scope="module")
def save_steps_run(module_env) -> tuple[Path, Path]:
    """A finished run of 2 epochs of 2 steps with a checkpoint at every step (train.save_steps=1), all kept."""
    directory = module_env / "save-steps"
    directory.mkdir()
    config = write_tiny_config(
        directory, data={"train_samples": 4}, train={"save_steps": 1, "save_total_limit": 10}, eval={"pass_k": [1]}
    )
    run_main([str(config), "--output-dir", str(module_env / "save-steps-run")])
    return config, module_env / "save-steps-run"


def copy_run(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "summary.json").unlink()  # the kill came before the summary
    return copy


def lines(run_dir: Path) -> list[str]:
    return (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)


def cut_after(run_dir: Path, is_last_kept) -> None:
    """metrics.jsonl as a kill right after the first record matching `is_last_kept` leaves it."""
    kept = []
    for line in lines(run_dir):
        kept.append(line)
        if is_last_kept(json.loads(line)):
            break
    (run_dir / "metrics.jsonl").write_text("".join(kept))


def records(run_dir: Path, kind: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in lines(run_dir)]
    return [row for row in rows if kind is None or row["type"] == kind]


def assert_every_record_once(run_dir: Path, *, steps: int, epochs: int, evals: list[str]) -> None:
    assert [row["step"] for row in records(run_dir, "step")] == list(range(1, steps + 1))
    assert max(row["step"] for row in records(run_dir)) == steps  # never a step past max_steps
    assert [row["epoch"] for row in records(run_dir, "epoch")] == list(range(1, epochs + 1))
    assert [row["label"] for row in records(run_dir, "eval")] == evals
    assert len(records(run_dir, "train")) == 1
    assert json.loads((run_dir / "summary.json").read_text())["final"] is not None
    assert not (run_dir / "checkpoints" / f"checkpoint-{steps + 1}").exists()


@pytest.mark.slow
@pytest.mark.parametrize("killed", ["before_the_training_end", "after_the_final_evaluation"])
def test_a_resume_from_the_checkpoint_of_the_last_step_trains_nothing_and_records_each_once(
    max_steps_run, tmp_path, killed
):
    """kF, kD: transformers trained a step past max_steps (its check comes after a step) and ended the epoch again
    (its record and evaluation twice); the `train` record was written again after a kill past the final eval."""
    config, finished = max_steps_run
    run_dir = copy_run(finished, tmp_path)
    if killed == "before_the_training_end":  # after checkpoint-2 was saved (it follows the epoch's evaluation)
        cut_after(run_dir, lambda row: row.get("label") == "epoch_1")
    run_main([str(config), "--output-dir", str(run_dir), "--resume"])
    assert_every_record_once(run_dir, steps=2, epochs=1, evals=["zero_shot", "epoch_1", "final"])


@pytest.mark.slow
def test_an_evaluation_cut_by_a_kill_before_its_epoch_checkpoint_is_redone(save_steps_run, tmp_path):
    """kE: with save_steps=1, checkpoint-2 is saved before the epoch-1 records; transformers resumed past that epoch
    end, so a kill during the epoch-1 evaluation lost it for good."""
    config, finished = save_steps_run
    run_dir = copy_run(finished, tmp_path)
    cut_after(run_dir, lambda row: row["type"] == "epoch" and row["epoch"] == 1)  # killed inside the evaluation
    for newer in (3, 4):
        shutil.rmtree(run_dir / "checkpoints" / f"checkpoint-{newer}")
    samples = run_dir / "samples" / "epoch_1.jsonl"
    samples.write_text(samples.read_text()[:50])
    run_main([str(config), "--output-dir", str(run_dir), "--resume"])
    assert_every_record_once(run_dir, steps=4, epochs=2, evals=["zero_shot", "epoch_1", "epoch_2", "final"])
    assert next(row for row in records(run_dir, "eval") if row["label"] == "epoch_1")["step"] == 2
    assert all(json.loads(line) for line in samples.read_text().splitlines())  # written whole again


@pytest.mark.slow
def test_a_metrics_file_cut_before_the_checkpoint_goes_back_to_a_checkpoint_it_records(
    save_steps_run, tmp_path, capsys
):
    """r_metrics_trunc: cut inside step 3's line with checkpoint-4 on disk, the resume said step 3 was redone but
    continued from checkpoint-4: steps 3 and 4, epoch 2 and its evaluation were gone."""
    config, finished = save_steps_run
    run_dir = copy_run(finished, tmp_path)
    text = (run_dir / "metrics.jsonl").read_text()
    cut = text.index('{"type": "step", "step": 3') + 30
    (run_dir / "metrics.jsonl").write_text(text[:cut])
    run_main([str(config), "--output-dir", str(run_dir), "--resume"])
    err = " ".join(capsys.readouterr().err.split())
    assert "continues from checkpoint-2 instead of checkpoint-4 and redoes steps 3 to 4" in err
    assert_every_record_once(run_dir, steps=4, epochs=2, evals=["zero_shot", "epoch_1", "epoch_2", "final"])
    assert (run_dir / "checkpoints" / "unrecorded-checkpoint-4").is_dir()  # kept, never resumed from again


@pytest.mark.slow
def test_a_line_written_twice_is_dropped_and_named(max_steps_run, tmp_path, capsys):
    """r_metrics_dup: a duplicated line was resumed silently and counted twice."""
    config, finished = max_steps_run
    run_dir = copy_run(finished, tmp_path)
    text = lines(run_dir)
    (run_dir / "metrics.jsonl").write_text("".join(text[:2] + text[1:2] + text[2:]))  # step 1 twice
    run_main([str(config), "--output-dir", str(run_dir), "--resume"])
    assert "line 3 repeated an earlier record byte for byte" in " ".join(capsys.readouterr().err.split())
    assert_every_record_once(run_dir, steps=2, epochs=1, evals=["zero_shot", "epoch_1", "final"])


def test_a_config_edited_since_the_run_started_is_refused_naming_what_differs(max_steps_run, tmp_path, capsys):
    """r_cfg_batch: an edited batch size doubled every epoch record and evaluation, exit 0, no word."""
    config, finished = max_steps_run
    run_dir = copy_run(finished, tmp_path)
    before = (run_dir / "metrics.jsonl").read_text()
    config_yaml = run_dir / "config.yaml"
    config_yaml.write_text(config_yaml.read_text().replace("train_batch_size: 8", "train_batch_size: 16"))
    with pytest.raises(SystemExit) as exit_info:
        run_main([str(config), "--output-dir", str(run_dir), "--resume"])
    assert exit_info.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in message
    assert "config.yaml was edited since the run started: train.per_device_train_batch_size was 8, is now 16" in message
    assert "Put the started values back" in message
    assert (run_dir / "metrics.jsonl").read_text() == before


# ----------------------------------------------------------------------------------------------------------------
# The checks themselves, on a run dir made by hand (fast)


def resume(run: RunDir):
    resumed = RunDir.choose(run.cfg, run.path, resume=True)
    try:
        return resumed.open()
    finally:
        resumed.close()


def test_an_emptied_metrics_file_with_a_checkpoint_is_refused(tmp_path):
    """r_metrics_empty: resumed silently from checkpoint-4 with no record of steps 1 to 4 (or the zero-shot)."""
    run = run_with_checkpoints(tmp_path)
    run.metrics_path.write_text("")
    with pytest.raises(UserError, match=r"no record of step 1 .*steps 1 to 4 out of the records.*rm -r .*checkpoints"):
        resume(run)
    assert run.metrics_path.read_text() == ""


def test_two_different_records_of_one_step_are_refused_naming_both_lines(tmp_path):
    run = run_with_checkpoints(tmp_path)
    MetricsLog(run.metrics_path).write({"type": "step", "step": 3, "epoch": 9.0})
    with pytest.raises(UserError, match=r"two different records of step 3 \(lines 4 and 6\)"):
        resume(run)


def test_a_line_lost_in_the_middle_goes_back_to_the_checkpoint_before_it(tmp_path, capsys):
    run = run_with_checkpoints(tmp_path)
    kept = [line for line in lines(run.path) if '"step": 3,' not in line]
    run.metrics_path.write_text("".join(kept))
    assert resume(run).step == 2
    assert "its step 3 record is missing" in " ".join(capsys.readouterr().err.split())
    assert [row["step"] for row in MetricsLog(run.metrics_path).records("step")] == [1, 2]
    assert (run.checkpoint_dir / "unrecorded-checkpoint-4").is_dir()  # never picked by a later resume


@pytest.mark.parametrize("deleted", [("optimizer.pt",), ("scheduler.pt",), ("optimizer.pt", "scheduler.pt")])
def test_a_checkpoint_without_its_optimizer_state_is_refused_naming_the_file(tmp_path, deleted):
    """r_no_optimizer: transformers resumed with a fresh optimizer and schedule, without a word."""
    run = run_with_checkpoints(tmp_path)
    for name in deleted:
        (run.checkpoint_dir / "checkpoint-4" / name).unlink()
    with pytest.raises(UserError, match=rf"{' and '.join(deleted)} (is|are) missing.*continue from checkpoint-2"):
        resume(run)


class _RunsCode:
    """Unpickling it calls open(marker, "w"): what a hostile optimizer.pt could do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checking_a_checkpoint_runs_no_code_from_it(tmp_path):
    """A .pt file was unpickled with weights_only=False: a run dir from someone else could run code here."""
    import torch

    run = run_with_checkpoints(tmp_path)
    marker = tmp_path / "code-ran"
    torch.save({"state": _RunsCode(str(marker))}, run.checkpoint_dir / "checkpoint-4" / "optimizer.pt")
    assert resume(run).step == 4
    assert not marker.exists()


def test_a_config_edit_is_named_key_by_key_and_an_old_run_dir_is_not_checked(tmp_path):
    run = run_with_checkpoints(tmp_path)
    config = run.path / "config.yaml"
    config.write_text(config.read_text().replace("num_epochs: 2", "num_epochs: 3").replace("beta: 0.04", "beta: 0.0"))
    with pytest.raises(UserError, match=r"config.yaml was edited since the run started") as error:
        resume(run)
    assert "train.beta was 0.04, is now 0.0" in str(error.value)
    assert "train.num_epochs was 2, is now 3" in str(error.value)
    invocation = json.loads((run.path / "invocation.json").read_text())
    del invocation["settings"]  # a run dir from before the settings were kept
    (run.path / "invocation.json").write_text(json.dumps(invocation))
    assert resume(run).step == 4


# ----------------------------------------------------------------------------------------------------------------
# The run holds its run dir


def test_a_forked_copy_of_the_run_stops_instead_of_writing_every_record_twice(tmp_path):
    """t_forker_later: a reward that forked (and returned in both processes) doubled every record."""
    import os

    run = RunDir.choose(load_config(write_tiny_config(tmp_path)), tmp_path / "run", resume=False)
    run.open()
    log = MetricsLog(run.metrics_path, guard=run.check_held)
    child = os.fork()
    if child == 0:  # the copy: it must refuse to write
        try:
            log.write({"type": "step", "step": 1, "epoch": 0.5})
        except UserError as error:
            os._exit(3 if "is a copy of the run's process" in str(error) else 4)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    log.write({"type": "step", "step": 1, "epoch": 0.5})  # the run itself goes on
    assert [row["step"] for row in log.records()] == [1]
    run.close()


def test_a_run_whose_lock_file_is_deleted_stops(tmp_path):
    run = RunDir.choose(load_config(write_tiny_config(tmp_path)), tmp_path / "run", resume=False)
    run.open()
    (run.path / ".lock").unlink()
    with pytest.raises(UserError, match=r"its .lock was deleted or replaced, so another run can take the dir"):
        MetricsLog(run.metrics_path, guard=run.check_held).write({"type": "step", "step": 1, "epoch": 0.5})
    run.close()


@pytest.mark.parametrize("replaced", [True, False])
def test_a_run_whose_dir_is_deleted_or_replaced_stops_instead_of_writing_into_it(tmp_path, replaced):
    """The lock lives in the deleted dir: the old process appended into the new run's metrics.jsonl."""
    run = RunDir.choose(load_config(write_tiny_config(tmp_path)), tmp_path / "run", resume=False)
    run.open()
    log = MetricsLog(run.metrics_path, guard=run.check_held)
    log.write({"type": "step", "step": 1, "epoch": 0.5})
    shutil.rmtree(run.path)
    if replaced:  # another run starts at the same path
        other = RunDir.choose(run.cfg, run.path, resume=False)
        other.open()
        MetricsLog(other.metrics_path).write({"type": "step", "step": 1, "epoch": 0.5})
    there = "another directory is at that path now" if replaced else "it is gone"
    with pytest.raises(UserError, match=rf"was deleted or replaced while this run .*{there}"):
        log.write({"type": "step", "step": 2, "epoch": 1.0})
    if replaced:
        assert [row["step"] for row in MetricsLog(run.metrics_path).records()] == [1]
        other.close()
    run.close()


# ----------------------------------------------------------------------------------------------------------------
# A full disk


def safetensors_disk_full(path: Path):
    from safetensors import SafetensorError

    return SafetensorError(
        f'Error while serializing: I/O error: No space left on device (os error 28) at path "{path}/.tmpAbC123"'
    )


@pytest.mark.parametrize("kind", ["safetensors", "oserror"])
def test_a_full_disk_while_saving_the_adapter_names_it_and_keeps_the_last_whole_one(tmp_path, monkeypatch, kind):
    """safetensors' "No space left on device" is no OSError: it ended in a traceback."""
    import train.errors
    import train.models
    from train.errors import note_output_dir
    from train.records.adapter import save_run_adapter

    monkeypatch.setattr(train.errors, "_OUTPUT_DIR", [])  # as a run sets it, for this test only
    note_output_dir(tmp_path)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_text("the last whole save")

    def disk_full(policy, directory):
        Path(directory).mkdir(parents=True)
        (Path(directory) / "adapter_model.safetensors").write_text("half")
        raise safetensors_disk_full(directory) if kind == "safetensors" else OSError(errno.ENOSPC, "No space left")

    monkeypatch.setattr(train.models, "save_policy", disk_full)
    with pytest.raises(UserError) as error:
        save_run_adapter(object(), adapter)
    message = str(error.value)
    partial = tmp_path / ".adapter.partial"
    assert message.startswith(f"no space left on device while writing {partial} (the run's adapter")
    assert "MB free" in message and "--resume" in message
    assert (adapter / "adapter_model.safetensors").read_text() == "the last whole save"
    assert not (tmp_path / ".adapter.partial").exists()


@pytest.mark.slow
def test_a_full_disk_while_saving_a_checkpoint_names_it_and_the_resume_sets_it_aside(
    max_steps_run, tmp_path, monkeypatch, capsys
):
    from transformers import Trainer

    config, _ = max_steps_run
    run_dir = tmp_path / "run"

    def disk_full(self, output_dir=None, _internal_call=False):
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "model.safetensors").write_bytes(b"half")
        raise safetensors_disk_full(output_dir)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "save_model", disk_full)
        with pytest.raises(SystemExit) as exit_info:
            run_main([str(config), "--output-dir", str(run_dir), *SHORT, "--set", "train.save_steps=1"])
    assert exit_info.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in message
    checkpoint = run_dir / "checkpoints" / "checkpoint-1"
    assert f"no space left on device while writing {checkpoint} (the trainer's checkpoint-1;" in message
    assert "MB free" in message and "--resume" in message
    run_main([str(config), "--output-dir", str(run_dir), "--resume"])
    assert "set aside checkpoint-1" in capsys.readouterr().err
    assert_every_record_once(run_dir, steps=2, epochs=1, evals=["zero_shot", "epoch_1", "final"])


def test_a_report_onto_a_full_disk_names_the_file_not_dot(max_steps_run, monkeypatch, capsys):
    """A write to an open file names no path: the message said "while writing ." for report.py."""
    import os

    import train.records.files as files

    _, finished = max_steps_run
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle, mode):
            self.file = real_fdopen(handle, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fdopen", FullDisk)
    with pytest.raises(SystemExit) as exit_info:
        entry_point("report")([str(finished)])
    assert exit_info.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert f"no space left on device while writing {finished / 'plots'}" in message
    assert " KB; " in message and "MB free" in message


# --- a run dir damaged between the kill and the resume: one paragraph, exit 2, nothing of the run changed ---


def _checkpoint(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "checkpoint-2"


def _replace_with_dir(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


def _replace_with_file(path: Path) -> None:
    shutil.rmtree(path)
    path.write_text("x")


def _edit_json(path: Path, edit) -> None:
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _drop_first_eval_label(run_dir: Path) -> None:
    rows = records(run_dir)
    next(row for row in rows if row["type"] == "eval").pop("label")
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def _reshape_a_weight(run_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    weights_file = _checkpoint(run_dir) / "model.safetensors"
    weights = load_file(str(weights_file))
    weights[next(iter(weights))] = torch.zeros(3, 3)
    save_file(weights, str(weights_file))


DAMAGED = {
    "weights missing": (lambda d: (_checkpoint(d) / "model.safetensors").unlink(), "holds no model weights"),
    "trainer state {}": (lambda d: (_checkpoint(d) / "trainer_state.json").write_text("{}"), "trainer_state.json is"),
    "trainer state []": (lambda d: (_checkpoint(d) / "trainer_state.json").write_text("[]"), "trainer_state.json is"),
    ".lock a directory": (lambda d: _replace_with_dir(d / ".lock"), ".lock is a directory, where the run keeps"),
    "wandb_id a directory": (lambda d: _replace_with_dir(d / "wandb_id"), "wandb_id is a directory"),
    "checkpoints a file": (lambda d: _replace_with_file(d / "checkpoints"), "checkpoints is a file"),
    "samples a file": (lambda d: _replace_with_file(d / "samples"), "samples is a file"),
    "config.yaml a directory": (lambda d: _replace_with_dir(d / "config.yaml"), "config.yaml is a directory"),
    "overrides an int": (
        lambda d: _edit_json(d / "invocation.json", lambda v: {**v, "overrides": 5}),
        '"overrides" is 5, not a list of --set strings',
    ),
    "invocation an int": (lambda d: (d / "invocation.json").write_text("5"), "holds a JSON int"),
    "eval without a label": (_drop_first_eval_label, 'line 1 is bad (an evaluation without its "label"'),
    "weights of another shape": (_reshape_a_weight, "cannot be loaded into the model this run's config builds"),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGED)
def test_a_damaged_run_dir_is_named_before_the_resume_changes_anything(max_steps_run, tmp_path, capsys, damage):
    """Section 3's damaged run dirs: each was a traceback (an eval without a label only after the whole resumed
    run); the samples a file resumed with exit 0 and wrote no samples."""
    config, finished = max_steps_run
    run_dir = copy_run(finished, tmp_path)
    make_damage, named = DAMAGED[damage]
    make_damage(run_dir)
    kept_before = [row for row in records(run_dir) if row.get("label") != "final"]
    with pytest.raises(SystemExit) as exit_info:
        run_main([str(config), "--output-dir", str(run_dir), "--resume"])
    assert exit_info.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in message and named in message, message
    assert "--resume again" in message or "delete it" in message, message  # the way out
    # Every record kept (the final evaluation's is dropped by a resume that got as far as loading the weights: it
    # is redone at the end of every resume).
    assert [row for row in records(run_dir) if row.get("label") != "final"] == kept_before
    assert not (run_dir / "summary.json").exists()


def test_a_run_dir_symlink_to_nothing_is_skipped_by_resume_and_named_for_a_new_run(tmp_path):
    """A dangling or looping runs/<name>-* link is not a run to continue; as --output-dir of a new run it was
    called read-only ("File exists"), after the model had loaded."""
    cfg = load_config(write_tiny_config(tmp_path, output={"dir": str(tmp_path / "runs")}))
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "tiny-20260101-000000").symlink_to(tmp_path / "gone")
    (runs / "tiny-loop-a").symlink_to(runs / "tiny-loop-b")
    (runs / "tiny-loop-b").symlink_to(runs / "tiny-loop-a")
    with pytest.raises(UserError, match="found no run to continue"):
        RunDir.choose(cfg, None, resume=True)
    real = RunDir.choose(cfg, runs / "tiny-real", resume=False)
    real.open()
    real.close()
    assert RunDir.choose(cfg, None, resume=True).path == runs / "tiny-real"
    with pytest.raises(UserError, match=r"tiny-20260101-000000 is a symbolic link to .*gone, which does not exist"):
        RunDir.choose(cfg, runs / "tiny-20260101-000000", resume=False)
    with pytest.raises(UserError, match="tiny-loop-a is a symbolic link that loops"):
        RunDir.choose(cfg, runs / "tiny-loop-a" / "run", resume=False)
