"""End to end: a few real GRPO steps on the built-in tiny model, through experiments/run_eval_test.py.

One run (module fixture) is checked from every side: the run dir, metrics.jsonl, the epoch accumulation against the
per-step records, summary.json, the saved weights, and the offline wandb files. A second pair of runs crashes at
the end of epoch 2 (after its records, before its checkpoint) and resumes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import entry_point, write_tiny_config

from train.records.format import summary_eval

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("offline")]

run_eval_test_main = entry_point("run_eval_test")
PROMPTS_PER_EPOCH = 8
GENERATIONS = 4
STEPS_PER_EPOCH = PROMPTS_PER_EPOCH * GENERATIONS // 8  # 8 completions per step


def tiny_config(tmp_path: Path, **train: object) -> Path:
    return write_tiny_config(tmp_path, name="e2e", train=train, logging={"wandb": "offline"})


@pytest.fixture(scope="module")
def run(tmp_path_factory, builtin_cache) -> Path:
    """One real run: zero-shot eval, 2 epochs of GRPO with an eval each, final eval."""
    tmp_path = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRPO_LAB_CACHE", str(builtin_cache))
        patch.setenv("WANDB_DIR", str(tmp_path))
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("WANDB_SILENT", "true")
        patch.delenv("WANDB_API_KEY", raising=False)
        run_eval_test_main([str(tiny_config(tmp_path)), "--output-dir", str(tmp_path / "run")])
    return tmp_path / "run"


def records(run_dir: Path, kind: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if kind is None or row["type"] == kind]


def test_run_dir_holds_config_metrics_summary_samples_and_adapter(run):
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "adapter/config.json", "adapter/tokenizer.json"):
        assert (run / name).exists(), name
    # The report, rebuilt after every epoch and at the end (then it says the run finished).
    assert "Finished" in (run / "report.md").read_text()
    assert (run / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert list((run / "plots").glob("*.png"))
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["beta"] == 0.04
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "epoch_1.jsonl",
        "epoch_2.jsonl",
        "final.jsonl",  # the last epoch's samples: the final eval is that same model's
        "zero_shot.jsonl",
    ]
    assert (run / "samples" / "final.jsonl").read_text() == (run / "samples" / "epoch_2.jsonl").read_text()


def test_every_optimizer_step_is_recorded_once(run):
    steps = [row["step"] for row in records(run, "step")]
    assert steps == list(range(1, 2 * STEPS_PER_EPOCH + 1))


def test_step_records_carry_rewards_and_reward_timings(run):
    for row in records(run, "step"):
        for name in ("hard_format_reward", "mark_reward", "countdown_reward"):
            assert row[f"timing/reward/{name}"] >= 0.0
            assert f"rewards/{name}/mean" in row
        assert "kl" in row  # beta > 0: TRL logs the KL to the reference policy


def test_epoch_accumulated_reward_is_the_sum_of_its_steps(run):
    steps, epochs = records(run, "step"), records(run, "epoch")
    assert [row["epoch"] for row in epochs] == [1, 2]
    start = 0
    for epoch in epochs:
        in_epoch = [row for row in steps if start < row["step"] <= epoch["step"]]
        start = epoch["step"]
        assert epoch["epoch/num_samples"] == PROMPTS_PER_EPOCH * GENERATIONS
        assert epoch["epoch/accumulated_reward"] == pytest.approx(sum(row["reward_sum"] for row in in_epoch))
        # TRL's own per-step mean reward times the step's completions adds up to the same total.
        assert epoch["epoch/accumulated_reward"] == pytest.approx(
            sum(row["reward"] * row["num_completions"] for row in in_epoch), rel=1e-4
        )
        assert epoch["epoch/mean_reward"] == pytest.approx(epoch["epoch/accumulated_reward"] / (8 * GENERATIONS))


def test_weighted_total_uses_the_configured_weights(run):
    for row in records(run, "step"):
        expected = (
            row["rewards/hard_format_reward/mean"]
            + 0.5 * row["rewards/mark_reward/mean"]
            + row["rewards/countdown_reward/mean"]
        )
        assert row["reward"] == pytest.approx(expected, abs=1e-5)


def test_summary_has_zero_shot_epochs_final_and_wall_time(run):
    summary = json.loads((run / "summary.json").read_text())
    for key in ("zero_shot", "final"):
        metrics = summary["evals"][summary[key]]  # each evaluation once, under its label
        assert 0.0 <= metrics["pass@1"] <= 1.0
        assert metrics["pass@1_sampled"] <= metrics["pass@2"]
    assert summary_eval(summary, "final") == summary["evals"]["epoch_2"]
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2]
    for epoch in summary["epochs"]:
        assert {"accumulated_reward", "mean_reward", "num_samples", "eval"} <= set(epoch)
        assert 0.0 <= summary["evals"][epoch["eval"]]["pass@1"] <= 1.0
    # The final eval is the last epoch's (the same model): reused, not generated twice.
    assert summary["final"] == "epoch_2"  # the final evaluation is epoch 2's (the same model), stored once
    assert "final" not in summary["evals"]
    assert summary["wall_seconds"] > 0


def test_training_changed_the_weights(run, builtin_cache, monkeypatch):
    from safetensors.torch import load_file

    from train.config import load_config
    from train.models.builtin import builtin_model_dir
    from train.tasks import get_task

    monkeypatch.setenv("GRPO_LAB_CACHE", str(builtin_cache))
    cfg = load_config(run / "config.yaml")
    built = builtin_model_dir(cfg, get_task(cfg.data))  # this run's model among the session's other built ones
    before = load_file(built / "model.safetensors")
    after = load_file(run / "adapter" / "model.safetensors")
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert len(changed) >= len(before) // 2


def test_offline_wandb_run_holds_our_epoch_and_eval_keys(run):
    (history,) = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    data = history.read_bytes()
    for key in (b"epoch/accumulated_reward", b"epoch/mean_reward", b"eval/pass@1", b"eval/pass@2", b"train/reward"):
        assert key in data, key


def test_a_run_killed_after_its_epoch_records_resumes_without_losing_or_repeating_any(tmp_path, monkeypatch):
    from train.grpo.callbacks import EpochCallback

    config = tiny_config(tmp_path, num_epochs=3)
    run_dir = tmp_path / "run"
    original = EpochCallback.on_epoch_end

    def crash_after_epoch_2(self, args, state, control, **kwargs):
        result = original(self, args, state, control, **kwargs)
        if round(state.epoch) == 2:  # records written, checkpoint-8 not yet saved
            raise KeyboardInterrupt
        return result

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setattr(EpochCallback, "on_epoch_end", crash_after_epoch_2)
    with pytest.raises(SystemExit, match="130"):  # a Ctrl-C ends the run with 130 and the resume command
        run_eval_test_main([str(config), "--output-dir", str(run_dir), "--set", "logging.wandb=disabled"])
    assert [row["epoch"] for row in records(run_dir, "epoch")] == [1, 2]
    assert [p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")] == [f"checkpoint-{STEPS_PER_EPOCH}"]

    monkeypatch.setattr(EpochCallback, "on_epoch_end", original)
    summary = run_eval_test_main([str(config), "--output-dir", str(run_dir), "--resume"])

    assert [row["step"] for row in records(run_dir, "step")] == list(range(1, 3 * STEPS_PER_EPOCH + 1))
    assert [row["epoch"] for row in records(run_dir, "epoch")] == [1, 2, 3]
    labels = [row["label"] for row in records(run_dir, "eval")]
    assert labels == ["zero_shot", "epoch_1", "epoch_2", "epoch_3", "final"]
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2, 3]
    assert all(e["num_samples"] == PROMPTS_PER_EPOCH * GENERATIONS for e in summary["epochs"])
    assert not math.isnan(summary_eval(summary, "final")["pass@1"])


def test_evaluation_every_n_steps_records_step_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    config = tiny_config(tmp_path, num_epochs=1)
    overrides = ["eval.when=steps", "eval.every_steps=2", "eval.zero_shot=false", "logging.wandb=disabled"]
    run_dir = tmp_path / "run"
    run_eval_test_main([str(config), "--output-dir", str(run_dir), *[f"--set={o}" for o in overrides]])
    labels = [row["label"] for row in records(run_dir, "eval")]
    assert labels == ["step_2", "step_4", "final"]  # no zero-shot; the final eval reuses step 4's (same model)


def test_a_record_torn_by_a_kill_is_dropped_on_resume(tmp_path):
    from train.records.tracking import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write({"type": "eval", "label": "zero_shot", "step": 0, "epoch": 0.0})
    log.write({"type": "step", "step": 1, "epoch": 0.1})
    with log.path.open("a") as handle:
        handle.write('{"type": "step", "step": 2, "ep')  # killed mid-write
    assert [row["step"] for row in log.records()] == [0, 1]
    assert log.truncate_after(1) == 0
    assert log.path.read_text().endswith('"epoch": 0.1}\n')  # the torn line is gone from the file too


def test_training_rollouts_after_an_epoch_evaluation_are_those_of_a_run_without_it(tmp_path):
    """Evaluation forks the random state: epoch 2 generates the same completions with or without epoch 1's eval."""
    config = tiny_config(tmp_path, num_epochs=2)
    for when in ("epoch", "end"):
        run_eval_test_main(
            [
                str(config),
                "--output-dir",
                str(tmp_path / when),
                "--set",
                f"eval.when={when}",
                "--set",
                "logging.wandb=disabled",
            ]
        )
    keys = ("reward_sum", "completions/mean_length", "loss")
    with_eval = [[row[k] for k in keys] for row in records(tmp_path / "epoch", "step")]
    without_eval = [[row[k] for k in keys] for row in records(tmp_path / "end", "step")]
    assert with_eval == without_eval


