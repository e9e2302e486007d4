"""Plan a run's peak GPU memory from its config, offline, before anything is loaded.

    uv run python experiments/plan_memory.py experiment_configs/eval_test_improved.yaml
    uv run python experiments/plan_memory.py experiment_configs/gpu/qwen3-4b-1024.yaml --gpu-gb 16 --check
    ... --set train.num_generations=16 --set train.per_device_train_batch_size=16     # any key, as for a run
    ... --backend hf          # transformers + peft instead of unsloth + vLLM
    ... --no-standby          # vLLM holds model.gpu_memory_utilization of the card throughout

Prints every component (weights, LoRA and optimizer, activations, logits, reference pass, vLLM's KV cache and
reservation, CUDA context), the peak, the headroom on the card and the largest max_completion_length and
num_generations that fit. The model's shape comes from its config.json: a local directory, the Hugging Face cache, or
the planner's table of the shipped models; nothing is downloaded. The formulas, their sources and how they compare
with Unsloth's published figures: train/lab/memory_plan.py and docs/planner.md. With --check, a plan that does not fit
exits with code 2 and one paragraph of advice.
"""

from __future__ import annotations

import argparse

from train.errors import UserError, exit_on_user_error  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="experiment YAML, e.g. experiment_configs/eval_test_improved.yaml")
    parser.add_argument("--gpu-gb", type=float, default=24.0, help="the card's memory in GiB (default 24)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument(
        "--backend", choices=["auto", "unsloth", "hf"], default="auto", help="auto: unsloth (hf for builtin:tiny)"
    )
    parser.add_argument(
        "--standby",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="vLLM Standby (default: UNSLOTH_VLLM_STANDBY, on unless set to 0)",
    )
    parser.add_argument("--check", action="store_true", help="exit with code 2 when the plan does not fit")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None):
    args = parse_args(argv)
    if not 0 < args.gpu_gb <= 4096:
        raise UserError(f"--gpu-gb {args.gpu_gb:g} is not a card size: give the GPU's memory in GiB, e.g. --gpu-gb 24.")

    from train.config import load_config
    from train.lab.memory_check import (
        check_fits,
        largest_completion_length,
        largest_num_generations,
        plan_config,
        plan_table,
        with_generations,
    )
    from train.records import voice

    cfg = load_config(args.config, args.set)
    plan = plan_config(cfg, args.gpu_gb, args.backend, args.standby)
    console = voice.console()
    console.print(plan_table(plan))
    console.print(f"weights: {plan.precision_note}", highlight=False)
    s = plan.settings
    completion = largest_completion_length(plan.shape, s, args.gpu_gb)
    generations = largest_num_generations(plan.shape, s, args.gpu_gb)
    console.print(
        f"largest train.max_completion_length that fits: {completion or 'none'} "
        f"(prompt budget {s.prompt_tokens} tokens, {s.num_generations} generations)"
    )
    if generations:
        rows = with_generations(s, generations).batch_rows
        console.print(
            f"largest train.num_generations that fits: {generations} (per_device_train_batch_size {rows}, "
            f"{s.completion_tokens} completion tokens)"
        )
    else:
        console.print("largest train.num_generations that fits: none")
    if args.check:
        check_fits(cfg, args.gpu_gb, args.backend, standby=args.standby)
    return plan


if __name__ == "__main__":
    main()
