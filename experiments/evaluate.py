"""Evaluate a saved adapter, or the base model alone, on the config's test split: greedy pass@1, pass@k, outcomes.

The same evaluation a training run makes after each epoch, on its own (train/run.py:evaluate_policy): the config
names the model, the task and its test split, the rewards and the eval settings; --adapter loads a run's trained
weights on top. It prints the metrics table and writes eval_metrics.json and eval_samples.jsonl (every completion
with its rewards, readable by experiments/score_rewards.py) to the output directory.

    uv run python experiments/evaluate.py experiment_configs/quickstart.yaml                      # the base model
    uv run python experiments/evaluate.py experiment_configs/quickstart.yaml \\
        --adapter runs/quickstart-20261122-101500/adapter --compare runs/base-eval/eval_metrics.json
    uv run python experiments/evaluate.py CONFIG --set data.test_samples=20 --set eval.pass_k=[1]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from train.config import load_config
from train.errors import UserError, exit_on_user_error
from train.models import adapter_kind
from train.records.files import write_atomic
from train.records.rundir import run_dir_name


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="Experiment YAML (model, data, rewards, eval).")
    parser.add_argument(
        "--adapter", type=Path, help="A saved adapter (or full weights) directory, e.g. a run's adapter/."
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="Override a config key (repeatable)."
    )
    parser.add_argument("--output-dir", type=Path, help="Where to write (default: <output.dir>/<name>-eval-<time>).")
    parser.add_argument("--compare", type=Path, help="An earlier eval_metrics.json to compare with in the table.")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, args.set)
    if args.adapter is not None and adapter_kind(args.adapter) is None:
        raise UserError(
            f"--adapter {args.adapter} is not a saved adapter: it holds neither adapter_config.json (a LoRA adapter) "
            "nor config.json (full weights). Pass a run's adapter/ directory, e.g. runs/<run>/adapter."
        )
    baseline = _read_metrics(args.compare) if args.compare else None

    # The backend first: unsloth must be imported before trl, transformers and peft.
    from train.models.unsloth import prepare_backend

    backend = prepare_backend(cfg.model)

    from train.records import voice
    from train.records.console import eval_table
    from train.run import evaluate_policy

    console = voice.console()
    output_dir = args.output_dir or Path(cfg.output.dir) / run_dir_name(f"{cfg.name}-eval")
    metrics = evaluate_policy(cfg, backend, adapter=args.adapter, output_dir=output_dir, console=console)
    what = f"adapter {args.adapter}" if args.adapter else f"base model {cfg.model.name}"
    label = f"{args.compare.parent.name}" if args.compare else "zero-shot"
    console.print(eval_table(baseline, metrics, title=f"{cfg.name}: {what}", baseline_label=label))
    record = {"config": str(args.config), "overrides": args.set, "adapter": str(args.adapter or ""), "metrics": metrics}
    write_atomic(output_dir / "eval_metrics.json", json.dumps(record, indent=2) + "\n")
    console.print(f"wrote {output_dir / 'eval_metrics.json'} and {output_dir / 'eval_samples.jsonl'}")


def _read_metrics(path: Path) -> dict[str, float]:
    try:
        return json.loads(path.read_text())["metrics"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(
            f"--compare {path} is not an eval_metrics.json written by experiments/evaluate.py. Pass one, or drop "
            "--compare."
        ) from None


if __name__ == "__main__":
    main()
