"""The memory plan of a config: the weights' precision decided for the card, the check before a run, the searches
behind its advice, and its table (the formulas: train/lab/memory_plan.py).

    plan = plan_config(load_config("experiment_configs/eval_test_improved.yaml"), gpu_gib=24)
    plan, warning = check_memory_plan(cfg, card_gib, backend)            # train/run.py check_memory
    check_fits(cfg, card_gib, backend)                                   # strict: UserError whenever it does not fit

The plan (train/lab/memory_plan.py) has been checked against published figures and a measured CPU step only, never
yet against a GPU, and its errors run both ways (docs/planner.md). So a run is stopped on the plan alone only when
its peak is over the card by more than PLAN_MARGIN, the most it has over-estimated a measured or published figure
of the same backend:
- unsloth 25%: every Unsloth figure is met within 25% (+19% for the long-context blog's 54.3 GiB with the KV cache
  of all 8 generations, -13% and -23% for the others), and the largest part measured on a CPU came out at +25%
  (LoRA and its optimizer states; weights -2%);
- hf 97%: TRL + FA2's published 510.8 GiB is planned at 1004 GiB without gradient checkpointing (+97%; our hf
  default keeps checkpointing off), 172 GiB with it.
Under-estimates (a whole CPU step -51%) never stop a run either way: a plan that says "fits" runs, and summary.json
keeps the plan beside torch's measured peak (plan_facts) so the first runs on GPUs calibrate it. Between the card
and the margin the run goes on with a warning that names the config keys to change; `--strict-memory` stops it
there, `--force` skips the check.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from train.config import ExperimentConfig
from train.errors import UserError
from train.lab.memory_plan import (
    GIB,
    SHIPPED_SHAPES,
    Backend,
    ModelShape,
    Plan,
    PlanSettings,
    builtin_shape,
    plan_memory,
    resolve_shape,
    settings_from_config,
)

# The plan's largest measured over-estimate per backend (module docstring, docs/planner.md).
PLAN_MARGIN: dict[str, float] = {"unsloth": 0.25, "hf": 0.97}


# --------------------------------------------------------------------------------------------------------------
# The plan of a config, and the weights' precision decided for a card


def plan_config(cfg: ExperimentConfig, gpu_gib: float = 24.0, backend: str = "auto", standby: bool | None = None):
    """plan_memory for an experiment config (shape from the model's config.json, see resolve_shape); a
    `model.load_in_4bit: auto` is decided first for this card (choose_precision)."""
    shape = builtin_shape(cfg) if cfg.model.is_builtin_tiny else resolve_shape(cfg.model.name)
    cfg, why = resolve_precision(cfg, gpu_gib, backend, standby)
    plan = plan_memory(shape, settings_from_config(cfg, backend, standby), gpu_gib)
    plan.precision_note = why
    return plan


# Unsloth's GRPO notebooks train models up to 4B (Qwen3-4B: 4.02B parameters) as 16-bit LoRA; 4.5B leaves the 4B
# class in and 7-8B models out.
FAST_PATH_MAX_PARAMS = 4.5e9


def choose_precision(
    cfg: ExperimentConfig, card_gib: float | None, backend: str = "auto", standby: bool | None = None
) -> tuple[bool, str]:
    """(load_in_4bit, why in words) for the config on a card of card_gib GiB (None: no GPU here).

    A bool in `model.load_in_4bit` is kept. `auto` is 16-bit LoRA when the model has at most FAST_PATH_MAX_PARAMS
    parameters and its 16-bit plan fits the card, else 4-bit. Why 16-bit where it fits: Unsloth's notebooks train
    small models as 16-bit LoRA; vLLM decodes 16-bit weights faster than bitsandbytes 4-bit, and unsloth hands
    vLLM the merged LoRA weights for its rollouts only when the engine is not quantized. 4-bit stays for larger
    models and small cards, where it is what fits.
    """
    setting = cfg.model.load_in_4bit
    if isinstance(setting, bool):
        return setting, f"model.load_in_4bit: {str(setting).lower()} (set in the config)"
    if cfg.model.is_builtin_tiny:
        return False, "model.load_in_4bit: auto -> 16-bit (the built-in model is tiny)"
    shape = resolve_shape(cfg.model.name)
    billions = shape.params / 1e9
    if shape.params > FAST_PATH_MAX_PARAMS:
        return True, f"model.load_in_4bit: auto -> 4-bit ({billions:.2f}B parameters, over the 4.5B of the 16-bit path)"
    if card_gib is None:
        return False, f"model.load_in_4bit: auto -> 16-bit LoRA ({billions:.2f}B parameters; no GPU to plan for)"
    sixteen = cfg.model_copy(update={"model": cfg.model.model_copy(update={"load_in_4bit": False})})
    plan = plan_memory(shape, settings_from_config(sixteen, backend, standby), card_gib)
    if plan.fits:
        return False, (
            f"model.load_in_4bit: auto -> 16-bit LoRA ({billions:.2f}B parameters; its 16-bit plan peaks at "
            f"{plan.peak_bytes / GIB:.1f} of {card_gib:g} GiB)"
        )
    return True, f"model.load_in_4bit: auto -> 4-bit (the 16-bit plan does not fit {card_gib:g} GiB)"


def resolve_precision(
    cfg: ExperimentConfig, card_gib: float | None, backend: str = "auto", standby: bool | None = None
) -> tuple[ExperimentConfig, str]:
    """The config with `model.load_in_4bit` decided (a bool), and why (choose_precision)."""
    four_bit, why = choose_precision(cfg, card_gib, backend, standby)
    if cfg.model.load_in_4bit is four_bit:
        return cfg, why
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"load_in_4bit": four_bit})}), why


def resolve_precision_here(cfg: ExperimentConfig, backend: str) -> tuple[ExperimentConfig, str]:
    """resolve_precision for this machine's first GPU (no GPU: card None)."""
    import torch

    card = torch.cuda.get_device_properties(0).total_memory / GIB if torch.cuda.is_available() else None
    return resolve_precision(cfg, card, backend)


# --------------------------------------------------------------------------------------------------------------
# Searches over the plan and the check


def with_completion(s: PlanSettings, completion_tokens: int) -> PlanSettings:
    """The same run with another completion budget (same prompt budget; an eval budget tied to it follows)."""
    return replace(s, completion_tokens=completion_tokens)


def with_generations(s: PlanSettings, num_generations: int) -> PlanSettings:
    """The same run with another group size: as many prompts per step, so the batch scales with G."""
    scale = num_generations / s.num_generations
    return replace(
        s,
        num_generations=num_generations,
        batch_rows=max(1, math.ceil(s.batch_rows * scale)),
        generation_batch=max(1, math.ceil(s.generation_batch * scale)),
    )


def largest_completion_length(shape: ModelShape, s: PlanSettings, card_gib: float, limit: int = 131072) -> int:
    """The longest max_completion_length that fits (0: none does); memory grows with it, so a bisection."""
    if not plan_memory(shape, with_completion(s, 1), card_gib).fits:
        return 0
    low, high = 1, limit
    while low < high:
        middle = (low + high + 1) // 2
        if plan_memory(shape, with_completion(s, middle), card_gib).fits:
            low = middle
        else:
            high = middle - 1
    return low


def largest_num_generations(shape: ModelShape, s: PlanSettings, card_gib: float, limit: int = 1024) -> int:
    """The largest group size G (>= 2) that fits with the same prompts per step (0: not even 2)."""
    best = 0
    for generations in range(2, limit + 1):
        if not plan_memory(shape, with_generations(s, generations), card_gib).fits:
            break
        best = generations
    return best


def check_fits(cfg: ExperimentConfig, gpu_gb: float, backend: str = "auto", *, standby: bool | None = None) -> Plan:
    """The plan for cfg on a card of gpu_gb GiB; a UserError with concrete advice when it does not fit (the strict
    check: experiments/plan_memory.py --check, and a run's `--strict-memory`)."""
    plan = plan_config(cfg, gpu_gb, backend, standby)
    if plan.fits:
        return plan
    raise UserError(_advice(cfg, plan, gpu_gb))


def over_card(plan: Plan) -> float:
    """How far the plan's peak is over the card, as a fraction of the card (0.1: 10% over; negative: headroom)."""
    return plan.peak_bytes / plan.card_bytes - 1


def check_memory_plan(
    cfg: ExperimentConfig, gpu_gb: float, backend: str, *, strict: bool = False, standby: bool | None = None
) -> tuple[Plan, str | None]:
    """The check a run makes before loading anything: (the plan, a warning to print or None); a UserError (exit 2)
    with the advice only when the plan's peak is over the card by more than PLAN_MARGIN[backend], or with
    `strict` whenever the plan does not fit. In between it advises and the run goes on: the plan can be that wrong."""
    plan = plan_config(cfg, gpu_gb, backend, standby)
    if plan.fits:
        return plan, None
    margin = PLAN_MARGIN[plan.settings.backend]
    over = over_card(plan)
    if strict:
        raise UserError(_advice(cfg, plan, gpu_gb) + " (--strict-memory: stopped on the plan alone.)")
    if over > margin:
        raise UserError(
            f"{_advice(cfg, plan, gpu_gb)} The plan is {over:.0%} over the card, past the {margin:.0%} by which it "
            f"has over-estimated measured figures (docs/planner.md), so this is not a close call."
        )
    where = "; ".join(plan.problems) if plan.problems else f"{over:.0%} over the card"
    return plan, (
        f"memory plan: {cfg.name} may not fit this {gpu_gb:.1f} GiB GPU: its {plan.peak_phase} plans "
        f"{plan.peak_bytes / GIB:.1f} GiB ({where}), within the plan's {margin:.0%} error margin (docs/planner.md), "
        f"so it runs. If it runs out of memory: {'; or '.join(_fixes(cfg, plan, gpu_gb))}. "
        f"--strict-memory stops such a run instead."
    )


def plan_facts(plan: Plan) -> dict[str, Any]:
    """The plan as summary.json keeps it beside the measured peak: GiB, the allocator's share (the plan without the
    CUDA context, which torch.cuda.max_memory_allocated never counts), the peak phase and the margin."""
    context = plan.component("CUDA context and kernels")
    return {
        "card_gib": round(plan.card_bytes / GIB, 2),
        "weights": plan.precision_note,
        "needed_gib": round(plan.needed_bytes / GIB, 3),
        "allocator_gib": round((plan.needed_bytes - context) / GIB, 3),
        "peak_gib": round(plan.peak_bytes / GIB, 3),
        "peak_phase": plan.peak_phase,
        "fits": plan.fits,
        "margin": PLAN_MARGIN[plan.settings.backend],
    }


def _fixes(cfg: ExperimentConfig, plan: Plan, card_gib: float) -> list[str]:
    """The config keys to change, each with a value the plan fits the card with."""
    s, shape = plan.settings, plan.shape
    fixes = []
    completion = largest_completion_length(shape, s, card_gib)
    if 0 < completion < s.completion_tokens:
        fixes.append(
            f"lower train.max_completion_length to {completion} (and model.max_seq_length to "
            f"{s.prompt_tokens + completion})"
        )
    generations = largest_num_generations(shape, s, card_gib)
    if 2 <= generations < s.num_generations:
        rows = with_generations(s, generations).batch_rows
        fixes.append(
            f"use fewer generations: train.num_generations={generations} with train.per_device_train_batch_size={rows}"
        )
    if s.use_vllm:
        util = _workable_utilization(shape, s, card_gib)
        if util is not None and abs(util - plan.vllm_utilization) > 1e-3:
            env = "" if not s.standby else " with UNSLOTH_VLLM_STANDBY_UTIL_OVERRIDE=1 (Standby sets its own share)"
            fixes.append(f"set model.gpu_memory_utilization to {util:.2f}{env}")
    smaller = _smaller_model(shape, s, card_gib)
    if smaller:
        fixes.append(f"use a smaller model: model.name={smaller}")
    if not fixes:
        fixes.append("use a card with more memory; no smaller setting of this config fits")
    return fixes


def _advice(cfg: ExperimentConfig, plan: Plan, card_gib: float) -> str:
    s, shape = plan.settings, plan.shape
    what = f"{shape.name} on {s.backend}"
    why = f"its {plan.peak_phase} needs {plan.peak_bytes / GIB:.1f} GiB"
    if plan.problems:
        why = "; ".join(plan.problems)
    return (
        f"{cfg.name} does not fit a {card_gib:.1f} GiB GPU: {what}, {why} "
        f"(plan it with: uv run python experiments/plan_memory.py CONFIG --gpu-gb {card_gib:g}). "
        f"To fit: {'; or '.join(_fixes(cfg, plan, card_gib))}. experiments/run_eval_test.py --force runs it anyway."
    )


def _workable_utilization(shape: ModelShape, s: PlanSettings, card_gib: float) -> float | None:
    """A vLLM share (a multiple of 0.05 in [0.1, 0.95]) with which the plan fits, closest to the current one."""
    candidates = [round(0.1 + 0.05 * k, 2) for k in range(18)]
    workable = [
        u
        for u in candidates
        if plan_memory(shape, replace(s, gpu_memory_utilization=u, standby_util_override=True), card_gib).fits
    ]
    if not workable:
        return None
    return min(workable, key=lambda u: abs(u - s.gpu_memory_utilization))


def _smaller_model(shape: ModelShape, s: PlanSettings, card_gib: float) -> str | None:
    smaller = sorted((m for m in SHIPPED_SHAPES.values() if m.params < shape.params), key=lambda m: -m.params)
    for candidate in smaller:
        if plan_memory(candidate, s, card_gib).fits:
            return hub_id(candidate, s.backend)
    return None


def hub_id(shape: ModelShape, backend: Backend) -> str:
    """A shipped model's hub id: Unsloth's copy on the unsloth backend (its mapper loads the pre-quantized 4-bit)."""
    owner = "meta-llama" if shape.name.startswith("Llama") else "Qwen"
    return f"unsloth/{shape.name}" if backend == "unsloth" else f"{owner}/{shape.name}"


# --------------------------------------------------------------------------------------------------------------
# The table


def plan_table(plan: Plan) -> Any:
    """A rich Table: every component, the phases, the peak and the headroom on the card."""
    from rich.table import Table

    s = plan.settings
    title = (
        f"GPU memory plan: {plan.shape.name} ({plan.shape.params / 1e9:.2f}B params) on {s.backend}, "
        f"{s.batch_rows} x {s.seq_len} tokens per step, {plan.card_bytes / GIB:g} GiB card"
    )
    table = Table("component", "GiB", "basis", title=title)
    for component in plan.components:
        table.add_row(component.name, f"{component.bytes / GIB:.2f}", component.note)
    table.add_section()
    table.add_row("needed (peak of the run)", f"{plan.needed_bytes / GIB:.2f}", "vLLM counted by its KV cache")
    if s.use_vllm:
        how = "released during training (Standby)" if s.standby else "held throughout (no Standby)"
        table.add_row(
            "vLLM reservation", f"{plan.vllm_reservation_bytes / GIB:.2f}", f"{plan.vllm_utilization:.3f} x card, {how}"
        )
    for phase, value in plan.phases.items():
        table.add_row(f"GPU during {phase}", f"{value / GIB:.2f}", "what nvidia-smi shows")
    table.add_row("[bold]peak[/]", f"[bold]{plan.peak_bytes / GIB:.2f}[/]", plan.peak_phase)
    verdict = "[green]fits[/]" if plan.fits else "[red]does not fit[/]"
    table.add_row("headroom", f"{plan.headroom_bytes / GIB:.2f}", verdict)
    if plan.host_offload_bytes:
        table.add_row("CPU RAM: offloaded checkpoints", f"{plan.host_offload_bytes / GIB:.2f}", "not on the GPU")
    return table
