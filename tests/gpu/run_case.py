"""One case of the GPU check in a process of its own, and the random-weight model the real-shape cases train.

    python tests/gpu/run_case.py build-model Qwen3-1.7B DIR          # the planner's shape, random weights, no hub
    python tests/gpu/run_case.py run RESULT.json CAP_GIB CONFIG RUN_DIR [KEY=VALUE ...]

`run` caps this process's GPU memory to CAP_GIB (torch.cuda.set_per_process_memory_fraction: a 24 GiB card on a
larger one, for torch's allocator, which training, transformers generation and vLLM's tensors go through), plans
the config's peak with train/lab/memory_plan.py for a card of that size, runs the CLI's `main`
(train/run.py, behind experiments/run_eval_test.py) and writes RESULT.json: exit code, wall time, the GPU,
versions, torch's peak allocated and reserved memory, the plan it is held against, and the step records' times
and completion lengths. A process per case: unsloth must be imported before trl/transformers/peft, and vLLM keeps
its engine for the life of the process. The JSON is written whatever the exit status (2: a user error, whose
paragraph is on stderr).

`build-model` writes a Qwen3 directory of the planner's shape (train/lab/memory_plan.py SHIPPED_SHAPES: for
Qwen3-1.7B 28 layers, width 2048, MLP 6144, 16 query / 8 key-value heads of 128, vocabulary 151,936, tied
embeddings) with random bfloat16 weights, and a character-level tokenizer of the same vocabulary (the built-in
model's characters and answer tags, the other ids fillers that no text encodes to). Random weights almost never
sample `</answer>` or end-of-sequence (about 2 in 151,936 a token), so every rollout runs to the full budget:
the worst case for time and memory.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

GIB = 1024**3


def filled_tokenizer(vocab_size: int):
    """The built-in model's character tokenizer grown to `vocab_size` ids with filler tokens after the characters
    (never produced by encoding, decoded as <fill_N>), so every id a model of that vocabulary samples decodes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from train.models.builtin import CHARACTERS, SPECIAL_TOKENS, TAG_TOKENS

    base = [*SPECIAL_TOKENS.values(), *CHARACTERS]
    fillers = vocab_size - len(base) - len(TAG_TOKENS)
    if fillers < 0:
        raise ValueError(f"a vocabulary of {vocab_size} cannot hold the {len(base) + len(TAG_TOKENS)} built-in tokens")
    vocab = {token: i for i, token in enumerate([*base, *(f"<fill_{i}>" for i in range(fillers))])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, padding_side="left", **SPECIAL_TOKENS)
    tokenizer.add_tokens(TAG_TOKENS)
    tokenizer.model_max_length = 40960
    return tokenizer


