"""Tasks: the data, prompt, gold columns, default rewards and grading of each problem set, behind one interface.

    task = get_task(cfg.data)                        # TASKS[cfg.data.task](cfg.data), options validated
    rows = task.load_split("train", cfg.data.train_samples)
    reward_funcs, reward_weights = build_rewards(cfg.rewards, task)
    probe_rewards(reward_funcs, task, rows)           # their first call, before the run dir exists

Adding a task is one module with a `Task` subclass and one line in `TASKS`.

May import: rewards/, datasets, train.config, train.errors. Never a model or the trainer: a task grades text.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from train.config import DataConfig, RewardSpec
from train.errors import UserError
from train.tasks.arithmetic import ArithmeticTask
from train.tasks.base import Outcome, Row, Split, Task, TaskOptions
from train.tasks.columns import HubTask, JsonlTask
from train.tasks.countdown import CountdownTask
from train.tasks.gsm8k import GSM8KTask
from train.tasks.math import MathTask
from train.tasks.templates import PromptTemplate, prompt_template

if TYPE_CHECKING:
    from datasets import Dataset

TASKS: dict[str, type[Task]] = {
    "gsm8k": GSM8KTask,
    "math": MathTask,
    "countdown": CountdownTask,
    "arithmetic": ArithmeticTask,
    "jsonl": JsonlTask,
    "hf": HubTask,
}


def get_task(data: DataConfig) -> Task:
    """The task `data.task` names, built from the data config (its options and template validated)."""
    if data.task not in TASKS:
        close = difflib.get_close_matches(data.task, TASKS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UserError(f"unknown task '{data.task}' in data.task.{hint} Valid tasks: {', '.join(TASKS)}.")
    return TASKS[data.task](data)


def build_rewards(
    cfg_rewards: list[RewardSpec], task: Task, *, columns: Collection[str] | None = None
) -> tuple[list[Callable[..., list[float | None]]], list[float]]:
    """The reward callables and weights of the config, or of the task's default set when the config lists none.

    Each is `rewards.get_reward(spec.name, path=spec.path, **spec.params)`, called as TRL calls it. With
    `columns` (the data set's column names), a reward that reads a column the rows lack is a UserError now, not
    in the middle of training.
    """
    from rewards import get_reward

    specs = cfg_rewards or task.default_rewards()
    funcs = [get_reward(spec.name, path=spec.path, **spec.params) for spec in specs]
    for func in funcs:
        func.first_call_strict = True  # broken from the first batch: stop before training (rewards/registry.py)
    if columns is not None:
        for func in funcs:
            missing = [column for column in getattr(func, "required_columns", ()) if column not in columns]
            if missing:
                raise UserError(
                    f"reward {func.__name__} reads the column(s) {', '.join(missing)}, which task {task.name} does "
                    f"not have (its columns: {', '.join(columns)}). Remove that reward from the config's rewards, "
                    "or use a task whose rows carry those columns."
                )
    return funcs, [spec.weight for spec in specs]


def probe_rewards(reward_funcs: list[Callable[..., list[float | None]]], task: Task, rows: Dataset) -> None:
    """Call every reward once before the run dir exists: its first call, so a reward broken from the start stops
    the run before anything is written or loaded.

    The batch: for each of the first PROBE_PROMPTS rows, its reference completion (the task's solved answer, or ''
    where it has none) and an empty completion, with the rows' columns. It is called as an evaluation calls it
    (train/evaluation/evaluate.py), without TRL's `trainer_state`, `log_metric` and `log_extra`, so a reward that tells
    training from evaluation by `trainer_state is None` takes it for an evaluation and records no training step;
    no tokenizer is loaded yet, so `completion_ids` is None, as score_rewards.py calls rewards. A reward that
    raises or exits, returns the wrong type or length, an inf or NaN (with first_call_strict, set by build_rewards),
    or overruns its time limit raises its one-paragraph error here.
    """
    sample = [rows[i] for i in range(min(PROBE_PROMPTS, len(rows)))]
    prompts, completions = [], []
    columns: dict[str, list] = {key: [] for key in rows.column_names if key != "prompt"}
    for row in sample:
        for text in (task.reference_completion(row) or "", ""):
            prompts.append(row["prompt"])
            # A conversational prompt (a list of messages) gets its completion as TRL gives it, one message.
            chat = isinstance(row["prompt"], list)
            completions.append([{"role": "assistant", "content": text}] if chat else text)
            for key in columns:
                columns[key].append(row[key])
    for func in reward_funcs:
        func(prompts=prompts, completions=completions, completion_ids=None, **columns)


PROBE_PROMPTS = 2


__all__ = [
    "TASKS",
    "Outcome",
    "PromptTemplate",
    "Row",
    "Split",
    "Task",
    "TaskOptions",
    "build_rewards",
    "get_task",
    "probe_rewards",
    "prompt_template",
]
