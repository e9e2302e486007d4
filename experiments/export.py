"""Export a run's trained adapter as merged 16-bit weights (transformers, vLLM) or as GGUF (llama.cpp, Ollama).

    uv run python experiments/export.py runs/quickstart-20261122-101500 --merged exports/quickstart
    uv run --extra gpu python experiments/export.py runs/eval_test_improved-... --merged exports/qwen3-grpo
    uv run --extra gpu python experiments/export.py runs/eval_test_improved-... --gguf exports/qwen3-gguf \\
        --quantization q4_k_m

The run's config.yaml says which backend loads it (model.backend; auto resolves as in training, and to hf where
no GPU or unsloth is there). --merged writes a plain transformers model directory (config.json, safetensors,
tokenizer): Unsloth's save_pretrained_merged(out, tokenizer, save_method="merged_16bit") on the unsloth backend;
peft's merge_and_unload over the unquantized base model on hf (--dtype, bfloat16 by default); the weights as they
are for a full fine-tune (the built-in model). Load it with AutoModelForCausalLM.from_pretrained(OUT) or
`vllm serve OUT`.
--gguf is Unsloth's save_pretrained_gguf(out, tokenizer, quantization_method=...) and needs the unsloth backend
(the gpu extra and a CUDA GPU) plus network access, git, cmake and a C/C++ compiler: Unsloth clones llama.cpp from
GitHub into ./llama.cpp and builds it the first time. --quantization: q8_0 (default; fast to convert, near
lossless), q4_k_m, q5_k_m, f16, ... (Unsloth's ALLOWED_QUANTS).
A missing run dir or adapter, or an output directory that exists and is not empty, stops with one paragraph
(exit code 2) before anything is loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train.errors import UserError, exit_on_user_error
from train.lab.export import DTYPES, check_output_dir, export_backend, gguf_needs_unsloth, open_run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run dir, e.g. runs/quickstart-20261122-101500")
    parser.add_argument("--merged", type=Path, metavar="OUT", help="write merged 16-bit weights and tokenizer here")
    parser.add_argument("--gguf", type=Path, metavar="OUT", help="write GGUF weights here (unsloth backend)")
    parser.add_argument("--quantization", default="q8_0", help="GGUF quantization_method (default q8_0)")
    parser.add_argument("--dtype", choices=DTYPES, default="bfloat16", help="merged weights' dtype on hf")
    args = parser.parse_args(argv)
    if args.merged is None and args.gguf is None:
        parser.error("say what to write: --merged OUT, --gguf OUT, or both")
    return args


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict[str, str]:
    args = parse_args(argv)

    # 1. Inputs, checked before anything heavy is imported or loaded.
    run = open_run(args.run_dir)
    outputs = [(flag, path) for flag, path in (("--merged", args.merged), ("--gguf", args.gguf)) if path]
    for flag, path in outputs:
        check_output_dir(path, flag)
    if args.merged and args.gguf and args.merged.resolve() == args.gguf.resolve():
        raise UserError("--merged and --gguf name the same directory; give each its own.")
    backend = export_backend(run.cfg)
    if args.gguf:
        gguf_needs_unsloth(backend)

    # 2. Backend: unsloth (if used) must be imported before trl, transformers and peft.
    if backend == "unsloth":
        from train.models.unsloth import import_unsloth

        import_unsloth()
    from train.lab.export import check_saved_weights, export_gguf, export_merged

    check_saved_weights(run.adapter)  # a truncated or edited adapter is named, never exported

    # 3. Export.
    written = {}
    if args.merged:
        export_merged(run, args.merged, backend, dtype=args.dtype)
        written["merged"] = str(args.merged)
        print(f"merged weights and tokenizer: {args.merged}")
    if args.gguf:
        export_gguf(run, args.gguf, backend, args.quantization)
        written["gguf"] = str(args.gguf)
        print(f"GGUF ({args.quantization}): {args.gguf}")
    return written


if __name__ == "__main__":
    main()
