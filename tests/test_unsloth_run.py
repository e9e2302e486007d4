"""The unsloth backend run for real on a CPU: the quickstart through FastLanguageModel, GRPO, evaluation, adapter
and --resume, with unsloth 2026.10.9's CPU backend (CI runs this file in the gpu-extra environment).

Each run is its own process: unsloth must be imported before trl, transformers and peft, and it patches them for
the whole process. Where unsloth is not installed (the default environment) the file is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train.records.format import summary_eval

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("unsloth") is None, reason="unsloth is in the gpu extra: uv sync --extra gpu"
    ),
]

ROOT = Path(__file__).resolve().parent.parent
# The quickstart, smaller: 16 prompts (8 steps of 2 prompts x 8 completions an epoch), a shorter warm start.
OVERRIDES = [
    "model.backend=unsloth",
    "model.lora_rank=16",
    "model.builtin.sft_steps=200",
    "data.train_samples=16",
    "data.test_samples=10",
    "train.num_epochs=2",
    "train.learning_rate=2e-3",
    "eval.pass_k=[1,2]",
    "logging.wandb=disabled",
]
STEPS_PER_EPOCH = 8


def command(run_dir: Path, *extra: str) -> list[str]:
    config = ROOT / "experiment_configs" / "quickstart.yaml"
    sets = [arg for override in OVERRIDES for arg in ("--set", override)]
    return [
        sys.executable,
        str(ROOT / "experiments" / "run_eval_test.py"),
        str(config),
        "--output-dir",
        str(run_dir),
    ] + (list(extra) if extra else sets)


def environment(cache: Path) -> dict[str, str]:
    return {**os.environ, "GRPO_LAB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def records(run_dir: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if row["type"] == kind]


def test_the_quickstart_runs_through_unsloth_on_a_cpu_and_resumes_after_a_kill(tmp_path):
    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    env = environment(cache)
    # First session: killed (SIGKILL, no clean-up) once epoch 1's checkpoint is complete.
    process = subprocess.Popen(command(run_dir), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint = run_dir / "checkpoints" / f"checkpoint-{STEPS_PER_EPOCH}" / "trainer_state.json"
    deadline = time.monotonic() + 900
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), process.communicate()[0][-3000:] if process.poll() is not None else "timed out"
    process.send_signal(signal.SIGKILL)
    first_output = process.communicate()[0]
    assert "no GPU found, training on CPU" in first_output  # unsloth's own CPU backend loaded the model
    assert "Unsloth (CPU): Qwen2ForCausalLM" in first_output
    assert "unsloth is running on its CPU backend" in first_output  # our one plain-words note
    assert [row["epoch"] for row in records(run_dir, "epoch")] == [1]

    resumed = subprocess.run(
        command(run_dir, "--resume"), env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == "unsloth"
    assert [epoch["epoch"] for epoch in summary["epochs"]] == [1, 2]
    assert all(epoch["num_samples"] == 16 * 8 for epoch in summary["epochs"])
    assert [row["step"] for row in records(run_dir, "step")] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert [row["label"] for row in records(run_dir, "eval")] == ["zero_shot", "epoch_1", "epoch_2", "final"]
    assert 0.0 <= summary_eval(summary, "final")["pass@1"] <= 1.0
    # A LoRA adapter (unsloth trains LoRA only), readable by peft.
    adapter = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 16
