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

It also holds the check's time limits and the runner that enforces them (`case_limit`, `run_limited`; imported by
tests/gpu/test_gpu_run.py and tests/test_gpu_kit.py): each case runs in a process group of its own, is killed with
its group at its limit, and is ended by the runner if it has not exited a few seconds after writing its result
(vLLM and torch.compile's workers can keep a finished process alive); this script itself leaves with os._exit
once its result is written.

`build-model` writes a Qwen3 directory of the planner's shape (train/lab/memory_plan.py SHIPPED_SHAPES: for
Qwen3-1.7B 28 layers, width 2048, MLP 6144, 16 query / 8 key-value heads of 128, vocabulary 151,936, tied
embeddings) with random bfloat16 weights, and a character-level tokenizer of the same vocabulary (the built-in
model's characters and answer tags, the other ids fillers that no text encodes to). Random weights almost never
sample `</answer>` or end-of-sequence (about 2 in 151,936 a token), so every rollout runs to the full budget:
the worst case for time and memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

GIB = 1024**3

# The check's time limits (docs/gpu.md, "Time"), both in seconds and read from the environment:
#   GRPO_LAB_GPU_CASE_SECONDS    one case at most (default 200)
#   GRPO_LAB_GPU_BUDGET_SECONDS  the whole check at most, read by run_offline.sh, which turns it into
#                                GPU_CHECK_DEADLINE (epoch seconds) for the cases (default 480)
# Why these defaults, on a cold H100 (estimates: nothing of this has run on a GPU yet; the summary's times replace
# them): wheelhouse install 5 s, preflight 45 s (unsloth's import, 41 s on the CPU stand-in), the random Qwen3-1.7B
# built and saved (3.4 GB) 30 s; then each case in its own process: unsloth's import 40 s, loading 15 s (4-bit:
# 25 s, quantized on load), trainer set-up 10 s, step 1's torch.compile of unsloth's GRPO loss about 60 s (the
# 4-bit case, second, reuses the inductor cache: about 30 s), 2 steps of 8 x 512-token rollouts from random weights
# (every rollout runs to the full budget) at 13-22 s a step, the 2-prompt evaluation and exit 10 s: about 165 s for
# the 16-bit case and 160 s for the 4-bit one. 5 + 45 + 30 + 165 + 160 = 405 s expected; at worst the 16-bit case
# takes its 200 s and the 4-bit one gets what is left less END_RESERVE_S: 480 - 280 - 20 = 180 s, above its 160.
# A device call of timeout_s 510 (the budget, the summary, slack) stays under the 600 s a command may run and, with
# a cold start (60-120 s), leaves 4.5-6 of a session's 15 minutes for a second, narrower call made while the machine
# is still warm (one case: GRPO_LAB_GPU_CASES=... GRPO_LAB_GPU_BUDGET_SECONDS=270, timeout_s 290).
CASE_SECONDS_ENV = "GRPO_LAB_GPU_CASE_SECONDS"
BUDGET_SECONDS_ENV = "GRPO_LAB_GPU_BUDGET_SECONDS"
DEFAULT_CASE_SECONDS = 200
DEFAULT_BUDGET_SECONDS = 480
LEAST_WORTH_S = 60  # a case cut by the budget to less than this is skipped, saying so
END_RESERVE_S = 20  # kept after the last case for the summary
EXIT_GRACE_S = 15  # a case still alive this long after writing its result is ended by the runner


def seconds_from_env(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    """A positive number of seconds from the environment variable `name`, else `default`."""
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise SystemExit(f"{name}={raw!r}: give a positive number of seconds (default {default})")
    return value


def case_limit(environ: Mapping[str, str] | None = None, now: float | None = None) -> tuple[float, str | None]:
    """(seconds this case may take, why it is skipped or None): GRPO_LAB_GPU_CASE_SECONDS, cut to what is left
    before GPU_CHECK_DEADLINE less END_RESERVE_S; a case the budget cuts below LEAST_WORTH_S is skipped."""
    environ = os.environ if environ is None else environ
    per_case = seconds_from_env(CASE_SECONDS_ENV, DEFAULT_CASE_SECONDS, environ)
    deadline = environ.get("GPU_CHECK_DEADLINE")
    if not deadline:
        return per_case, None
    left = float(deadline) - (time.time() if now is None else now) - END_RESERVE_S
    if left >= per_case:
        return per_case, None
    if left < LEAST_WORTH_S:
        budget = environ.get(BUDGET_SECONDS_ENV) or DEFAULT_BUDGET_SECONDS
        return max(0.0, left), (
            f"{max(0.0, left):.0f} s left of the check's {budget} s budget ({BUDGET_SECONDS_ENV}), under the "
            f"{LEAST_WORTH_S} s a case needs"
        )
    return left, None


def run_limited(
    argv: list[str],
    limit_s: float,
    log_path: Path,
    result_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int | None, str | None]:
    """Run argv in a process group of its own, its output to log_path, and end the whole group: at limit_s
    (SIGTERM, then SIGKILL 5 s later), EXIT_GRACE_S after result_path appears if the process is still alive, and
    after it exits (workers it left). Returns (exit code, or None when stopped at the limit; a note or None)."""
    started = time.monotonic()
    note = None
    with log_path.open("w") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=dict(env) if env else None, cwd=cwd, start_new_session=True
        )
        written_at = None
        while process.poll() is None:
            now = time.monotonic()
            if now - started >= limit_s:
                _end_group(process)
                return None, None
            if result_path is not None and written_at is None and result_path.exists():
                written_at = now
            if written_at is not None and now - written_at >= EXIT_GRACE_S:
                _end_group(process)
                note = f"ended by the check: still running {EXIT_GRACE_S} s after writing its result"
                return (0 if _result_exit_code(result_path) == 0 else 1), note
            time.sleep(0.2)
    _end_group(process)  # the workers it may have left behind
    return process.returncode, note


def _end_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group, SIGKILL to whatever of it is left 5 s later; the process reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _result_exit_code(result_path: Path | None) -> int | None:
    try:
        return json.loads(result_path.read_text()).get("exit_code") if result_path else None
    except (OSError, ValueError):
        return None


def run_case_limited(
    argv: list[str],
    result_path: Path,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict:
    """One case under the check's limits (case_limit): its result (result_path's JSON, or what is known without
    it) with status passed / failed / skipped, its reason, limit_s and wall_s."""
    limit, skip = case_limit(environ)
    if skip:
        return {"status": "skipped", "reason": skip}
    started = time.monotonic()
    exit_code, note = run_limited(argv, limit, log_path, result_path, env, cwd)
    wall = round(time.monotonic() - started, 1)
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        result = {}
    result["limit_s"] = round(limit)
    result.setdefault("wall_s", wall)
    if note:
        result["note"] = note
    if exit_code is None:
        source = (
            CASE_SECONDS_ENV
            if limit >= seconds_from_env(CASE_SECONDS_ENV, DEFAULT_CASE_SECONDS, environ)
            else (f"what was left of {BUDGET_SECONDS_ENV}")
        )
        result.update(
            status="failed", reason=f"stopped at its {limit:.0f} s limit ({source}); the log has how far it got"
        )
    elif exit_code != 0:
        tail = log_path.read_text()[-400:].strip().replace("\n", " | ")
        result.update(status="failed", reason=f"exit {exit_code}: ... {tail}")
    else:
        result["status"] = "passed"
    return result


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
    """The memory planner's view of this case on a card of cap_gib GiB (the backend the config names): what a run's
    summary.json keeps (memory_check.plan_facts), with the phases and components."""
    from train.config import load_config
    from train.lab.memory_check import plan_config, plan_facts
    from train.lab.memory_plan import GIB as PLAN_GIB

    cfg = load_config(config, overrides)
    backend = cfg.model.backend if cfg.model.backend != "auto" else "unsloth"
    plan = plan_config(cfg, cap_gib, backend)
    return {
        "backend": backend,
        **plan_facts(plan),
        "phases_gib": {name: round(value / PLAN_GIB, 3) for name, value in plan.phases.items()},
        "components_gib": {c.name: round(c.bytes / PLAN_GIB, 3) for c in plan.components},
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
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The result is written: leave now, without waiting on threads and workers that vLLM, unsloth or
    # torch.compile may have left (a finished case must not spend the check's budget exiting).
    os._exit(code)
