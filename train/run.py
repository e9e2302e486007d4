"""One run, assembled and run: `build(cfg, backend, run_dir) -> Run`, `run(built) -> summary`, and `main(argv)`.

This is the only place a run is put together. experiments/run_eval_test.py is its command line for people;
`python -m train.run` is the same command line for subprocesses (train/lab/sweep.py starts one per variant); tests
call `main(argv)` or `build`/`run` directly.

    uv run python -m train.run experiment_configs/quickstart.yaml --output-dir runs/q [--resume] [--set k=v ...]

The steps read top to bottom like Unsloth's GRPO notebooks (the README's "How a run goes" names each one's home):
`main` decides the config and run dir and prepares the backend; `build` assembles task, rewards, model, tracking,
evaluator and the trainer with its epoch-boundary callbacks in one ordered list; `run` evaluates zero-shot, trains
(an evaluation after every epoch), evaluates the final model and writes the summary and report.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.errors import exit_on_user_error
from train.models.threads import set_num_threads
from train.records import voice
from train.records.distributed import MainProcessEvaluator, check_backend_scales, decided_by_main, is_main_process
from train.records.rundir import ADAPTER_DIR, SAMPLES_DIR, Checkpoint, RunDir

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run_eval_test.py",
        description="GRPO with evaluation around it: zero-shot eval, num_epochs of GRPO each followed by eval, "
        "final eval, summary.",
    )
    parser.add_argument("config", help="experiment YAML, e.g. experiment_configs/quickstart.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument(
        "--output-dir", type=Path, help="the run dir (default: <output.dir>/<name>-<overrides>-<timestamp>)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --output-dir (or the latest)")
    parser.add_argument(
        "--force", action="store_true", help="run even when the VRAM plan says it is far over the card (no check)"
    )
    parser.add_argument(
        "--strict-memory",
        action="store_true",
        help="stop whenever the VRAM plan does not fit the card (default: stop only past the plan's error margin)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="also print what the libraries print (TRL's per-step dicts, ...)"
    )
    parser.add_argument("--help-config", action=HelpConfig, help="print every config key, its default and meaning")
    return parser.parse_args(argv)


class HelpConfig(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from rich.table import Table

        from train.config import describe_schema

        table = Table("key", "default", "meaning", title="experiment config (YAML keys; --set key=value)")
        for key, default, meaning in describe_schema():
            table.add_row(key, default, meaning)
        voice.console().print(table)
        parser.exit()


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    started = time.time()
    args = parse_args(argv)
    console = voice.console()  # quiet in every process but the main one: one process speaks, however many run

    # 1. Config and run dir: validated and decided before anything is loaded (a resume runs with its own config).
    # Under `accelerate launch` every process runs this; the main process alone decides the run dir (one timestamp),
    # creates and locks it, and writes to it (train/records/distributed.py): the others take its decisions.
    from train.config import load_config

    run_dir = decided_by_main(
        lambda: RunDir.choose(
            load_config(args.config, args.set), args.output_dir, resume=args.resume, overrides=args.set
        )
    )
    cfg = run_dir.cfg
    if run_dir.resuming and run_dir.finished:
        console.print(
            f"{run_dir.path} has finished (summary.json has its final evaluation): nothing to resume.",
            highlight=False,
            soft_wrap=True,
        )
        return {}
    if run_dir.resuming:
        picked = "" if args.output_dir else f" (the newest run of {cfg.name}; --output-dir picks another)"
        console.print(f"resuming {run_dir.path}{picked}", highlight=False, soft_wrap=True)
    try:
        # 2. Backend: unsloth (if used) must be imported before trl, transformers and peft; on a GPU the memory plan
        # is checked before anything loads.
        from train.models.unsloth import prepare_backend

        backend = prepare_backend(cfg.model)
        check_backend_scales(backend)
        # model.load_in_4bit: auto is decided for this card now; config.yaml keeps the decision (a resume reuses it).
        if not isinstance(cfg.model.load_in_4bit, bool):
            from train.lab.memory_check import resolve_precision_here

            cfg, precision = resolve_precision_here(cfg, backend)
            run_dir.cfg = cfg
            console.print(precision, highlight=False, soft_wrap=True)
        memory_plan = check_memory(cfg, backend, force=args.force, strict=args.strict_memory, console=console)
        built = build(cfg, backend, run_dir, config_file=args.config, verbose=args.verbose, console=console)
        built.memory_plan = memory_plan
        return run(built, started=started)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the line below short
        console.print(run_dir.interrupted_message(), highlight=False, soft_wrap=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        run_dir.close()  # the lock, for a caller in this process (a test, a resume after an error) to take again


@dataclass
class Run:
    """Everything one run is made of, assembled by `build` and driven by `run`."""

    cfg: Any
    backend: str
    run_dir: RunDir
    console: Any
    checkpoint: Checkpoint | None
    policy: Any
    log: Any
    mirror: Any
    evaluator: MainProcessEvaluator
    trainer: Any
    adapter: Any
    progress: Any
    memory_plan: dict[str, Any] | None = None  # check_memory's figures, kept in summary.json beside the peak


def build(
    cfg,
    backend: str,
    run_dir: RunDir,
    *,
    config_file: str | Path = "",
    verbose: bool = False,
    console=None,
) -> Run:
    """Assemble the run in the order it happens; the backend must already be prepared (`prepare_backend`)."""
    console = console or voice.console()
    # 3. Task, data and rewards: all checked before the run dir is touched (and before trl is imported).
    task, (train_rows, test_rows), (reward_funcs, reward_weights) = task_and_rewards(cfg, ("train", "test"))
    reward_names = [f.__name__ for f in reward_funcs]

    # 4. The CPU thread count before any model work (train/models/threads.py), and the libraries' noise off the screen.
    threads, why_threads = set_num_threads(cfg)
    from train.records.console import quiet_third_party

    if not verbose:
        quiet_third_party()

    # ... and what only the installed libraries and the model can refuse, asked now: the model's name, tokenizer,
    # LoRA targets and stop strings, and the trainer's arguments (train.trl's fields, the scheduler, the optimizer's
    # package, the batch against the data).
    from train.grpo.arguments import check_arguments, resolve
    from train.models.checks import check_model

    check_model(cfg, task)
    check_arguments(
        resolve(
            cfg,
            backend,
            output_dir=run_dir.checkpoint_dir,
            reward_weights=reward_weights,
            stop_strings=task.stop_strings,
        ),
        len(train_rows),
    )

    # 5. The run dir: created (or taken back for a resume, with its last checkpoint) now that the inputs are sound.
    checkpoint = decided_by_main(lambda: run_dir.open(config_file=config_file))

    from train.diagnosis import NewFindings
    from train.evaluation.evaluate import Evaluator
    from train.grpo.callbacks import EpochCallback, MetricsCallback, ReportCallback
    from train.grpo.ledger import RewardLedger
    from train.grpo.trainer import GRPOLabTrainer
    from train.models import load_policy
    from train.records.adapter import EpochAdapterCallback
    from train.records.console import ProgressLine, take_over_progress
    from train.records.tracking import MetricsLog, NullMirror, start_wandb

    # 6. Model: the policy with LoRA (or full weights for the built-in model on hf).
    policy = load_policy(cfg, task, backend)
    console.print(
        f"[bold]{cfg.name}[/]: {cfg.model.name} on {backend} ({threads} torch thread{'s' if threads > 1 else ''}, "
        f"{why_threads}), task {task.name}, {len(train_rows)} train / {len(test_rows)} test prompts, rewards "
        f"{', '.join(reward_names)}",
        soft_wrap=True,
    )
    if checkpoint is not None:
        console.print(f"from {checkpoint.path} (step {checkpoint.step})", highlight=False, soft_wrap=True)

    # 7. Tracking: metrics.jsonl first (train/records/tracking.py), wandb as its mirror on the main process.
    mirror = (
        start_wandb(
            cfg.logging.wandb,
            project=cfg.logging.project,
            name=cfg.logging.run_name or run_dir.path.name,
            run_dir=run_dir.path,
            config=cfg.model_dump(mode="json"),
            run_id=run_dir.wandb_id(),
        )
        if is_main_process()
        else NullMirror()
    )
    if not verbose:
        quiet_third_party()  # now that wandb is imported, its offline-URL warning too
    log = MetricsLog(run_dir.metrics_path, mirror, guard=run_dir.check_held)

    # 8. Evaluation: the test split through the policy's generator; one evaluation, one record, however many
    # processes (MainProcessEvaluator).
    evaluator = MainProcessEvaluator(
        Evaluator(
            generator=policy.generator(cfg.eval.batch_size, scratch_dir=run_dir.path, stop_strings=task.stop_strings),
            task=task,
            rows=test_rows,
            reward_funcs=reward_funcs,
            reward_weights=reward_weights,
            eval_cfg=cfg.eval,
            max_new_tokens=cfg.eval_max_new_tokens,
            log=log,
            samples_dir=run_dir.path / SAMPLES_DIR,
            console=console,
        )
    )

    # 9. The reward ledger (every training completion's rewards; a resumed run starts its epoch from its records).
    ledger = RewardLedger(reward_names, reward_weights)
    ledger.restore_epoch(log.records("step"), log.records("epoch"))

    # 10. The trainer: TRL's GRPOTrainer with the arguments `resolve` derives from the config, once.
    resolved = resolve(
        cfg,
        backend,
        output_dir=run_dir.checkpoint_dir,
        reward_weights=reward_weights,
        stop_strings=task.stop_strings,
        vllm=policy.has_vllm,
    )
    adapter = EpochAdapterCallback(policy, run_dir.path / ADAPTER_DIR)
    progress = ProgressLine(console, run_dir.path.name, reward_names)
    # 11. What happens at every step and epoch boundary, in this order: the step record; the epoch record, its
    # evaluation and checkpoint request; the adapter (so a killed run keeps its latest); the report (plots,
    # report.md/html, from what was just logged). The trainer itself sets each epoch's token budget at its start
    # (train.curriculum, `completion_budget` in resolved.trainer), and the progress line comes last (step 12).
    callbacks = [
        MetricsCallback(log=log, ledger=ledger, reward_funcs=reward_funcs),
        EpochCallback(log=log, ledger=ledger, eval_cfg=cfg.eval, evaluate=evaluator, console=console),
        *([adapter] if cfg.output.save_adapter else []),
        ReportCallback(run_dir=run_dir.path),
    ]
    trainer = GRPOLabTrainer(
        model=policy.model,
        processing_class=policy.tokenizer,
        reward_funcs=reward_funcs,
        args=resolved.grpo_config(),
        train_dataset=train_rows,
        callbacks=callbacks,
        ledger=ledger,
        **resolved.trainer,
    )
    # 12. What works on the whole model needs the trainer: under ZeRO-3 it gathers the sharded weights for
    # evaluation and saving. One progress line replaces TRL's per-step dicts.
    evaluator.trainer = adapter.trainer = trainer
    # 13. The diagnosis reads the records as they are after each evaluation: at most three new findings printed.
    evaluator.evaluator.new_findings = NewFindings(lambda: run_records(cfg, run_dir, log, reward_funcs))
    if not verbose:
        take_over_progress(trainer, progress)
    return Run(cfg, backend, run_dir, console, checkpoint, policy, log, mirror, evaluator, trainer, adapter, progress)


def run(built: Run, *, started: float | None = None) -> dict[str, Any]:
    """Zero-shot evaluation, GRPO (an evaluation after every epoch), final evaluation, adapter, summary, report."""
    started = time.time() if started is None else started
    cfg, trainer, evaluator, console = built.cfg, built.trainer, built.evaluator, built.console
    from train.diagnosis import diagnose
    from train.grpo.callbacks import write_report
    from train.models import gpu_facts
    from train.records.console import finding_width, verdict_lines
    from train.records.format import build_summary
    from train.records.tracking import write_summary

    # 14. Zero-shot baseline (kept from the first session when resuming).
    if cfg.eval.zero_shot:
        evaluator.zero_shot()

    # 15. GRPO, with the callbacks above at every step and epoch end.
    checkpoint = built.checkpoint
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint.path) if checkpoint else None)
    finally:
        built.progress.stop()

    # 16. Final evaluation (the last epoch's, when it evaluated this very model), adapter, summary, report.
    evaluator.final(trainer.state.global_step, trainer.state.epoch)
    if cfg.output.save_adapter:
        built.adapter.save_final(trainer.state.global_step)
    if not is_main_process():
        return {}
    summary = build_summary(built.log.records(), wall_seconds=time.time() - started)
    summary["backend"] = built.backend
    summary["overrides"] = built.run_dir.overrides
    # vLLM's model and share, Standby, the peak memory beside the plan checked before the run (None on a CPU).
    summary["gpu"] = gpu_facts(built.policy, plan=built.memory_plan)
    diagnosis = diagnose(run_records(cfg, built.run_dir, built.log, evaluator.evaluator.reward_funcs))
    summary["diagnosis"] = diagnosis.as_dict()  # the verdict and every finding, as the report shows them
    write_summary(built.run_dir.path, summary)
    write_report(built.run_dir.path)  # never raises, its import included: a report cannot fail a finished run
    built.mirror.finish(summary)
    evaluator.print_summary(summary)
    for line in verdict_lines(diagnosis, built.run_dir.path, width=finding_width(console)):
        console.print(line, highlight=False, soft_wrap=True)
    offline = getattr(built.mirror, "offline_dir", None)
    if offline is not None:
        console.print(
            f"wandb: offline run in {offline}; upload it with: wandb sync {offline}", highlight=False, soft_wrap=True
        )
    console.print(f"run dir: {built.run_dir.path}", highlight=False)
    return summary


def run_records(cfg, run_dir: RunDir, log, reward_funcs: list[Any]):
    """The run's records as the diagnosis reads them: metrics.jsonl so far, the samples of every evaluation, the
    config, and the rewards' reasons for a score (train.diagnosis)."""
    from train.diagnosis import from_records, read_samples_dir
    from train.evaluation.samples import sample_explainer

    return from_records(
        log.records(),
        config=cfg.model_dump(mode="json"),
        samples=read_samples_dir(run_dir.path / "samples"),
        explain=sample_explainer(reward_funcs),
        source=f"run dir {run_dir.path}",
    )


