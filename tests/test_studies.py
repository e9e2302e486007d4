"""The study sweeps in experiment_configs/studies/: every run of every study validates as an experiment config
(load_config with its overrides, as run_eval_test.py will load it), each GPU study has its CPU miniature, the
miniatures' rewards fit their task's columns, and the GPU studies keep the modest sizes that fit one 24 GB card.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from train.config import load_config
from train.lab.sweep import load_sweep
from train.tasks import build_rewards, get_task

STUDIES = Path(__file__).resolve().parent.parent / "experiment_configs" / "studies"
SWEEPS = sorted(STUDIES.glob("*.yaml"))
GPU_SWEEPS = [path for path in SWEEPS if not path.stem.endswith("_mini")]
MINIATURES = [path for path in SWEEPS if path.stem.endswith("_mini")]


def configs(path: Path):
    sweep = load_sweep(path)  # raises UserError naming the run if any run does not validate
    return [(run, load_config(sweep.base, run.set_args())) for run in sweep.runs]


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_every_run_of_the_study_validates(path):
    runs = configs(path)
    assert runs, f"{path.name} has no runs"
    names = [run.name for run, _ in runs]
    assert len(set(names)) == len(names)


def test_each_gpu_study_has_a_cpu_miniature():
    assert len(GPU_SWEEPS) >= 5
    assert sorted(p.stem for p in MINIATURES) == sorted(f"{p.stem}_mini" for p in GPU_SWEEPS)


@pytest.mark.parametrize("path", MINIATURES, ids=lambda p: p.stem)
def test_a_miniature_runs_on_the_builtin_model_and_its_rewards_fit_the_task(path):
    for run, cfg in configs(path):
        assert cfg.model.is_builtin_tiny and cfg.data.task == "countdown", run.name
        task = get_task(cfg.data)
        rows = task.load_split("train", cfg.data.train_samples)
        build_rewards(cfg.rewards, task, columns=rows.column_names)  # a reward needing a missing column raises


@pytest.mark.parametrize("path", GPU_SWEEPS, ids=lambda p: p.stem)
def test_a_gpu_study_keeps_the_sizes_of_one_24gb_card(path):
    for run, cfg in configs(path):
        assert not cfg.model.is_builtin_tiny and cfg.model.load_in_4bit, run.name
        assert cfg.train.max_completion_length <= 2048 and cfg.train.num_generations <= 8, run.name
        # tokens in one training micro-batch: completions per device x the longest sequence
        assert cfg.train.per_device_train_batch_size * cfg.model.max_seq_length <= 12_288, run.name


@pytest.mark.parametrize("path", GPU_SWEEPS, ids=lambda p: p.stem)
def test_every_run_of_a_gpu_study_fits_a_24_gb_card_by_the_planner(path):
    """The studies are sized for one 24 GB card: each run's plan on the unsloth backend (the GPU default) fits."""
    from train.lab.memory_check import check_fits

    for run, cfg in configs(path):
        plan = check_fits(cfg, 24.0, "unsloth")  # a UserError with advice if it does not fit
        assert plan.fits, run.name
