"""The GPU check: Qwen3-1.7B's shape, random weights, eval_test_improved's settings, a 24 GiB card, a few GRPO steps.

Each case runs the stable CLI (experiments/run_eval_test.py's `main`) in a process of its own
(tests/gpu/run_case.py) on eval_test_improved.yaml's settings (8 completions per prompt, 512-token budget, beta 0.05,
LoRA rank 16, temperature 0.9, learning rate 5e-5) with the model swapped for a random-weight Qwen3-1.7B built on
the device (no hub; Countdown prompts, generated offline, instead of GSM8K's download), for STEPS GRPO steps (step
1 pays torch.compile, step 2 is a steady one) and a greedy evaluation of 2 prompts. GPU memory is capped to 24 GiB,
and each case's peak is held against the memory planner's plan for the same config on a 24 GiB card. Random
weights generate to the full budget: the worst case.

    qwen3-1.7b-unsloth-16bit    unsloth 16-bit + LoRA (the recipe's default on 24 GB: first, so it runs cold)
    qwen3-1.7b-unsloth-4bit     unsloth 4-bit + LoRA, transformers generation
    qwen3-1.7b-unsloth-vllm     16-bit + LoRA with vLLM rollouts and evaluation; only where vLLM imports

Results (one entry per case, written when it ends) go to $GPU_CHECK_OUT/results.json with each case's log beside
it; tests/gpu/run_offline.sh runs this and writes the summary. Each case's time limit is GRPO_LAB_GPU_CASE_SECONDS
(default 200), cut to what is left before $GPU_CHECK_DEADLINE (run_offline.sh: GRPO_LAB_GPU_BUDGET_SECONDS, default
480), so the whole check ends inside its budget; a case with too little time left is skipped, saying so
(run_case.py has the arithmetic). GRPO_LAB_GPU_CASES (comma-separated names) runs only those cases: a second,
narrower call.

    uv run --extra gpu pytest tests/gpu -s      # on a CUDA machine; elsewhere every case skips, saying why
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import results  # noqa: E402 - tests/gpu is not a package on the device's path
from run_case import run_case_limited  # noqa: E402

RECIPE = ROOT / "experiment_configs" / "eval_test_improved.yaml"
SHAPE = "Qwen3-1.7B"
STEPS = 2
CAP_GIB = float(os.environ.get("GPU_CHECK_MEMORY_CAP_GIB", "24"))
# In the order they run: 16-bit first, the recipe's default on a 24 GB card, so the budget never skips it.
CASES = {
    "qwen3-1.7b-unsloth-16bit": {"model": {"load_in_4bit": False, "fast_inference": False}},
    "qwen3-1.7b-unsloth-4bit": {"model": {"load_in_4bit": True, "fast_inference": False}},
    "qwen3-1.7b-unsloth-vllm": {"model": {"load_in_4bit": False, "fast_inference": True}},
}
SELECTED = [name.strip() for name in os.environ.get("GRPO_LAB_GPU_CASES", "").split(",") if name.strip()]
BUILD_LIMIT_S = 120


def case_config(recipe: dict, model_dir: Path, case: dict) -> dict:
    """eval_test_improved's settings with the random model, offline Countdown prompts and a short run."""
    config = json.loads(json.dumps(recipe))  # a deep copy
    config["name"] = "gpu-check"
    config["model"].update(name=str(model_dir), backend="unsloth", **case["model"])
    config["data"] = {"task": "countdown", "train_samples": 16, "test_samples": 2, "prompt_template": "r1_zero"}
    config["rewards"] = ["hard_format_reward", "countdown_reward"]
    config["train"].update(max_steps=STEPS, num_epochs=1)
    config["eval"] = {"zero_shot": False, "when": "end", "pass_k": [], "max_new_tokens": 32, "batch_size": 2}
    config["logging"] = {"logging_steps": 1, "wandb": "disabled"}
    config["output"] = {"save_adapter": False}
    return config


def out_dir() -> Path:
    return Path(os.environ.get("GPU_CHECK_OUT") or ROOT / ".cache" / "gpu-check" / "out")


def seconds_left() -> float:
    deadline = os.environ.get("GPU_CHECK_DEADLINE")
    return float(deadline) - time.time() if deadline else float("inf")


