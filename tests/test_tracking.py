"""The wandb mirror: which mode a run logs in, what happens when wandb cannot reach its server, the null mirror."""

from __future__ import annotations

from types import SimpleNamespace

from train.records import tracking
from train.records.tracking import MetricsLog, NullMirror, WandbMirror, start_wandb, wandb_mode


def test_wandb_mode_in_the_environment_wins_over_auto(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # credentials alone would mean online
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY")
    assert wandb_mode("auto") == "online"  # it used to be overridden by auto (no credentials: offline)
    assert wandb_mode("disabled") == "disabled"  # an explicit setting in the config still wins


def test_an_unreachable_wandb_server_goes_offline_with_one_warning(monkeypatch, tmp_path, capsys):
    modes = []

    def init(cls, *, mode, **kwargs):
        modes.append(mode)
        if mode == "online":
            raise TimeoutError(f"no answer within {tracking.WANDB_INIT_TIMEOUT} s")
        return cls(run=SimpleNamespace(settings=SimpleNamespace(mode=mode, sync_dir=str(tmp_path / "offline-run"))))

    monkeypatch.setattr(WandbMirror, "init", classmethod(init))
    mirror = start_wandb("online", project="p", name="n", run_dir=tmp_path, config={}, run_id="id")
    assert modes == ["online", "offline"]
    assert isinstance(mirror, WandbMirror)
    assert capsys.readouterr().err.splitlines() == [
        "warning: wandb could not reach its server "
        f"(no answer within {tracking.WANDB_INIT_TIMEOUT} s); logging offline instead"
    ]
    assert tracking.WANDB_INIT_TIMEOUT <= 10  # a few seconds, not wandb's 90


def test_wandb_that_cannot_start_at_all_leaves_the_run_with_metrics_jsonl(monkeypatch, tmp_path, capsys):
    def init(cls, **kwargs):
        raise RuntimeError("broken install")

    monkeypatch.setattr(WandbMirror, "init", classmethod(init))
    mirror = start_wandb("offline", project="p", name="n", run_dir=tmp_path, config={}, run_id="id")
    assert "warning: wandb could not start (broken install); training goes on, metrics stay in metrics.jsonl" in (
        capsys.readouterr().err
    )
    assert isinstance(mirror, NullMirror)
    log = MetricsLog(tmp_path / "metrics.jsonl", mirror)
    log.write({"type": "step", "step": 1, "epoch": 0.5, "loss": 0.1})
    mirror.finish({"final": {"pass@1": 0.5}})
    assert log.records() == [{"type": "step", "step": 1, "epoch": 0.5, "loss": 0.1}]


def test_disabled_wandb_is_a_null_mirror_without_importing_wandb(tmp_path):
    assert isinstance(
        start_wandb("disabled", project="p", name="n", run_dir=tmp_path, config={}, run_id="i"), NullMirror
    )
