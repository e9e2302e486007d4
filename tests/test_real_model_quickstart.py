"""The real-model quickstart (experiment_configs/real_model_quickstart.yaml) as shipped, so that it cannot rot.

Fast: its test prompts are held out from its training prompts, and its rewards pay a correct answer more than the
layout alone, with no layout credit for a number copied from the question (issue 25).
Slow (the packaged SmolLM2-135M, converted once per session): the config itself, shrunk through --set to two GRPO
steps and four test prompts, runs end to end and writes a report that shows what the answer blocks hold.
"""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, entry_point

from rewards import get_reward
from train.config import load_config
from train.tasks import get_task

CONFIG = ROOT / "experiment_configs" / "real_model_quickstart.yaml"
SHRUNK = [
    "train.max_steps=2",
    "train.num_generations=2",
    "train.per_device_train_batch_size=2",
    "train.max_completion_length=8",
    "data.train_samples=2",
    "data.test_samples=4",
]


def test_the_quickstarts_test_prompts_are_held_out_from_its_training_prompts():
    config = load_config(CONFIG)
    task = get_task(config.data)
    train = task.load_split("train", config.data.train_samples)
    test = task.load_split("test", config.data.test_samples)
    assert len(test) == config.data.test_samples >= 50  # 20 points of pass@1 is 10 prompts or more
    assert len(train) == config.data.train_samples
    assert not set(train["question"]) & set(test["question"])
    assert not {json.dumps(p) for p in train["prompt"]} & {json.dumps(p) for p in test["prompt"]}


def test_the_quickstart_pays_a_right_answer_more_than_any_layout_and_nothing_for_a_copied_number():
    config = load_config(CONFIG)
    rewards = [(get_reward(spec.name, **spec.params), spec.weight) for spec in config.rewards]
    question = "Ava has 7 coins. She gets 2 more. How many coins does Ava have now?"

    def total(text):
        return sum(
            weight * reward(completions=[text], question=[question], answer=["9"])[0] for reward, weight in rewards
        )

    right, wrong, copied = total("<answer>9</answer>"), total("<answer>10</answer>"), total("<answer>7</answer>")
    untagged = total("7 + 2 = 9")
    assert right > 2 * wrong > 0  # correctness pays more than the layout alone
    assert copied == untagged == 0.0  # copying a number from the question earns no layout credit


@pytest.mark.slow
@pytest.mark.usefixtures("offline", "smollm2_dir")
def test_the_quickstart_config_runs_end_to_end_shrunk_and_reports_its_answer_blocks(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [item for key in SHRUNK for item in ("--set", key)]
    entry_point("run_eval_test")([str(CONFIG), *overrides, "--output-dir", str(run_dir)])

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in records if row["type"] == "step"] == [1, 2]
    evals = {row["label"]: row for row in records if row["type"] == "eval"}
    assert {"zero_shot", "final"} <= set(evals)
    assert all(row["eval/num_prompts"] == 4 for row in evals.values())
    report = (run_dir / "report.md").read_text()
    assert "What the answer blocks hold" in report and "number from the question" in report
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
