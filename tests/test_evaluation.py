"""evaluate() with a fake generator: pass@k, outcomes, rewards and the samples file against hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from rewards import get_reward
from train.config import DataConfig, EvalConfig
from train.evaluation.evaluate import evaluate, reward_names
from train.models.generation import GeneratedCompletion
from train.records.console import eval_table
from train.tasks import get_task

GSM8K = str(Path(__file__).parent / "fixtures" / "gsm8k_fixture_{split}.jsonl")  # test golds: 1250, 8, 120, 7
RIGHT, WRONG = "<think>work</think><answer>{}</answer>", "<think>work</think><answer>0</answer>"

# Per prompt: the greedy completion, and how many of the 5 samples are right.
GREEDY = [RIGHT.format(1250), "<answer>12</answer>", "the answer is 120", RIGHT.format(7)]
SAMPLES_RIGHT = [2, 0, 5, 1]
GOLDS = ["1250", "8", "120", "7"]


class FakeGenerator:
    """Fixed completions by prompt; records every call. num_tokens = characters, the last greedy one truncated."""

    def __init__(self, questions: list[str]) -> None:
        self.index = {question: i for i, question in enumerate(questions)}
        self.snapshots = 0

    def snapshot_policy(self) -> None:
        self.snapshots += 1
        self.calls: list[dict] = []

    def generate(self, prompts, *, n, temperature, max_new_tokens, seed):
        self.calls.append({"prompts": len(prompts), "n": n, "temperature": temperature, "seed": seed})
        out = []
        for prompt in prompts:
            i = self.index[prompt if isinstance(prompt, str) else prompt[-1]["content"]]
            if temperature == 0:
                texts = [GREEDY[i]]
            else:
                texts = [RIGHT.format(GOLDS[i])] * SAMPLES_RIGHT[i] + [WRONG] * (n - SAMPLES_RIGHT[i])
            truncated = temperature == 0 and i == 3
            out.append([GeneratedCompletion(text, len(text), truncated=truncated) for text in texts])
        return out


def run(tmp_path=None, template="{question}", pass_k=(1, 2, 5), funcs=None, weights=None, **eval_options):
    task = get_task(DataConfig(task="gsm8k", source=GSM8K, prompt_template=template))
    rows = task.load_split("test", None)
    generator = FakeGenerator(rows["question"])
    if funcs is None:
        funcs = [get_reward("correctness_reward"), get_reward("mark_reward")]
        weights = [2.0, 0.5]
    cfg = EvalConfig(pass_k=list(pass_k), batch_size=3, seed=100, **eval_options)
    samples = None if tmp_path is None else tmp_path / "samples.jsonl"
    metrics = evaluate(
        generator, task, rows, funcs, weights, cfg, max_new_tokens=50, samples_path=samples, show_progress=False
    )
    return metrics, generator, samples


def test_pass_at_k_and_outcomes_match_hand_computed_values():
    metrics, _, _ = run()
    assert metrics["pass@1"] == 0.5  # greedy: prompts 0 and 3
    assert metrics["pass@1_sampled"] == pytest.approx((2 + 0 + 5 + 1) / 20)
    # pass@2 = 1 - C(5-c, 2)/C(5, 2) per prompt: c=2 -> 0.7, c=0 -> 0, c=5 -> 1, c=1 -> 0.4
    assert metrics["pass@2"] == pytest.approx((0.7 + 0 + 1 + 0.4) / 4)
    assert metrics["pass@5"] == 0.75  # any right sample among all five: prompts 0, 2, 3
    assert (metrics["correct"], metrics["partial"], metrics["failed"]) == (2, 1, 1)
    assert (metrics["correct_frac"], metrics["partial_frac"], metrics["failed_frac"]) == (0.5, 0.25, 0.25)


def test_lengths_rewards_and_counts():
    metrics, _, _ = run()
    lengths = [len(text) for text in GREEDY]
    assert metrics["mean_output_tokens"] == pytest.approx(sum(lengths) / 4)
    assert metrics["budget_utilization"] == pytest.approx(sum(lengths) / 4 / 50)
    assert metrics["truncated_frac"] == 0.25
    assert metrics["reward/correctness_reward"] == 0.5
    assert metrics["reward/mark_reward"] == pytest.approx((0.5 + 0.25 + 0 + 0.5) / 4)
    # weights 2.0 and 0.5: 2*1 + 0.5*0.5, 0.5*0.25, 0, 2*1 + 0.5*0.5
    assert metrics["reward/total"] == pytest.approx((2.25 + 0.125 + 0 + 2.25) / 4)
    assert (metrics["num_prompts"], metrics["samples_generated"]) == (4, 4 * 6)


def test_one_greedy_call_and_one_sampling_call_per_batch():
    _, generator, _ = run()
    assert generator.calls == [
        {"prompts": 3, "n": 1, "temperature": 0.0, "seed": 100},
        {"prompts": 3, "n": 5, "temperature": 0.8, "seed": 100},
        {"prompts": 1, "n": 1, "temperature": 0.0, "seed": 100},
        {"prompts": 1, "n": 5, "temperature": 0.8, "seed": 103},
    ]


def test_num_samples_above_the_largest_k():
    metrics, generator, _ = run(pass_k=[1, 2], num_samples=5)
    assert generator.calls[1]["n"] == 5
    assert metrics["pass@2"] == pytest.approx((0.7 + 0 + 1 + 0.4) / 4)
    assert "pass@5" not in metrics


def test_without_pass_k_only_greedy_is_generated():
    metrics, generator, _ = run(pass_k=[])
    assert [call["n"] for call in generator.calls] == [1, 1]
    assert metrics["samples_generated"] == 4
    assert not [key for key in metrics if key.startswith("pass@") and key != "pass@1"]


def test_rewards_are_called_as_trl_calls_them():
    calls = []

    def spy_reward(prompts, completions, completion_ids, **columns):
        calls.append({"prompts": prompts, "completions": completions, "ids": completion_ids, **columns})
        return [None if answer == "8" else 1.0 for answer in columns["answer"]]

    metrics, _, _ = run(template="xml_reasoning", funcs=[spy_reward], weights=[3.0])
    greedy = calls[0]
    assert greedy["completions"][0] == [{"role": "assistant", "content": GREEDY[0]}]  # chat prompt: message lists
    assert greedy["prompts"][0][0]["role"] == "system"
    assert greedy["ids"] is None  # the fake generator reports no token ids
    assert set(greedy) == {"prompts", "completions", "ids", "question", "answer", "solution"}  # every column but prompt
    assert greedy["answer"] == ["1250", "8", "120"]
    assert len(calls[1]["completions"]) == 15  # the 5 samples of each of 3 prompts in one call
    # None is "not applicable": left out of the reward's mean, counted as 0 in the total (as TRL's nansum does).
    assert metrics["reward/spy_reward"] == 1.0
    assert metrics["reward/total"] == pytest.approx(3 * 3 / 4)


def test_samples_file_holds_every_completion_and_agrees_with_the_metrics(tmp_path):
    metrics, _, path = run(tmp_path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 4 * 6
    greedy = sorted((r for r in records if r["kind"] == "greedy"), key=lambda r: r["index"])
    sampled = [r for r in records if r["kind"] == "sampled"]
    assert [r["completion"] for r in greedy] == GREEDY
    assert [r["outcome"] for r in greedy] == ["correct", "partial", "failed", "correct"]
    assert [r["answer"] for r in greedy] == GOLDS
    assert sorted({r["sample"] for r in sampled}) == [0, 1, 2, 3, 4]
    assert metrics["pass@1"] == sum(r["correct"] for r in greedy) / 4
    assert metrics["pass@1_sampled"] == pytest.approx(sum(r["correct"] for r in sampled) / len(sampled))
    assert metrics["reward/mark_reward"] == pytest.approx(sum(r["rewards"]["mark_reward"] for r in greedy) / 4)
    assert metrics["reward/total"] == pytest.approx(sum(r["reward_total"] for r in greedy) / 4)
    first = greedy[0]
    assert first["prompt"] == first["question"] and first["label"] == "eval"
    assert set(first) >= {"prompt", "completion", "answer", "rewards", "correct", "outcome", "kind", "sample"}


def test_the_same_reward_twice_gets_distinct_names():
    funcs = [get_reward("correctness_reward"), get_reward("correctness_reward", value=2.0)]
    assert reward_names(funcs) == ["correctness_reward", "correctness_reward_2"]


def test_eval_table_compares_zero_shot_with_current():
    zero_shot, _, _ = run()
    current = {**zero_shot, "pass@1": 0.75, "failed_frac": 0.0}
    console = Console(width=120, record=True)
    console.print(eval_table(zero_shot, current, title="epoch 1"))
    text = console.export_text()
    assert "epoch 1" in text
    assert "pass@1 " in text and "0.500" in text and "0.750" in text and "+0.250" in text
    assert "-0.250" in text  # failed_frac went down
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") == 5}
    assert lines.keys() >= set(current)


def test_eval_table_without_zero_shot_shows_dashes():
    current, _, _ = run()
    console = Console(width=120, record=True)
    console.print(eval_table(None, current, title="zero-shot"))
    assert "│         - │   0.500 │" in console.export_text()


def test_a_generator_returning_too_few_samples_is_caught():
    class Short(FakeGenerator):
        def generate(self, prompts, *, n, temperature, max_new_tokens, seed):
            return [
                group[:1] for group in super().generate(prompts, n=n, temperature=temperature, max_new_tokens=0, seed=0)
            ]

    task = get_task(DataConfig(task="gsm8k", source=GSM8K, prompt_template="{question}"))
    rows = task.load_split("test", None)
    with pytest.raises(RuntimeError, match="did not return 1 greedy and 5 sampled per prompt"):
        evaluate(
            Short(rows["question"]), task, rows, [], [], EvalConfig(pass_k=[5]), max_new_tokens=8, show_progress=False
        )


def test_a_generator_that_takes_every_prompt_gets_one_call_per_pass():
    """vLLM's generator (prompts_per_call None) is handed the whole evaluation: one greedy call, one sampled call."""

    class AllAtOnce(FakeGenerator):
        prompts_per_call = None

    task = get_task(DataConfig(task="gsm8k", source=GSM8K, prompt_template="{question}"))
    rows = task.load_split("test", None)
    generator = AllAtOnce(rows["question"])
    funcs = [get_reward("correctness_reward")]
    cfg = EvalConfig(pass_k=[1, 2, 5], batch_size=3, seed=100)
    metrics = evaluate(generator, task, rows, funcs, [1.0], cfg, max_new_tokens=50, show_progress=False)
    assert [(call["prompts"], call["n"]) for call in generator.calls] == [(4, 1), (4, 5)]
    assert metrics["pass@1"] == 0.5  # the same figures as batch by batch
