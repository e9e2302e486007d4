"""What one evaluation costs: batched greedy + n samples (ours) against one generate call per sample (naive).

Ours (train.evaluation.evaluate.evaluate): per batch of prompts, one greedy call and one call drawing n = 10 samples per
prompt; the same 10 samples give pass@1, pass@5 and pass@10. Naive: per prompt, a greedy call, then 5 sampling
calls for pass@5, then 10 more for pass@10, one sample each: 16 calls and 16 samples per prompt, where ours
generates 11 samples per prompt in 2 calls per batch.

By default the model is the built-in tiny model's shape (a char-level Qwen2, hidden 96, 3 layers) with random
weights, on easy Countdown prompts: random weights never emit end-of-sequence, so every completion uses the whole
token budget, the worst case for both methods. With --config, the config's policy (train.models.load_policy; the
quickstart's is the warm-started tiny model, which stops at end-of-sequence) on its test prompts, with its token
budget. Timing is the median over --repeats runs, after one warm-up call.

    uv run python benchmarks/eval_cost.py                       # 16 prompts, 32 new tokens, 3 repeats
    uv run python benchmarks/eval_cost.py --config experiment_configs/quickstart.yaml --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from train.config import BuiltinModelConfig, DataConfig, EvalConfig
from train.evaluation.evaluate import evaluate
from train.evaluation.passk import pass_at_k
from train.models.builtin import build_tokenizer, random_tiny_model
from train.models.generation import HFGenerator
from train.tasks import build_rewards, get_task

EASY_COUNTDOWN = {"min_numbers": 2, "max_numbers": 2, "max_number": 9, "operations": ["+", "-"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="Prompts per generate call (eval.batch_size).")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice).")
    parser.add_argument("--config", help="Benchmark this experiment's policy and test prompts (hf backend).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = EvalConfig(pass_k=[1, 5, 10], batch_size=args.batch_size)
    if args.config:
        from train.config import load_config
        from train.models import load_policy

        experiment = load_config(args.config, [f"data.test_samples={args.prompts}"])
        task = get_task(experiment.data)
        policy = load_policy(experiment, task, "hf")
        model, tokenizer = policy.model, policy.tokenizer
        args.max_new_tokens = experiment.eval_max_new_tokens
        cfg = EvalConfig(
            pass_k=[1, 5, 10], batch_size=args.batch_size, eval_temperature=experiment.eval.eval_temperature
        )
    else:
        tokenizer = build_tokenizer()
        shape = BuiltinModelConfig()
        model = random_tiny_model(tokenizer, shape.hidden_size, shape.num_layers, shape.num_heads)
        data = DataConfig(
            task="countdown", test_samples=args.prompts, prompt_template="{question}\n", options=EASY_COUNTDOWN
        )
        task = get_task(data)
    rows = task.load_split("test", args.prompts)
    reward_funcs, reward_weights = build_rewards([], task)
    generator = HFGenerator(model, tokenizer, batch_size=args.batch_size)
    generator.generate([rows[0]["prompt"]], n=1, temperature=1.0, max_new_tokens=4, seed=0)  # warm-up

    def ours() -> tuple[int, int]:
        metrics = evaluate(
            generator,
            task,
            rows,
            reward_funcs,
            reward_weights,
            cfg,
            max_new_tokens=args.max_new_tokens,
            show_progress=False,
        )
        batches = -(-len(rows) // args.batch_size)
        return int(metrics["samples_generated"]), 2 * batches

    def naive() -> tuple[int, int]:
        samples = calls = 0
        for index, row in enumerate(rows):
            prompt = [row["prompt"]]
            [[greedy]] = generator.generate(prompt, n=1, temperature=0, max_new_tokens=args.max_new_tokens, seed=0)
            task.is_correct(greedy.text, row)
            samples, calls = samples + 1, calls + 1
            for k in (5, 10):
                correct = 0
                for draw in range(k):
                    [[sample]] = generator.generate(
                        prompt,
                        n=1,
                        temperature=cfg.eval_temperature,
                        max_new_tokens=args.max_new_tokens,
                        seed=index * 100 + draw,
                    )
                    correct += task.is_correct(sample.text, row)
                pass_at_k(k, correct, k)
                samples, calls = samples + k, calls + k
        return samples, calls

    results = {}
    for name, method in (("batched (ours)", ours), ("naive (1 call per sample)", naive)):
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            samples, calls = method()
            seconds.append(time.perf_counter() - start)
        results[name] = (samples, calls, statistics.median(seconds))

    model_name = args.config or "random tiny model"
    table = Table(
        title=f"eval cost ({model_name}): {args.prompts} prompts, {args.max_new_tokens} new tokens, pass@1/5/10, "
        f"median of {args.repeats}, torch threads {torch.get_num_threads()}"
    )
    for column in ("method", "samples", "generate calls", "wall s", "samples/s", "wall vs ours"):
        table.add_column(column, justify="left" if column == "method" else "right")
    ours_seconds = results["batched (ours)"][2]
    for name, (samples, calls, seconds) in results.items():
        table.add_row(
            name,
            str(samples),
            str(calls),
            f"{seconds:.2f}",
            f"{samples / seconds:.0f}",
            f"{seconds / ours_seconds:.1f}x",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
