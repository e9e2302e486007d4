"""Generation tokens/s, seconds per GRPO step and peak RSS of the packaged real model (SmolLM2-135M-Instruct,
`model.name: builtin:smollm2-135m-instruct`) on this machine's CPU.

    OMP_NUM_THREADS=1 uv run python benchmarks/smollm2.py                          # fp32, bf16; GRPO LoRA, full FT
    UV_PROJECT_ENVIRONMENT=.venv-gpu uv run --extra gpu python benchmarks/smollm2.py --only gen-nf4 grpo-unsloth-4bit

Each measurement runs in a process of its own, so its peak RSS (ru_maxrss) is its own:
- gen-<dtype>: transformers `generate` of 8 arithmetic prompts (the real-model quickstart's chat prompts), 32 new
  tokens each (min_new_tokens forces the length), sampling at temperature 1; tokens/s = 8 x 32 / seconds, after a
  4-token warm-up. nf4 is bitsandbytes 4-bit (its CPU backend; the gpu extra installs bitsandbytes).
- grpo-<variant>: experiments/run_eval_test.py on the real-model quickstart config for 3 optimizer steps (8
  completions of at most 48 tokens each, beta 0.04), no evaluation; seconds per step is TRL's `step_time` of steps
  2 and 3 (step 1 pays for the first call's allocations), generation included. lora: LoRA r 16 on hf fp32; full:
  every weight trained (lora_rank 0) on hf fp32; unsloth-4bit: FastLanguageModel 4-bit + LoRA r 16 (gpu extra).
- parts-lora: the resident set each part of a LoRA step adds, in order (`measure_parts`), for docs/planner.md.
Figures go to the README's real-model section; the machine is shared, so the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "experiment_configs" / "real_model_quickstart.yaml"
PROMPTS, NEW_TOKENS, STEPS = 8, 32, 3
MEASUREMENTS = ["gen-float32", "gen-bfloat16", "grpo-lora", "grpo-full", "parts-lora", "gen-nf4", "grpo-unsloth-4bit"]
NEEDS_GPU_EXTRA = {"gen-nf4", "grpo-unsloth-4bit"}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_generation(dtype: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.config import load_config
    from train.models.packaged import packaged_model_dir
    from train.tasks import get_task

    cfg = load_config(CONFIG)
    directory = packaged_model_dir(cfg.model.name)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.padding_side = "left"
    if dtype == "nf4":
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
        )
        model = AutoModelForCausalLM.from_pretrained(directory, quantization_config=quantization)
    else:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=getattr(torch, dtype))
    rows = get_task(cfg.data).load_split("test", PROMPTS)
    texts = [tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True) for row in rows]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    torch.manual_seed(0)

    def generate(tokens: int) -> float:
        started = time.perf_counter()
        with torch.no_grad():
            model.generate(**batch, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True, temperature=1.0)
        return time.perf_counter() - started

    generate(4)
    seconds = generate(NEW_TOKENS)
    return {
        "tokens_per_s": round(PROMPTS * NEW_TOKENS / seconds, 1),
        "seconds": round(seconds, 1),
        "prompt_tokens": int(batch["input_ids"].shape[1]),
    }


def measure_grpo(variant: str) -> dict:
    overrides = {
        "lora": ["model.backend=hf", "model.lora_rank=16"],
        "full": ["model.backend=hf", "model.lora_rank=0", "train.learning_rate=1e-5"],
        "unsloth-4bit": ["model.backend=unsloth", "model.load_in_4bit=true", "model.lora_rank=16"],
    }[variant]
    if variant == "unsloth-4bit":
        import unsloth  # noqa: F401 -- before trl, transformers and peft

    from train.records.tracking import MetricsLog
    from train.run import main

    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(scratch) / "run"
        sets = [
            *overrides,
            f"train.max_steps={STEPS}",
            "eval.zero_shot=false",
            "eval.when=end",
            "data.test_samples=1",
            "eval.max_new_tokens=1",
            "output.save_adapter=false",
        ]
        main([str(CONFIG), "--output-dir", str(run_dir), *[arg for s in sets for arg in ("--set", s)]])
        steps = MetricsLog(run_dir / "metrics.jsonl").records("step")
    later = [row["step_time"] for row in steps[1:]]
    return {
        "seconds_per_step": round(sum(later) / len(later), 1),
        "first_step_s": round(steps[0]["step_time"], 1),
        "mean_completion_tokens": round(sum(row["completions/mean_length"] for row in steps) / len(steps), 1),
    }


def resident_bytes() -> int:
    """The process's resident set now (/proc/self/statm: pages)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """The highest resident set seen while the block runs, sampled every millisecond on a thread of its own."""

    def __enter__(self) -> PeakRSS:
        import threading

        self.peak, self._done = resident_bytes(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._done.wait(0.001):
            self.peak = max(self.peak, resident_bytes())

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())


