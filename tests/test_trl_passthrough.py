"""train.trl: any field of TRL's GRPOConfig passed through, checked against the installed TRL before the run dir."""

from __future__ import annotations

import pytest
from conftest import entry_point, write_tiny_config
from datasets import Dataset

from train.config import validate_config
from train.grpo.arguments import resolve
from train.grpo.trainer import GRPOLabTrainer
from train.models.builtin import build_tokenizer, random_tiny_model


def test_a_passed_through_field_reaches_the_trainers_args(tmp_path):
    cfg = validate_config(
        {
            "model": {"max_seq_length": 64},
            "train": {"beta": 0.0, "num_generations": 2, "max_completion_length": 8, "trl": {"top_k": 7}},
        }
    )
    tokenizer = build_tokenizer()
    trainer = GRPOLabTrainer(
        model=random_tiny_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=0),
        processing_class=tokenizer,
        reward_funcs=[lambda completions, **kwargs: [0.0] * len(completions)],
        args=resolve(cfg, "hf", output_dir=tmp_path).grpo_config(),
        train_dataset=Dataset.from_list([{"prompt": "1 2 -> 3\n"}]),
    )
    assert trainer.args.top_k == 7
    assert trainer.generation_config.top_k == 7  # TRL hands it to its rollouts


def refused(tmp_path, capsys, trl: dict) -> str:
    config = write_tiny_config(tmp_path, train={"trl": trl})
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        entry_point("run_eval_test")([str(config), "--output-dir", str(runs / "r")])
    assert exit_info.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in message
    assert not (runs / "r").exists()  # refused before the run dir exists
    return message


@pytest.mark.usefixtures("offline")
def test_an_unknown_field_exits_2_with_a_did_you_mean(tmp_path, capsys):
    message = refused(tmp_path, capsys, {"top_kk": 5})
    assert "train.trl.top_kk is not a field of TRL's GRPOConfig" in message and "Did you mean top_k" in message


@pytest.mark.usefixtures("offline")
def test_a_field_the_schema_owns_names_its_key(tmp_path, capsys):
    message = refused(tmp_path, capsys, {"epsilon": 0.3})
    assert "train.trl.epsilon" in message and "from train.clip_eps" in message


@pytest.mark.usefixtures("offline")
def test_a_value_of_the_wrong_type_is_refused_before_the_run(tmp_path, capsys):
    message = refused(tmp_path, capsys, {"top_k": "fifty"})
    assert "train.trl.top_k is 'fifty'" in message and "a whole number" in message