def test_a_run_resumed_mid_epoch_trains_the_prompts_of_an_uninterrupted_run_in_its_order(tmp_path, monkeypatch):
    """TRL's sampler restarts on resume; ours serves each epoch its own permutation, so nothing is skipped or
    reordered: the per-step prompts of a killed-and-resumed run equal those of a run that was never stopped."""
    from train.grpo.trainer import GRPOLabTrainer

    original = GRPOLabTrainer._calculate_rewards
    seen: dict[int, list[str]] = {}
    kill_at: list[int] = []

    def recording(self, inputs, prompts, completions, completion_ids_list):
        if kill_at and self.state.global_step == kill_at[0]:
            raise KeyboardInterrupt  # killed before step kill_at + 1 generates
        seen[self.state.global_step + 1] = list(prompts)
        return original(self, inputs, prompts, completions, completion_ids_list)

    monkeypatch.setattr(GRPOLabTrainer, "_calculate_rewards", recording)
    config = tiny_config(tmp_path, num_epochs=3, save_steps=5)
    quiet = ["--set", "logging.wandb=disabled", "--set", "eval.zero_shot=false", "--set", "eval.when=end"]
    run_eval_test_main([str(config), "--output-dir", str(tmp_path / "whole"), *quiet])
    uninterrupted = dict(seen)
    assert len(uninterrupted) == 3 * STEPS_PER_EPOCH

    seen.clear()
    kill_at.append(6)  # mid-epoch 2; the newest checkpoint is checkpoint-5 (save_steps), also mid-epoch
    with pytest.raises(SystemExit, match="130"):
        run_eval_test_main([str(config), "--output-dir", str(tmp_path / "killed"), *quiet])
    kill_at.clear()
    run_eval_test_main([str(config), "--output-dir", str(tmp_path / "killed"), "--resume"])
    assert seen == uninterrupted


def test_a_full_disk_while_checkpointing_is_one_paragraph_and_keeps_the_records(tmp_path, monkeypatch, capsys):
    """torch reports a full disk as "unexpected pos"; the user is told there is no space, where, and to --resume."""
    from train.grpo.trainer import GRPOLabTrainer

    def disk_full(self, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 8530560 vs 8530448")

    monkeypatch.setattr(GRPOLabTrainer, "_save_checkpoint", disk_full)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run_eval_test_main([str(tiny_config(tmp_path, num_epochs=1)), "--output-dir", str(run_dir)])
    assert exit_info.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "no space left on device" in message and str(run_dir) in message and "--resume" in message
    assert [row["epoch"] for row in records(run_dir, "epoch")] == [1]  # logged before the checkpoint: kept
