"""The smallest experiment that runs the whole loop on a CPU in seconds: for tests and benchmarks.

    cfg = validate_config(tiny_experiment(train={"num_epochs": 1}))   # sections are deep-merged over the base

The built-in model shrunk to one layer of width 32, warm-started for 20 steps; 2-number Countdown in the compact
style; 8 training prompts in groups of 4 (one optimizer step per 8 completions), 4 test prompts.
"""

from __future__ import annotations

import copy
from typing import Any

TINY_EXPERIMENT: dict[str, Any] = {
    "name": "tiny",
    "model": {
        "name": "builtin:tiny",
        "max_seq_length": 64,
        "builtin": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "sft_steps": 20, "sft_examples": 64},
    },
    "data": {
        "task": "countdown",
        "prompt_template": "{question}\n",
        "train_samples": 8,
        "test_samples": 4,
        "options": {"min_numbers": 2, "max_numbers": 2, "max_number": 9, "question_style": "compact"},
    },
    "rewards": ["hard_format_reward", {"name": "mark_reward", "weight": 0.5}, "countdown_reward"],
    "train": {
        "num_epochs": 2,
        "learning_rate": 1e-3,
        "beta": 0.04,
        "num_generations": 4,
        "per_device_train_batch_size": 8,
        "max_completion_length": 12,
        "temperature": 1.0,
    },
    "eval": {"pass_k": [1, 2], "batch_size": 4},
    "logging": {"wandb": "disabled"},
}


def tiny_experiment(**sections: Any) -> dict[str, Any]:
    """The tiny experiment as a raw config dict, with `sections` deep-merged over it (a None value removes a key)."""
    return _merge(copy.deepcopy(TINY_EXPERIMENT), sections)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base
