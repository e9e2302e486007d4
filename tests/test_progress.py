"""The console pieces on their own: the progress line, the thread rule, run dir names and the interruption line."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest
from conftest import write_tiny_config
from rich.console import Console

from train.config import load_config
from train.errors import UserError
from train.models.threads import SMALL_MODEL_PARAMETERS, choose_num_threads
from train.records.console import ProgressLine, headline_table, sample_lines
from train.records.rundir import RunDir, run_dir_name

TRL_LOGS = {
    "loss": 0.01,
    "reward": 1.5125,
    "rewards/hard_format_reward/mean": 0.5,
    "rewards/countdown_reward/mean": 1.0125,
    "kl": 0.1317,
    "completions/mean_length": 14.94,
    "epoch": 0.5,
}


def test_without_a_terminal_the_progress_line_is_one_plain_line_every_n_steps():
    out = io.StringIO()
    line = ProgressLine(Console(file=out, width=80), "quickstart", ["hard_format_reward", "countdown_reward"], every=2)
    args = SimpleNamespace(
        per_device_train_batch_size=16, gradient_accumulation_steps=1, world_size=1, num_iterations=1
    )
    state = SimpleNamespace(is_world_process_zero=True, global_step=0, max_steps=4, epoch=0.0, num_train_epochs=2)
    line.on_train_begin(args, state, None)
    for step in range(1, 5):
        state.global_step, state.epoch = step, step / 2
        line.on_step_end(args, state, None)
        line.on_log(args, state, None, logs=dict(TRL_LOGS))
    line.on_log(args, state, None, logs={"train_runtime": 1.0, "train_loss": 0.1})  # the closing log: not a line
    lines = out.getvalue().splitlines()
    assert [text.split("  ")[0] for text in lines] == ["quickstart step 2/4", "quickstart step 4/4"]
    assert "epoch 2.00/2" in lines[-1]
    assert "reward 1.51 (hard_format 0.50 countdown 1.01)  kl 0.132  length 14.9" in lines[-1]
    assert "samples/s" in lines[-1] and "elapsed" in lines[-1]


def test_one_thread_for_a_small_model_the_setting_wins_and_a_gpu_is_left_alone(monkeypatch):
    monkeypatch.setattr("train.models.threads.cpu_threads", lambda: 4)
    assert choose_num_threads(None, 371_424, on_gpu=False)[0] == 1  # the quickstart's model
    assert choose_num_threads(3, 371_424, on_gpu=False) == (3, "train.num_threads")
    with pytest.raises(UserError, match="train.num_threads 5 is more than the 4 CPU threads"):
        choose_num_threads(5, 371_424, on_gpu=False)  # 100000 made torch's thread pool fail once trl was imported
    assert choose_num_threads(0, 371_424, on_gpu=False)[0] == 1  # 0 means the rule
    assert choose_num_threads(None, 10**9, on_gpu=True)[0] is None
    monkeypatch.setattr("train.models.threads.cpu_cores", lambda: 8)
    monkeypatch.setattr("os.getloadavg", lambda: (0.4, 0.0, 0.0))
    assert choose_num_threads(None, SMALL_MODEL_PARAMETERS, on_gpu=False)[0] == 8
    monkeypatch.setattr("os.getloadavg", lambda: (6.2, 0.0, 0.0))  # six cores busy with other jobs
    assert choose_num_threads(None, None, on_gpu=False)[0] == 2
    monkeypatch.setattr("os.getloadavg", lambda: (30.0, 0.0, 0.0))
    assert choose_num_threads(None, None, on_gpu=False)[0] == 1


def test_a_run_dir_is_named_by_its_overrides_safely_and_briefly():
    when = "20261127-101500"
    assert run_dir_name("quickstart", [], when) == "quickstart-20261127-101500"
    assert run_dir_name("quickstart", ["train.loss_type=dr_grpo"], when) == "quickstart-loss_type=dr_grpo-" + when
    both = ["train.loss_type=dr_grpo", "train.scale_rewards=none"]
    assert run_dir_name("quickstart", both, when) == "quickstart-loss_type=dr_grpo,scale_rewards=none-" + when
    # seed is a key of several sections: its section stays; a list and a slash are made safe
    odd = ["data.seed=3", "eval.pass_k=[1, 5]", "model.name=Qwen/Qwen3-1.7B"]
    assert run_dir_name("q", odd, when) == "q-data.seed=3,pass_k=1+5,model.name=Qwen_Qwen3-1.7B-" + when
    many = [f"train.learning_rate={i}e-4" for i in range(20)]
    long, other = run_dir_name("q", many, when), run_dir_name("q", many[:-1], when)
    assert len(long) <= 120 and long != other and "/" not in long


def test_the_interruption_line_names_the_run_dir_and_the_resume_command(tmp_path):
    config = write_tiny_config(tmp_path)
    run = RunDir.choose(load_config(config), tmp_path / "run", resume=False)
    assert "nothing to resume" in run.interrupted_message()
    run.open(config_file=config)
    run.close()
    message = run.interrupted_message()
    assert message.startswith(f"interrupted: the run dir is {tmp_path / 'run'}")
    assert message.endswith(f"{config} --output-dir {tmp_path / 'run'} --resume")
    assert "from the start of training" in message
    (run.checkpoint_dir / "checkpoint-4").mkdir(parents=True)
    (run.checkpoint_dir / "checkpoint-4" / "trainer_state.json").write_text("{}")
    assert "(from checkpoint-4)" in run.interrupted_message()


def test_the_headline_table_puts_the_outcomes_in_one_row():
    zero_shot = {"pass@1": 0.04, "pass@1_sampled": 0.006, "correct_frac": 0.04, "partial_frac": 0.96}
    zero_shot |= {"failed_frac": 0.0, "reward/total": 1.156, "mean_output_tokens": 16.6}
    current = {**zero_shot, "pass@1": 0.14, "correct_frac": 0.14, "partial_frac": 0.86, "num_prompts": 50.0}
    console = Console(width=100, record=True)
    console.print(headline_table(zero_shot, current, "epoch 1 (step 100)"))
    text = console.export_text()
    assert "+0.100" in text and "correct/partial/failed" in text and "0.14/0.86/0.00" in text
    assert "+0.10/-0.10/+0.00" in text or "+0.10/-0.10/0.00" in text
    assert "50 prompts" in text
    rows = [line.split()[0] for line in text.splitlines()[3:-1]]  # after title, header and rule; before the caption
    assert rows == ["pass@1", "pass@1_sampled", "correct/partial/failed", "reward/total", "mean_output_tokens"]


def test_sample_lines_show_a_correct_and_a_wrong_completion_with_gold_and_rewards(tmp_path):
    def record(index, outcome, completion):
        rewards = {"hard_format_reward": 0.5, "countdown_reward": 1.0 if outcome == "correct" else 0.1}
        row = {"kind": "greedy", "index": index, "question": f"6 {index} -> 9", "target": 9, "outcome": outcome}
        return row | {"completion": completion, "rewards": rewards, "reward_total": sum(rewards.values())}

    rows = [record(0, "partial", "<answer>6+2</answer>"), record(1, "correct", "<answer>6+3</answer>")]
    rows += [record(2, "correct", "x"), {**record(3, "correct", "y"), "kind": "sampled"}, record(4, "failed", "z")]
    path = tmp_path / "epoch_1.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    lines = sample_lines(path)
    assert len(lines) == 4  # the first correct and the first partial, two lines each
    assert lines[0].split()[:4] == ["correct", "6", "1", "->"]
    assert "gold 9" in lines[0] and "reward 1.50 (hard_format 0.50  countdown 1.00)" in lines[0]
    assert lines[1].strip() == "<answer>6+3</answer>"
    assert lines[2].split()[0] == "partial"


@pytest.mark.parametrize("width", [60, 200])
def test_a_long_completion_is_cut_in_the_middle(tmp_path, width):
    completion = "<think>" + "a" * 500 + "</think><answer>6+3</answer>"
    row = {"kind": "greedy", "question": "q", "outcome": "correct", "completion": completion, "rewards": {}}
    (tmp_path / "s.jsonl").write_text(json.dumps(row) + "\n")
    shown = sample_lines(tmp_path / "s.jsonl", width=width)[1].strip()
    assert shown.startswith("<think>aaa") and shown.endswith("<answer>6+3</answer>") and " … " in shown
    assert len(shown) <= width