def build_model(shape_name: str, directory: Path, seed: int = 0) -> dict:
    """Write a random-weight model of the planner's shape for `shape_name` to `directory`; returns its facts."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    from train.lab.memory_plan import SHIPPED_SHAPES, shape_key

    shape = SHIPPED_SHAPES[shape_key(shape_name)]
    tokenizer = filled_tokenizer(shape.vocab)
    assert len(tokenizer) == shape.vocab, (len(tokenizer), shape.vocab)
    config = Qwen3Config(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.head_dim,
        tie_word_embeddings=shape.tied,
        max_position_embeddings=40960,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        dtype="bfloat16",
    )
    started = time.monotonic()
    torch.manual_seed(seed)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    # Loaders read tokenizer_config.json's class; without it a Qwen3 directory would get Qwen2's tokenizer class.
    tokenizer_config = directory / "tokenizer_config.json"
    settings = json.loads(tokenizer_config.read_text())
    settings["tokenizer_class"] = "PreTrainedTokenizerFast"
    tokenizer_config.write_text(json.dumps(settings, indent=1))
    return {
        "shape": shape.name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "planned_parameters": shape.params,
        "build_s": round(time.monotonic() - started, 1),
        "directory": str(directory),
    }


def run(result_path: Path, cap_gib: float, config: str, run_dir: Path, overrides: list[str]) -> int:
    import torch  # torch may come before unsloth; trl, transformers and peft may not
    from results import package_versions

    cuda = torch.cuda.is_available()
    fraction = None
    if cuda:
        total = torch.cuda.get_device_properties(0).total_memory
        fraction = min(1.0, cap_gib * GIB / total)
        torch.cuda.set_per_process_memory_fraction(fraction, 0)
        torch.cuda.reset_peak_memory_stats()
    result: dict = {"overrides": overrides, "memory_cap_gib": cap_gib, "memory_fraction": fraction}
    try:
        result["plan"] = plan_summary(config, overrides, cap_gib)
    except Exception as error:  # noqa: BLE001 - a plan that cannot be made is a finding, not a reason to stop
        result["plan"] = {"error": f"{type(error).__name__}: {error}"}
    from train.run import main as cli_main  # after torch, before anything imports trl (unsloth goes first)

    argv = [config, "--output-dir", str(run_dir)]
    for override in overrides:
        argv += ["--set", override]
    started = time.monotonic()
    exit_code = 0
    try:
        cli_main(argv)
    except SystemExit as stop:
        exit_code = stop.code if isinstance(stop.code, int) else 1
    except Exception:  # noqa: BLE001 - a bug: keep its traceback on stderr and still write the figures
        traceback.print_exc()
        exit_code = 1
    result.update(exit_code=exit_code, wall_s=round(time.monotonic() - started, 1), torch=torch.__version__)
    if cuda:
        result.update(
            device=torch.cuda.get_device_name(0),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            # torch's allocator: training, transformers generation and vLLM's tensors (not vLLM's sleep-mode pool).
            peak_allocated_gib=round(torch.cuda.max_memory_allocated() / GIB, 3),
            peak_reserved_gib=round(torch.cuda.max_memory_reserved() / GIB, 3),
        )
    result["packages"] = package_versions()
    result.update(run_dir_figures(run_dir))
    # torch's allocator never sees the CUDA context: hold its peak against the plan without that component.
    planned = (result.get("plan") or {}).get("allocator_gib")
    if planned and result.get("peak_allocated_gib"):
        result["measured_over_planned"] = round(result["peak_allocated_gib"] / planned, 3)
    result_path.write_text(json.dumps(result, indent=1) + "\n")
    return exit_code


def plan_summary(config: str, overrides: list[str], cap_gib: float) -> dict:
    """The memory planner's view of this case on a card of cap_gib GiB (the backend the config names)."""
    from train.config import load_config
    from train.lab.memory_plan import GIB as PLAN_GIB
    from train.lab.memory_plan import plan_config

    cfg = load_config(config, overrides)
    backend = cfg.model.backend if cfg.model.backend != "auto" else "unsloth"
    plan = plan_config(cfg, cap_gib, backend)
    context = plan.component("CUDA context and kernels")
    return {
        "backend": backend,
        "precision": plan.precision_note,
        "needed_gib": round(plan.needed_bytes / PLAN_GIB, 3),
        "allocator_gib": round((plan.needed_bytes - context) / PLAN_GIB, 3),
        "peak_gib": round(plan.peak_bytes / PLAN_GIB, 3),
        "peak_phase": plan.peak_phase,
        "phases_gib": {name: round(value / PLAN_GIB, 3) for name, value in plan.phases.items()},
        "components_gib": {c.name: round(c.bytes / PLAN_GIB, 3) for c in plan.components},
        "fits": plan.fits,
    }


def run_dir_figures(run_dir: Path) -> dict:
    """Step times, completion lengths and clipped ratios from metrics.jsonl; the summary's GPU fields."""
    figures: dict = {}
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        steps = [row for row in records if row.get("type") == "step"]
        figures["steps"] = [row.get("step") for row in steps]
        figures["step_time_s"] = [row.get("step_time") for row in steps]
        figures["mean_completion_tokens"] = [row.get("completions/mean_length") for row in steps]
        figures["clipped_ratio"] = [row.get("completions/clipped_ratio") for row in steps]
        figures["evals"] = [row.get("label") for row in records if row.get("type") == "eval"]
    summary = run_dir / "summary.json"
    if summary.exists():
        data = json.loads(summary.read_text())
        figures["summary_wall_s"] = data.get("wall_seconds")
        figures["summary_gpu"] = data.get("gpu")
        figures["has_final"] = data.get("final") is not None
    return figures


def main() -> int:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "build-model":
        facts = build_model(args[0], Path(args[1]))
        print(json.dumps(facts))
        return 0
    if command == "run":
        return run(Path(args[0]), float(args[1]), args[2], Path(args[3]), args[4:])
    print(f"unknown command {command!r}: build-model or run", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
