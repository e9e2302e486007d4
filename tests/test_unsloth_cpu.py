"""GRPOLabTrainer on top of unsloth's own GRPO trainer, two steps on a CPU (unsloth 2026.10.9's CPU backend).

What it pins, on a tiny 4-bit Qwen2 with LoRA loaded by unsloth's `FastLanguageModel`:
- `GRPOLabTrainer`'s parent class is `UnslothGRPOTrainer`, the class unsloth generates from trl's source
  (`unsloth/models/rl.py: _patch_trl_rl_trainers`), not trl's own GRPOTrainer;
- with `train.baseline: none` and `scale_rewards: none` the advantages that reach unsloth's loss are the raw weighted
  rewards (a constant reward of 1 plus 0.5 x a 0/2 reward: with TRL's mean baseline the constant part would vanish);
- the reward ledger counted every generated completion once, with the same summed reward;
- with beta > 0 the reference model ran (reference log-probs in the loss inputs) and every step logged a KL > 0;
- the LoRA weights changed.

Why a subprocess: unsloth must be imported before trl, transformers and peft, and it patches them for the whole
process. On a machine without a GPU driver 2026.10.9 selects its CPU backend at `import unsloth`, which leaves trl's
trainers alone; importing `unsloth.models.rl` loads unsloth's GPU-side modules, whose import runs `PatchFastRL`
and rewrites trl's RL trainers (trl.GRPOTrainer becomes UnslothGRPOTrainer). `_patch_trl_rl_trainers("grpo_trainer")`
is then called by name; it answers "already patched". train.grpo.trainer is imported after that, so GRPOLabTrainer
subclasses the patched class. NOTES-unsloth-cpu.md has the details.

Runs where unsloth is installed (CI's second environment: `uv sync --extra gpu` into .venv-gpu); about 45 s, most
of it importing unsloth.

    UV_PROJECT_ENVIRONMENT=.venv-gpu uv run --extra gpu pytest tests/test_unsloth_cpu.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATIONS = 4
STEPS = 2
WEIGHTS = [1.0, 0.5]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("unsloth") is None,
    reason="unsloth is not installed: it comes with the gpu extra (UV_PROJECT_ENVIRONMENT=.venv-gpu uv sync "
    "--extra gpu); CI runs this test in that second environment",
)


def test_grpo_lab_trainer_trains_on_unsloths_grpo_trainer_on_cpu(tmp_path):
    report = tmp_path / "report.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "UNSLOTH_COMPILE_LOCATION": str(tmp_path / "unsloth_compiled_cache"),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
    }
    env.pop("UNSLOTH_ALLOW_CPU", None)  # the CUDA-shaped test spoof would bypass the CPU backend under test
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, __file__, str(tmp_path), str(report)],
        cwd=tmp_path,  # unsloth writes unsloth_compiled_cache/ into the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, output
    seen = json.loads(report.read_text())
    seen["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(seen, indent=1))

    assert seen["backend"] == "cpu"
    assert seen["parent"] == "UnslothGRPOTrainer"
    assert seen["load_in_4bit_layers"] > 0

    # Every completion was scored once, and its advantage is its weighted raw reward (no group mean subtracted).
    completions = STEPS * GENERATIONS
    assert len(seen["rewards"]) == completions
    expected = [WEIGHTS[0] * constant + WEIGHTS[1] * digit for constant, digit in seen["rewards"]]
    # TRL shuffles a generated batch before splitting it into micro-batches: compare as multisets.
    assert sorted(seen["advantages_in_loss"]) == pytest.approx(sorted(expected))
    # With a group-mean baseline a group's advantages sum to 0; here each carries the constant reward's 1.
    assert min(seen["advantages_in_loss"]) >= 1.0

    assert seen["ledger"]["num_samples"] == completions
    assert seen["ledger"]["reward_sum"] == pytest.approx(sum(expected))
    assert seen["ledger"]["func_counts"] == {"constant_reward": completions, "digit_reward": completions}

    assert seen["beta"] > 0
    assert seen["ref_logps_in_loss"] == [True] * STEPS
    assert len(seen["kl"]) == STEPS and all(kl > 0 for kl in seen["kl"])
    assert seen["lora_changed"]


# --------------------------------------------------------------------------------------------------------------
# The child process: everything below runs with unsloth imported first.


def _child(work: Path, report: Path) -> None:
    import unsloth  # first: before trl, transformers and peft
    from unsloth import FastLanguageModel
    from unsloth.models.rl import _patch_trl_rl_trainers

    _patch_trl_rl_trainers("grpo_trainer")

    import torch
    from datasets import Dataset
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from train.config import validate_config
    from train.grpo.arguments import resolve
    from train.grpo.ledger import RewardLedger
    from train.grpo.trainer import GRPOLabTrainer
    from train.models.builtin import build_tokenizer

    # A tiny character-level Qwen2 saved as a model directory, as the built-in model is. Width 128: bitsandbytes'
    # CPU 4-bit needs layers at least 64 wide.
    tokenizer = build_tokenizer()  # the built-in model's character-level tokenizer
    torch.manual_seed(0)
    shape = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model_dir = work / "tiny"
    Qwen2ForCausalLM(shape).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    # unsloth's CPU loader reads the tokenizer with AutoTokenizer, which picks Qwen2Tokenizer from config.json and
    # drops the spaces of a character-level vocabulary: keep ours.
    model, _ = FastLanguageModel.from_pretrained(str(model_dir), max_seq_length=128, load_in_4bit=True)
    model = FastLanguageModel.get_peft_model(
        model,
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        use_gradient_checkpointing="unsloth",
        random_state=0,
    )
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}

    rewards: list[list[float]] = []

    def constant_reward(completions, **kwargs):
        return [1.0 for _ in completions]

    def digit_reward(completions, **kwargs):
        values = [2.0 if any(ch.isdigit() for ch in completion) else 0.0 for completion in completions]
        rewards.extend([1.0, value] for value in values)
        return values

    class Recording(GRPOLabTrainer):
        """Records what unsloth's loss receives."""

        advantages_in_loss: list[float] = []
        ref_logps_in_loss: list[bool] = []

        def compute_loss(self, model, inputs, *args, **kwargs):
            self.advantages_in_loss.extend(inputs["advantages"].flatten().tolist())
            self.ref_logps_in_loss.append(inputs.get("ref_per_token_logps") is not None)
            return super().compute_loss(model, inputs, *args, **kwargs)

    cfg = validate_config(
        {
            "model": {"max_seq_length": 128},
            "train": {
                "max_steps": STEPS,
                "beta": 0.04,
                "baseline": "none",
                "scale_rewards": "none",
                "loss_type": "grpo",
                "num_generations": GENERATIONS,
                "per_device_train_batch_size": GENERATIONS,
                "max_completion_length": 8,
                "learning_rate": 1e-2,
                "temperature": 1.0,
                "seed": 0,
            },
        }
    )
    ledger = RewardLedger(["constant_reward", "digit_reward"], WEIGHTS)
    trainer = Recording(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[constant_reward, digit_reward],
        args=resolve(cfg, "unsloth", output_dir=work / "out", reward_weights=WEIGHTS).grpo_config(),
        train_dataset=Dataset.from_list([{"prompt": f"{a}+{b}="} for a in range(4) for b in range(4)]),
        baseline="none",
        ledger=ledger,
    )
    trainer.train()

    totals = ledger.take_epoch()
    lora_after = {n: p.detach() for n, p in model.named_parameters() if "lora_B" in n}
    report.write_text(
        json.dumps(
            {
                "backend": unsloth.DEVICE_TYPE,
                "parent": GRPOLabTrainer.__mro__[1].__name__,
                "load_in_4bit_layers": sum(type(m).__name__ == "Linear4bit" for m in model.modules()),
                "rewards": rewards,
                "advantages_in_loss": Recording.advantages_in_loss,
                "ref_logps_in_loss": Recording.ref_logps_in_loss,
                "ledger": {
                    "num_samples": totals.num_samples,
                    "reward_sum": totals.reward_sum,
                    "func_counts": totals.func_counts,
                },
                "beta": trainer.args.beta,
                "kl": [row["kl"] for row in trainer.state.log_history if "kl" in row],
                "lora_changed": any(not torch.equal(lora_before[n], lora_after[n]) for n in lora_before),
                "bf16": trainer.args.bf16,
                "optim": str(trainer.args.optim),
            }
        )
    )


if __name__ == "__main__":
    _child(Path(sys.argv[1]), Path(sys.argv[2]))
