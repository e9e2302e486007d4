"""Shared test helpers: the offline environment, the tiny experiment on disk, JSONL files, the entry points, and a
reward's scores on completions."""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TINY_CONFIG = ROOT / "experiment_configs" / "tiny.yaml"


def tiny_experiment(**sections: Any) -> dict[str, Any]:
    """experiment_configs/tiny.yaml as a raw config dict, with `sections` deep-merged over it (a None value removes
    a key): the smallest experiment that runs the whole loop in seconds.

        cfg = validate_config(tiny_experiment(train={"num_epochs": 1}))
    """
    return _merge(yaml.safe_load(TINY_CONFIG.read_text()), sections)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


@pytest.fixture(scope="session")
def builtin_cache(tmp_path_factory) -> Path:
    """One built-in model cache for the session: each tiny model is built once."""
    return tmp_path_factory.mktemp("builtin-cache")


@pytest.fixture(scope="session")
def smollm2_dir(builtin_cache) -> Path:
    """The packaged SmolLM2-135M-Instruct converted into the session's cache, once (about half a minute)."""
    from train.models.packaged import packaged_model_dir

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRPO_LAB_CACHE", str(builtin_cache))
        return packaged_model_dir("builtin:smollm2-135m-instruct")


@pytest.fixture
def offline(monkeypatch, builtin_cache, tmp_path) -> None:
    """No hub, no wandb server, the session's model cache."""
    monkeypatch.setenv("GRPO_LAB_CACHE", str(builtin_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)


def write_tiny_config(directory: Path, **sections: Any) -> Path:
    """experiment_configs/tiny.yaml with `sections` merged in, written as directory/<name>.yaml."""
    config = tiny_experiment(**sections)
    path = Path(directory) / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """One JSON value per line (a row that is already a string is written as is: malformed input on purpose)."""
    path = Path(path)
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def entry_point(script: str) -> Callable[..., Any]:
    """The `main` behind experiments/<script>.py: the library's (train.run.main) for the training run, else the
    script's own, imported by module name (the checkout is on the path; experiments/ is a namespace package)."""
    if script == "run_eval_test":
        from train.run import main

        return main
    return importlib.import_module(f"experiments.{script}").main


def score(reward: Any, completions: list[Any], **columns: Any) -> list[float | None]:
    """The scores of a reward (a registry name, or a built reward) on completions, called as TRL calls it."""
    from rewards import get_reward

    function = get_reward(reward) if isinstance(reward, str) else reward
    return function(completions=completions, **columns)


def run_with_checkpoints(tmp_path: Path, steps=(2, 4)) -> Any:
    """A run dir (RunDir) of the tiny config holding a finished checkpoint (state, weights, optimizer, scheduler) at
    each step, a zero-shot record, and the step records of every step up to the last."""
    import torch
    from safetensors.torch import save_file

    from train.config import load_config
    from train.records.rundir import RunDir
    from train.records.tracking import MetricsLog

    run = RunDir.choose(load_config(write_tiny_config(tmp_path)), tmp_path / "run", resume=False)
    run.open()
    run.close()
    log = MetricsLog(run.metrics_path)
    log.write({"type": "eval", "label": "zero_shot", "step": 0, "epoch": 0.0})
    for step in range(1, max(steps) + 1):
        log.write({"type": "step", "step": step, "epoch": step / 4})
    for step in steps:
        checkpoint = run.checkpoint_dir / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True)
        (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        save_file({"w": torch.ones(64)}, str(checkpoint / "model.safetensors"))
        torch.save({"state": {}}, checkpoint / "optimizer.pt")
        torch.save({"last_epoch": step}, checkpoint / "scheduler.pt")
    return run