def task_and_rewards(cfg, splits: tuple[str, ...]) -> tuple[Any, list[Any], tuple[list[Any], list[float]]]:
    """The task, its rows of each split asked for, and the rewards with their weights, checked against the first
    split's columns (a reward needing a gold column the data lacks stops here, before any model loads)."""
    from train.tasks import build_rewards, get_task, probe_rewards

    task = get_task(cfg.data)
    sizes = {"train": cfg.data.train_samples, "test": cfg.data.test_samples}
    rows = [task.load_split(split, sizes[split]) for split in splits]
    reward_funcs, reward_weights = build_rewards(cfg.rewards, task, columns=rows[0].column_names)
    probe_rewards(reward_funcs, task, rows[0])  # each reward's first call: a broken one stops before the run dir
    return task, rows, (reward_funcs, reward_weights)


def evaluate_policy(cfg, backend: str, *, adapter: Path | None, output_dir: Path, console) -> dict[str, float]:
    """The evaluation a run makes after each epoch, on its own (experiments/evaluate.py): the config's model, or
    `adapter` on top of it, on the test split; eval_samples.jsonl written to `output_dir`. The backend must already
    be prepared (`prepare_backend`)."""
    from train.evaluation.evaluate import evaluate
    from train.models import load_policy
    from train.records.console import quiet_third_party

    task, (rows,), (reward_funcs, reward_weights) = task_and_rewards(cfg, ("test",))
    set_num_threads(cfg)
    quiet_third_party()
    # The built-in base model is looked up by its warm start; a build (when these settings change it) says why.
    policy = load_policy(cfg, task, backend, adapter=adapter)
    output_dir.mkdir(parents=True, exist_ok=True)
    what = f"adapter {adapter}" if adapter else f"base model {cfg.model.name}"
    console.print(f"evaluating the {what} on {len(rows)} {task.name} test prompts ({backend} backend)")
    return evaluate(
        policy.generator(cfg.eval.batch_size, scratch_dir=output_dir, stop_strings=task.stop_strings),
        task,
        rows,
        reward_funcs,
        reward_weights,
        cfg.eval,
        max_new_tokens=cfg.eval_max_new_tokens,
        samples_path=output_dir / "eval_samples.jsonl",
        console=console,
    )


def check_memory(cfg, backend: str, *, force: bool, strict: bool = False, console=None) -> dict[str, Any] | None:
    """On a GPU, plan the run's peak memory before anything is loaded (train/lab/memory_check.py): past the plan's
    error margin over the card (or over it at all, with `strict`) stop with the advice (exit 2); within the margin
    print the advice and go on. Returns the plan's figures for summary.json (None on a CPU or with `force`)."""
    import torch

    if force or not torch.cuda.is_available():
        return None
    from train.lab.memory_check import check_memory_plan, plan_facts

    card_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    plan, warning = check_memory_plan(cfg, card_gib, backend, strict=strict)
    if warning and console is not None:
        console.print(warning, style="yellow", markup=False, highlight=False, soft_wrap=True)
    return plan_facts(plan)


if __name__ == "__main__":
    main()
