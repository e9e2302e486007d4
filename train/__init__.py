"""grpo-lab's training library: config, tasks, models, the GRPO trainer, evaluation and tracking.

The two formulas users call directly are importable from here (lazily, so `import train` stays light and
unsloth can still be imported before trl/transformers when it is used):

    from train import group_advantages, pass_at_k
"""

from __future__ import annotations

from typing import Any

__all__ = ["group_advantages", "pass_at_k"]


def __getattr__(name: str) -> Any:
    if name == "group_advantages":
        from train.grpo.advantages import group_advantages

        return group_advantages
    if name == "pass_at_k":
        from train.evaluation.passk import pass_at_k

        return pass_at_k
    raise AttributeError(f"module 'train' has no attribute {name!r}")
