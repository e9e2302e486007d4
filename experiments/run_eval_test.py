"""GRPO with evaluation around it: zero-shot eval, num_epochs of GRPO each followed by eval, final eval, summary.

    uv run python experiments/run_eval_test.py experiment_configs/quickstart.yaml            # CPU, offline
    uv run python experiments/run_eval_test.py experiment_configs/eval_test_improved.yaml    # one 24 GB GPU
    ... --set train.beta=0.0 --set train.loss_type=dr_grpo    # override any key, typed by the schema
    ... --output-dir runs/my-run --resume                      # continue a killed run from its last checkpoint
    ... --force                                                # run even if the VRAM plan says it will not fit
    ... --verbose                                              # also what TRL and the libraries print

The flow reads top to bottom like Unsloth's GRPO notebooks: config, backend (unsloth first, before trl), task and
rewards, model, a zero-shot baseline, GRPO with an evaluation after every epoch, a final evaluation, and the run
dir (<output.dir>/<name>-<overrides>-<timestamp>): config.yaml, metrics.jsonl (every step, epoch and eval
record), summary.json, samples/, adapter/.
Design choices: the trainer is TRL's GRPOTrainer (train/trainer.py adds the no-baseline arm and the epoch reward
ledger); every figure goes through metrics.jsonl first, and the console shows a live progress line, each
evaluation's table with a few samples, and nothing of TRL's per-step dicts (train/console.py); bad input stops
before a run dir exists (exit code 2); a Ctrl-C prints the command that resumes the run and exits 130.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from train.distributed import MainProcessEvaluator, check_backend_scales, decided_by_main, is_main_process
from train.errors import exit_on_user_error
from train.threads import set_num_threads

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="experiment YAML, e.g. experiment_configs/quickstart.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument(
        "--output-dir", type=Path, help="the run dir (default: <output.dir>/<name>-<overrides>-<timestamp>)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --output-dir (or the latest)")
    parser.add_argument("--force", action="store_true", help="run even when the VRAM plan says it will not fit")
    parser.add_argument(
        "--verbose", action="store_true", help="also print what the libraries print (TRL's per-step dicts, ...)"
    )
    parser.add_argument("--help-config", action=HelpConfig, help="print every config key, its default and meaning")
    return parser.parse_args(argv)


class HelpConfig(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from rich.console import Console
        from rich.table import Table

        from train.config import describe_schema

        table = Table("key", "default", "meaning", title="experiment config (YAML keys; --set key=value)")
        for key, default, meaning in describe_schema():
            table.add_row(key, default, meaning)
        Console().print(table)
        parser.exit()


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    started = time.time()
    args = parse_args(argv)
    from rich.console import Console

    console = Console(quiet=not is_main_process())  # one process speaks, however many run

    # 1. Config and run dir: validated and decided before anything is loaded (a resume runs with its own config).
    # Under `accelerate launch` every process runs this script; the main process alone decides the run dir (one
    # timestamp), creates and locks it, and writes to it (train/distributed.py): the others take its decisions.
    from train.config import load_config
    from train.rundir import RunDir

    run = decided_by_main(
        lambda: RunDir.choose(
            load_config(args.config, args.set), args.output_dir, resume=args.resume, overrides=args.set
        )
    )
    cfg = run.cfg
    if run.resuming and run.finished:
        console.print(
            f"{run.path} has finished (summary.json has its final evaluation): nothing to resume.",
            highlight=False,
            soft_wrap=True,
        )
        return {}
    if run.resuming:
        picked = "" if args.output_dir else f" (the newest run of {cfg.name}; --output-dir picks another)"
        console.print(f"resuming {run.path}{picked}", highlight=False, soft_wrap=True)
    try:
        return train_and_evaluate(args, run, console, started)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the line below short
        console.print(run.interrupted_message(), highlight=False, soft_wrap=True)
        sys.exit(EXIT_INTERRUPTED)


def train_and_evaluate(args: argparse.Namespace, run, console, started: float) -> dict:
    cfg = run.cfg

    # 2. Backend: unsloth (if used) must be imported before trl, transformers and peft.
    from train.models.unsloth import prepare_backend

    backend = prepare_backend(cfg.model)
    check_backend_scales(backend)
    from train.memory_plan import resolve_precision_here

    # model.load_in_4bit: auto is decided for this card now, and config.yaml keeps the decision (a resume reuses it).
    if not isinstance(cfg.model.load_in_4bit, bool):
        cfg, precision = resolve_precision_here(cfg, backend)
        run.cfg = cfg
        console.print(precision, highlight=False, soft_wrap=True)
    check_memory(cfg, backend, force=args.force)

    from train.tasks import build_rewards, get_task

    # 3. Task, data and rewards: all checked before the run dir is touched (and before trl is imported).
    task = get_task(cfg.data)
    train_rows = task.load_split("train", cfg.data.train_samples)
    test_rows = task.load_split("test", cfg.data.test_samples)
    reward_funcs, reward_weights = build_rewards(cfg.rewards, task, columns=train_rows.column_names)

    # The CPU thread count before any model work (train/threads.py), and the libraries' noise off the screen.
    threads, why_threads = set_num_threads(cfg)
    from train.console import quiet_third_party

    if not args.verbose:
        quiet_third_party()
    checkpoint = decided_by_main(lambda: run.open(config_file=args.config))

    from train.callbacks import EpochCallback, MetricsCallback, ReportCallback, write_report
    from train.console import ProgressLine, take_over_progress
    from train.evaluation import Evaluator
    from train.models import gpu_facts, load_policy
    from train.records import RewardLedger, build_summary
    from train.run_adapter import EpochAdapterCallback
    from train.tracking import MetricsLog, NullMirror, start_wandb, write_summary
    from train.trainer import GRPOLabTrainer, grpo_config

    # 4. Model: the policy with LoRA (or full weights for the built-in model on hf).
    policy = load_policy(cfg, task, backend)
    console.print(
        f"[bold]{cfg.name}[/]: {cfg.model.name} on {backend} ({threads} torch thread{'s' if threads > 1 else ''}, "
        f"{why_threads}), task {task.name}, {len(train_rows)} train / {len(test_rows)} test prompts, rewards "
        f"{', '.join(f.__name__ for f in reward_funcs)}",
        soft_wrap=True,
    )
    if checkpoint is not None:
        console.print(f"from {checkpoint.path} (step {checkpoint.step})", highlight=False, soft_wrap=True)

    # 5. Tracking and evaluation.
    mirror = (
        start_wandb(
            cfg.logging.wandb,
            project=cfg.logging.project,
            name=cfg.logging.run_name or run.path.name,
            run_dir=run.path,
            config=cfg.model_dump(mode="json"),
            run_id=run.wandb_id(),
        )
        if is_main_process()
        else NullMirror()
    )
    if not args.verbose:
        quiet_third_party()  # now that wandb is imported, its offline-URL warning too
    log = MetricsLog(run.metrics_path, mirror)
    evaluator = Evaluator(
        generator=policy.generator(cfg.eval.batch_size, scratch_dir=run.path, stop_strings=task.stop_strings),
        task=task,
        rows=test_rows,
        reward_funcs=reward_funcs,
        reward_weights=reward_weights,
        eval_cfg=cfg.eval,
        max_new_tokens=cfg.eval_max_new_tokens,
        log=log,
        samples_dir=run.path / "samples",
        console=console,
    )
    evaluator = MainProcessEvaluator(evaluator)  # one evaluation, one record, however many processes

    # 6. Zero-shot baseline (kept from the first session when resuming).
    if cfg.eval.zero_shot:
        evaluator.zero_shot()

    # 7. GRPO, with the epoch summary and evaluation after every epoch; one progress line instead of TRL's dicts.
    ledger = RewardLedger([f.__name__ for f in reward_funcs], reward_weights)
    ledger.restore_epoch(log.records("step"), log.records("epoch"))
    trainer = GRPOLabTrainer(
        model=policy.model,
        processing_class=policy.tokenizer,
        reward_funcs=reward_funcs,
        args=grpo_config(
            cfg, run.checkpoint_dir, reward_weights, backend, stop_strings=task.stop_strings, vllm=policy.has_vllm
        ),
        train_dataset=train_rows,
        callbacks=[
            MetricsCallback(log=log, ledger=ledger, reward_funcs=reward_funcs),
            EpochCallback(log=log, ledger=ledger, eval_cfg=cfg.eval, evaluate=evaluator, console=console),
        ],
        baseline=cfg.train.baseline,
        ledger=ledger,
        stop_strings=task.stop_strings,
        hybrid_loss=cfg.train.loss_type == "hybrid",
        completion_budget=cfg.train.completion_budget if cfg.train.curriculum else None,
    )
    evaluator.trainer = trainer  # evaluations from here on see the whole model (gathered under ZeRO-3)
    adapter = EpochAdapterCallback(policy, run.path / "adapter", trainer)
    if cfg.output.save_adapter:  # after every epoch, so a killed run keeps its latest adapter
        trainer.add_callback(adapter)
    trainer.add_callback(ReportCallback(run_dir=run.path))  # report.md/html and plots, rebuilt every epoch
    progress = ProgressLine(console, run.path.name, [f.__name__ for f in reward_funcs])
    if not args.verbose:
        take_over_progress(trainer, progress)
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint.path) if checkpoint else None)
    finally:
        progress.stop()

    # 8. Final evaluation (the last epoch's, when it evaluated this very model), adapter, summary.
    evaluator.final(trainer.state.global_step, trainer.state.epoch)
    if cfg.output.save_adapter:
        adapter.save_final(trainer.state.global_step)
    if not is_main_process():
        return {}
    summary = build_summary(log.records(), wall_seconds=time.time() - started)
    summary["backend"] = backend
    summary["overrides"] = run.overrides
    summary["gpu"] = gpu_facts(policy)  # vLLM's model and share, Standby, peak memory (None on a CPU)
    write_summary(run.path, summary)
    write_report(run.path)  # never raises, its import included: a report cannot fail a finished run
    mirror.finish(summary)
    evaluator.print_summary(summary)
    offline = getattr(mirror, "offline_dir", None)
    if offline is not None:
        console.print(
            f"wandb: offline run in {offline}; upload it with: wandb sync {offline}", highlight=False, soft_wrap=True
        )
    console.print(f"run dir: {run.path}", highlight=False)
    return summary


def check_memory(cfg, backend: str, *, force: bool) -> None:
    """On a GPU, plan the run's peak memory before anything is loaded; stop with advice when it cannot fit."""
    import torch

    if force or not torch.cuda.is_available():
        return
    from train.memory_plan import check_fits

    check_fits(cfg, torch.cuda.get_device_properties(0).total_memory / 2**30, backend)


if __name__ == "__main__":
    main()
