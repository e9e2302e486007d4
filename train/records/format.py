"""The metrics record format: what a `step`, `epoch`, `eval` and `train` record of metrics.jsonl holds, and the summary.

A record is one JSON object with a `type` and the optimizer `step` it belongs to:
- `step`: one optimizer step: TRL's logged values (see the clipped-ratio note below), plus `reward_sum`,
  `num_completions`, `completions/budget` and `completions/budget_hit_ratio` (train/grpo/trainer.py) and, per reward,
  `rewards/<f>/sum` and `rewards/<f>/count` (so the steps of an epoch add up to the epoch's figures), and
  `timing/reward/<f>` (seconds spent in each reward that step);
- `epoch`: `epoch/accumulated_reward`, `epoch/mean_reward`, `epoch/num_samples`, `epoch/rewards/<f>/mean`;
- `eval`: `label` (zero_shot, epoch_N, step_N, final) and `eval/<metric>` for each metric of train.evaluation.evaluate;
- `train`: the trainer's closing `train_runtime` and `train_loss`, once per run (of the session that ended training).

TRL's `completions/clipped_ratio` (trl 1.14.2 grpo_trainer.py, `is_truncated = ids[-1] not in eos_and_pad`) counts
a completion as clipped whenever its last token is not end-of-sequence or padding. A completion that stops after a
stop string ends on that string's tokens, so on vLLM rollouts (stop strings through SamplingParams) every
completion that stops on `</answer>` counts as clipped, and the ratio reads near 1 for a model that answers well
within its budget. (Transformers rollouts stop on a one-token `</answer>` as an end-of-sequence id, so there it is
right.) `completions/budget_hit_ratio` is the share that really used the whole budget; the report plots it.

The reward sums come from the `RewardLedger` (train/grpo/ledger.py), which the trainer feeds with every batch of
rewards it computes.
summary.json is `build_summary` of the records (each evaluation once, read back with `summary_eval`); the console
tables, wandb and the reports read the same records.
"""

from __future__ import annotations

import json
from typing import Any

STEP, EPOCH, EVAL, TRAIN = "step", "epoch", "eval", "train"
EPOCH_PREFIX = "epoch/"
EVAL_PREFIX = "eval/"


def eval_fields(metrics: dict[str, float]) -> dict[str, float]:
    """An evaluation's metrics as an eval record's keys (`eval/pass@1`, ...)."""
    return {f"{EVAL_PREFIX}{key}": value for key, value in metrics.items()}


def eval_record(label: str, step: int, epoch: float, metrics: dict[str, float], **extra: Any) -> dict[str, Any]:
    """The `eval` record of one evaluation: its label, where it happened, `extra` (same_as) and its metrics."""
    return {"type": EVAL, "label": label, "step": step, "epoch": epoch, **extra, **eval_fields(metrics)}


def eval_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The metrics of an eval record (its `eval/` keys, unprefixed): the inverse of `eval_fields`."""
    return {key.removeprefix(EVAL_PREFIX): value for key, value in record.items() if key.startswith(EVAL_PREFIX)}


def build_summary(records: list[dict[str, Any]], wall_seconds: float) -> dict[str, Any]:
    """summary.json from the records, each evaluation stored once:

        evals       {label: metrics} of every evaluation (zero_shot, epoch_N, step_N, final)
        zero_shot   the label of the zero-shot evaluation in evals (None without one)
        final       the label of the final evaluation in evals: "final", or the evaluation it reuses (epoch_N,
                    the same model); None until the run has one, so a summary with "final" is a finished run
        epochs      per epoch: its figures (accumulated_reward, mean_reward, num_samples, rewards/<f>/mean) and
                    "eval", the label of its evaluation (None without one)
        wall_seconds

    Read an evaluation with `summary_eval`, which also reads summary.json as written before Dec 2026 (zero_shot,
    final and each epoch's eval held copies of the metrics).
    """
    evals: dict[str, dict[str, Any]] = {}
    final = None
    for row in records:
        if row.get("type") != EVAL:
            continue
        same_as = row.get("same_as")
        if row["label"] == "final" and same_as in evals:
            final = same_as  # the final evaluation is that one (the same model): stored once, under its label
            continue
        evals[row["label"]] = {
            key: value for key, value in _summary_fields(row, EVAL_PREFIX).items() if key != "same_as"
        }
        if row["label"] == "final":
            final = "final"
    epochs = []
    for row in records:
        if row.get("type") == EPOCH:
            epoch = int(row["epoch"])
            label = f"epoch_{epoch}"
            epochs.append(
                {"epoch": epoch, **_summary_fields(row, EPOCH_PREFIX), "eval": label if label in evals else None}
            )
    return {
        "zero_shot": "zero_shot" if "zero_shot" in evals else None,
        "epochs": epochs,
        "final": final,
        "evals": evals,
        "wall_seconds": round(wall_seconds, 2),
    }


def summary_eval(summary: dict[str, Any] | None, which: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """The metrics of one evaluation in a summary.json: `which` is "zero_shot", "final", an eval label (epoch_2),
    or an epoch entry's "eval"; None when the summary has none. Reads both layouts: labels into `evals` (this
    module's), and the copies of the metrics summary.json held before Dec 2026."""
    if not summary or which is None:
        return None
    if isinstance(which, dict):  # an old epoch entry's copy of its evaluation
        return which
    value = summary.get(which) if which in ("zero_shot", "final") else which
    if isinstance(value, dict):  # the old layout: zero_shot and final held the metrics themselves
        return value
    return (summary.get("evals") or {}).get(value) if isinstance(value, str) else None


def summary_problem(summary: dict[str, Any]) -> str | None:
    """What in a summary.json is not as `build_summary` writes it (or wrote it before Dec 2026), or None: readers
    index into evals, zero_shot, final and epochs by their shapes."""
    evals = summary.get("evals")
    if evals is not None and not isinstance(evals, dict):
        return f'its "evals" is {_json_kind(evals)}, not an object of evaluations by label'
    for label, metrics in (evals or {}).items():
        if not isinstance(metrics, dict):
            return f'its evaluation "{label}" is {_json_kind(metrics)}, not an object of metrics'
    for key in ("zero_shot", "final"):
        if summary.get(key) is not None and not isinstance(summary[key], str | dict):
            return f'its "{key}" is {_json_kind(summary[key])}, not the label of an evaluation'
    epochs = summary.get("epochs")
    if epochs is not None and (not isinstance(epochs, list) or not all(isinstance(e, dict) for e in epochs)):
        return f'its "epochs" is {_json_kind(epochs)}, not a list of objects, one per epoch'
    return None


def _json_kind(value: Any) -> str:
    kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return f"{kind.get(type(value), type(value).__name__)} ({json.dumps(value)[:40]})"


def _summary_fields(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A record's figures without its prefix, and without the keys that place it (type, label, step, epoch)."""
    return {
        key.removeprefix(prefix): value for key, value in row.items() if key not in ("type", "label", "step", "epoch")
    }


def config_value(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """A key of a run's config.yaml by its dotted path ("train.beta"), or `default` where the config lacks it."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node