def measure_parts() -> dict:
    """The resident set each part of a LoRA training step adds, one after another in one process, at the GRPO
    step's batch (8 completions: the longest of the 8 rendered prompts + 40 completion tokens), for
    docs/planner.md's per-part check: weights (loaded and paged in), LoRA (get_peft_model), LoRA gradients and
    AdamW's moments (one step), then forward + backward of TRL's loss shape (completion log-probabilities from the
    logits): the peak above what was resident before, activations, logits and their temporaries."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.config import load_config
    from train.models.packaged import packaged_model_dir
    from train.tasks import get_task

    mib = 1024**2
    cfg = load_config(CONFIG)
    directory = packaged_model_dir(cfg.model.name)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    rows = get_task(cfg.data).load_split("train", 8)
    texts = [tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True) for row in rows]
    prompts = [tokenizer(text).input_ids for text in texts]
    prompt_tokens, completion_tokens = max(len(ids) for ids in prompts), 40
    padded = [[tokenizer.pad_token_id] * (prompt_tokens - len(ids)) + ids for ids in prompts]  # left, as TRL pads
    generator = torch.Generator().manual_seed(0)
    completions = torch.randint(0, len(tokenizer), (8, completion_tokens), generator=generator)
    input_ids = torch.cat([torch.tensor(padded), completions], dim=1)
    parts = {}

    started = resident_bytes()
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    for weight in model.parameters():  # from_pretrained maps the safetensors file: page every weight in
        weight.data.sum()
    parts["weights"] = resident_bytes() - started
    before = resident_bytes()
    lora = LoraConfig(r=16, lora_alpha=32, target_modules=list(cfg.model.target_modules), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    parts["lora_weights"] = resident_bytes() - before
    # The optimizer's state before any activation: freed activations would otherwise be reused for it, unseen.
    before = resident_bytes()
    trainable = [weight for weight in model.parameters() if weight.requires_grad]
    for weight in trainable:
        weight.grad = torch.zeros_like(weight)
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    optimizer.step()
    parts["lora_gradients_and_adamw_moments"] = resident_bytes() - before
    model.train()
    before = resident_bytes()
    with PeakRSS() as step:
        # Logits of the completion only, as TRL asks for them (logits_to_keep), not of the whole sequence.
        logits = model(input_ids=input_ids, logits_to_keep=completion_tokens + 1).logits[:, :-1].float()
        logps = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, prompt_tokens:, None]).squeeze(-1)
        (-logps.mean()).backward()
        del logits, logps
    parts["forward_backward_peak"] = step.peak - before
    return {
        **{f"{name}_mib": round(value / mib) for name, value in parts.items()},
        "parameters": sum(p.numel() for p in model.parameters()),
        "lora_parameters": sum(weight.numel() for weight in trainable),
        "batch": f"8 x ({prompt_tokens} prompt + {completion_tokens} completion) tokens",
    }


def child(name: str) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    kind, _, variant = name.partition("-")
    if kind == "parts":
        result = measure_parts()
    else:
        result = measure_generation(variant) if kind == "gen" else measure_grpo(variant)
    result.update(measurement=name, threads=torch.get_num_threads(), peak_rss_mib=round(peak_rss_mib()))
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=MEASUREMENTS,
        help="The measurements to run (default: the ones this environment can run).",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    import importlib.util

    have_extra = importlib.util.find_spec("bitsandbytes") is not None
    chosen = args.only or [m for m in MEASUREMENTS if have_extra or m not in NEEDS_GPU_EXTRA]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "WANDB_MODE": "disabled"}
    for name in chosen:
        load = os.getloadavg()[0]
        done = subprocess.run(
            [sys.executable, __file__, "--child", name], env=env, capture_output=True, text=True, cwd=ROOT
        )
        line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
        if line is None:
            print(f"{name}: failed (exit {done.returncode})\n{(done.stdout + done.stderr)[-3000:]}")
            continue
        result = json.loads(line.removeprefix("RESULT "))
        result["load_average_before"] = round(load, 2)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
