"""Two GRPO steps on a real architecture through unsloth: the packaged SmolLM2-135M-Instruct (a LlamaForCausalLM,
30 layers) loaded by `FastLanguageModel.from_pretrained(..., load_in_4bit=True)` and given LoRA by
`FastLanguageModel.get_peft_model`, on unsloth 2026.10.9's CPU backend (bitsandbytes' CPU 4-bit), through
experiments/run_eval_test.py with `model.backend: unsloth`.

What it pins: the weights the run trains on are 4-bit (bitsandbytes Linear4bit layers in every projection), the
adapter's lora_B (zero at initialization) changed, and the KL to the reference (the base model with the adapter
disabled) is > 0 at step 2.

A subprocess, because unsloth must be imported before trl, transformers and peft and patches them for the whole
process; it records what `FastLanguageModel.from_pretrained` returned, then runs the entry point. Runs where unsloth
is installed (CI's second environment):

    UV_PROJECT_ENVIRONMENT=.venv-gpu uv run --extra gpu pytest tests/test_unsloth_smollm2.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2 = "builtin:smollm2-135m-instruct"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("unsloth") is None, reason="unsloth is in the gpu extra: uv sync --extra gpu"
    ),
]


def test_two_grpo_steps_on_smollm2_in_4bit_with_lora_through_unsloth(smollm2_dir, builtin_cache, tmp_path):
    (tmp_path / "chars.py").write_text(
        # Rewards that differ within a group whatever the untrained model writes, so the advantages are not all 0.
        "def chars_reward(completions, **kwargs):\n"
        "    return [len(c if isinstance(c, str) else c[0]['content']) / 50 for c in completions]\n"
    )
    config = {
        "name": "smollm2-unsloth",
        "model": {"name": SMOLLM2, "backend": "unsloth", "load_in_4bit": True, "lora_rank": 4, "max_seq_length": 256},
        "data": {
            "task": "arithmetic",
            "prompt_template": "chat",
            "stop_strings": [],
            "train_samples": 2,
            "test_samples": 1,
        },
        "rewards": [{"name": "chars_reward", "path": f"{tmp_path / 'chars.py'}:chars_reward"}],
        "train": {
            "max_steps": 2,
            "num_generations": 4,
            "per_device_train_batch_size": 4,
            "max_completion_length": 16,
            "learning_rate": 1e-3,
            "beta": 0.04,
        },
        "eval": {"zero_shot": False, "when": "end", "pass_k": [], "max_new_tokens": 8},
        "logging": {"wandb": "disabled"},
    }
    config_path = tmp_path / "smollm2-unsloth.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir, report = tmp_path / "run", tmp_path / "loaded.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "GRPO_LAB_CACHE": str(builtin_cache),  # the session's converted model (smollm2_dir)
        "UNSLOTH_COMPILE_LOCATION": str(tmp_path / "unsloth_compiled_cache"),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
    }
    env.pop("UNSLOTH_ALLOW_CPU", None)  # the CUDA-shaped test spoof would bypass the CPU backend under test
    done = subprocess.run(
        [sys.executable, __file__, str(config_path), str(run_dir), str(report)],
        cwd=tmp_path,  # unsloth writes unsloth_compiled_cache/ into the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]

    loaded = json.loads(report.read_text())
    assert loaded["source"] == str(smollm2_dir)
    assert loaded["architecture"] == "LlamaForCausalLM"
    assert loaded["linear4bit"] == 30 * 7  # every projection of every layer holds 4-bit weights

    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in steps if row["type"] == "step"]
    assert [row["step"] for row in steps] == [1, 2]
    assert steps[1]["kl"] > 0

    from safetensors.torch import load_file

    adapter = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    lora_b = [value for name, value in adapter.items() if "lora_B" in name]
    assert len(lora_b) == 30 * 7
    assert all(value.abs().sum() > 0 for value in lora_b)  # PEFT starts every lora_B at zero


def _child(config: str, run_dir: str, report: str) -> None:
    import unsloth  # noqa: F401 -- first: before trl, transformers and peft
    from unsloth import FastLanguageModel

    load = FastLanguageModel.from_pretrained

    def recording(*args, **kwargs):
        model, tokenizer = load(*args, **kwargs)
        Path(report).write_text(
            json.dumps(
                {
                    "source": kwargs.get("model_name", args[0] if args else None),
                    "architecture": type(model).__name__,
                    "linear4bit": sum(type(module).__name__ == "Linear4bit" for module in model.modules()),
                }
            )
        )
        return model, tokenizer

    FastLanguageModel.from_pretrained = recording
    from train.run import main  # what experiments/run_eval_test.py runs

    main([config, "--output-dir", run_dir])


if __name__ == "__main__":
    _child(*sys.argv[1:4])
