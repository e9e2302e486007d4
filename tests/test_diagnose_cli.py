"""experiments/diagnose.py: a real TRL GRPOTrainer run (plain trl, none of our trainer) on a tiny model built here,
diagnosed from its checkpoint's trainer_state.json; our run dir; and one paragraph with exit code 2 on a path it
cannot read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments import diagnose

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "report_run"


def constant_reward(completions, **kwargs):
    """Every completion gets 1.0: the reward that never varies."""
    return [1.0] * len(completions)


def length_reward(completions, **kwargs):
    """Longer is better, so groups differ and the trainer has something to learn."""
    return [len(completion) / 8 for completion in completions]


@pytest.fixture(scope="module")
def trl_output_dir(tmp_path_factory) -> Path:
    """A plain TRL GRPOTrainer, TRL's test settings (3 completions a step, groups of 3, 8 tokens, bf16 off), 4 steps
    on the built-in tokenizer's tiny random Qwen2, a checkpoint at step 4."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from train.models.builtin import build_tokenizer, random_tiny_model

    output_dir = tmp_path_factory.mktemp("trl-run")
    tokenizer = build_tokenizer()
    model = random_tiny_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, max_positions=64)
    prompts = Dataset.from_dict({"prompt": [f"{a} {b} -> " for a in range(3) for b in range(4)]})
    config = GRPOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=3,
        num_generations=3,
        max_completion_length=8,
        bf16=False,
        max_steps=4,
        logging_steps=1,
        save_steps=4,
        learning_rate=1e-3,
        report_to="none",
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[constant_reward, length_reward],
        args=config,
        train_dataset=prompts,
    )
    trainer.train()
    return output_dir


def test_a_real_trl_run_is_diagnosed_from_its_checkpoint_trainer_state(trl_output_dir, capsys):
    state = trl_output_dir / "checkpoint-4" / "trainer_state.json"
    assert state.is_file()
    result = diagnose.main([str(trl_output_dir)])  # the output dir: its newest checkpoint's trainer_state.json
    assert result.source == "trainer_state.json of checkpoint-4 (4 logged steps)"
    constant = [f for f in result.findings if f.name == "constant_reward"]
    assert [f.subject for f in constant] == ["constant_reward"]  # TRL logged rewards/constant_reward/std 0 each step
    assert "scored 1 on every training completion of epoch 1 (steps 1-4)" in constant[0].evidence
    assert "no samples in these records" in constant[0].evidence
    assert any("needs held-out evaluations" in reason for reason in result.skipped)
    assert result.verdict.learning is not None and "no held-out evaluation" in result.verdict.line
    printed = capsys.readouterr().out
    assert "constant_reward never varies" in printed and "skipped:" in printed
    # The file itself, as JSON: the same diagnosis.
    assert diagnose.main([str(state), "--json"]).verdict == result.verdict
    as_json = json.loads(capsys.readouterr().out)
    assert as_json["source"] == result.source and as_json["findings"][0]["severity"] in ("problem", "watch", "note")


def test_our_run_dir_is_diagnosed_with_its_evaluations(tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    result = diagnose.main([str(run_dir)])
    assert result.verdict.line.startswith("not learning measurably: greedy pass@1 (zero-shot -> final) 0.250 -> 0.750")
    assert [f.name for f in result.findings] == ["within_noise"]
    assert "verdict" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, says",
    [
        ("{not json", "is not valid JSON (line 1, column 2"),
        ("[1, 2]", "has no log_history list"),
        (b"\xff\xfe\x00", "cannot read"),
    ],
)
def test_a_file_it_cannot_read_is_one_paragraph_and_exit_2(tmp_path, capsys, content, says):
    path = tmp_path / "trainer_state.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SystemExit) as stopped:
        diagnose.main([str(path)])
    assert stopped.value.code == 2
    error = " ".join(capsys.readouterr().err.split())
    assert says in error and "Pass a trainer_state.json" in error


def test_a_directory_with_nothing_to_read_names_what_to_pass(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        diagnose.main([str(tmp_path)])
    assert stopped.value.code == 2
    assert "no checkpoint-N/trainer_state.json" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(SystemExit):
        diagnose.main([str(tmp_path / "missing")])
    assert "does not exist" in capsys.readouterr().err