def unknown_cases() -> list[str]:
    return [name for name in SELECTED if name not in CASES]


def vllm_missing() -> str | None:
    """Why vLLM cannot run here, or None; checked in a child (importing vLLM here would import transformers)."""
    done = subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        return None
    last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
    return f"vLLM does not import here ({last}): its wheel is 311 MiB, over what a 64 MiB carry holds"


def vllm_share_of_capped_card() -> float:
    """Standby's vLLM share of a CAP_GIB card (train.lab.memory_plan), as a fraction of this card's memory."""
    import torch

    from train.lab.memory_plan import standby_gpu_memory_utilization

    total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    return standby_gpu_memory_utilization(CAP_GIB) * min(1.0, CAP_GIB / total_gib)


@pytest.fixture(scope="session")
def shared(tmp_path_factory):
    """The random model (built once, in a child), the recipe, and where results go."""
    if unknown_cases():
        pytest.fail(f"GRPO_LAB_GPU_CASES names unknown cases {unknown_cases()}; the cases: {', '.join(CASES)}")
    root = tmp_path_factory.mktemp("gpu")
    out = out_dir()
    out.mkdir(parents=True, exist_ok=True)
    model_dir = root / "qwen3-1.7b-random"
    done = subprocess.run(
        [sys.executable, str(HERE / "run_case.py"), "build-model", SHAPE, str(model_dir)],
        capture_output=True,
        text=True,
        timeout=min(BUILD_LIMIT_S, max(1, seconds_left())),
        start_new_session=True,
    )
    if done.returncode != 0:
        pytest.fail(f"building the random {SHAPE} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    results.update(out / "results.json", model=facts)
    return {"root": root, "out": out, "model_dir": model_dir, "recipe": yaml.safe_load(RECIPE.read_text())}


@pytest.mark.parametrize("case", list(CASES))
def test_grpo_steps_within_a_24gb_card(case, shared):
    out = shared["out"]
    record = lambda **fields: results.add_case(out / "results.json", case, fields)  # noqa: E731
    if SELECTED and case not in SELECTED:
        reason = f"not in GRPO_LAB_GPU_CASES ({', '.join(SELECTED)})"
        record(status="skipped", reason=reason)
        pytest.skip(reason)
    if case.endswith("vllm") and (reason := vllm_missing()):
        record(status="skipped", reason=reason)
        pytest.skip(reason)

    case_dir = shared["root"] / case
    case_dir.mkdir()
    config_path = case_dir / "config.yaml"
    config = case_config(shared["recipe"], shared["model_dir"], CASES[case])
    extra_env = {}
    if config["model"]["fast_inference"]:
        # vLLM sizes its share from the whole card, past torch's 24 GiB cap on a larger one: give it Standby's
        # 24 GiB share as a fraction of this card, and keep unsloth from replacing it.
        config["model"]["gpu_memory_utilization"] = round(vllm_share_of_capped_card(), 3)
        extra_env["UNSLOTH_VLLM_STANDBY_UTIL_OVERRIDE"] = "1"
    config_path.write_text(yaml.safe_dump(config))
    result_path = case_dir / "result.json"
    env = {
        **extra_env,
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "UNSLOTH_COMPILE_LOCATION": str(shared["root"] / "unsloth_compiled_cache"),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
    }
    log_path = out / f"{case}.log"
    argv = [sys.executable, str(HERE / "run_case.py"), "run", str(result_path), str(CAP_GIB), str(config_path)]
    result = run_case_limited([*argv, str(case_dir / "run")], result_path, log_path, env=env, cwd=shared["root"])
    record(**result)
    if result["status"] == "skipped":
        pytest.skip(result["reason"])

    assert result["status"] == "passed", f"{case}: {result['reason']} (log: {log_path})"
    assert result["steps"] == list(range(1, STEPS + 1)), result.get("steps")
    assert all(isinstance(t, int | float) and t > 0 for t in result["step_time_s"]), result["step_time_s"]
    assert result["evals"] == ["final"], result["evals"]
    assert 0 < result["peak_allocated_gib"] <= CAP_GIB
