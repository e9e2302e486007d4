"""Group-relative advantages, the one formula GRPO is named for, with the ablations users compare."""

from __future__ import annotations

from typing import Literal

import torch

from rewards.scoring import ADVANTAGE_EPS

Baseline = Literal["mean", "none"]
Scale = Literal["group", "batch", "none"]


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    baseline: Baseline = "mean",
    scale: Scale = "group",
    eps: float = ADVANTAGE_EPS,
) -> torch.Tensor:
    """Advantages of a batch of rewards ordered group by group (the G completions of one prompt are adjacent).

        A_i = (r_i - b) / (s + eps)

    - b, the baseline: the mean reward of the completion's group (`mean`, GRPO: Shao et al. 2024, DeepSeekMath,
      eq. 3), or 0 (`none`: the advantage is the raw reward, the seed MATH study's no_baseline arm).
    - s, the scale: the unbiased (Bessel-corrected, n - 1) standard deviation of the group's rewards (`group`,
      GRPO), of every reward in the batch (`batch`, as TRL's scale_rewards="batch"), or no division (`none`,
      Dr. GRPO: Liu et al. 2025, "Understanding R1-Zero-Like Training", which drops it to remove the
      question-difficulty bias; then eps is not added either).

    eps = 1e-4 is TRL's constant (rewards.scoring.ADVANTAGE_EPS), so with baseline="mean" this equals what TRL's
    GRPOTrainer computes. s is `rewards.scoring.group_std` (the statistic score_rewards' per-prompt spread reports),
    computed here on float32 tensors as TRL does; tests/test_scoring.py checks the two agree.
    A group whose rewards are all equal gets advantage 0 under a mean baseline, whatever the scale.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be a 1-D tensor, got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    rewards = rewards.float()
    grouped = rewards.view(-1, group_size)

    if baseline == "mean":
        centered = (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)
    elif baseline == "none":
        centered = rewards
    else:
        raise ValueError(f"baseline must be 'mean' or 'none', got {baseline!r}")

    if scale == "none":
        return centered
    if scale == "group":
        std = _unbiased_std(grouped, dim=1).repeat_interleave(group_size)
    elif scale == "batch":
        std = _unbiased_std(rewards, dim=0).expand_as(rewards)
    else:
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    return centered / (std + eps)


def _unbiased_std(values: torch.Tensor, dim: int) -> torch.Tensor:
    # rewards.scoring.group_std on tensors: two because rewards/ may not import torch, and the trainer's per-step
    # float32 tensors must not round-trip through Python lists. A single value has no spread: its std is 0 (torch.std
    # would give NaN for n - 1 = 0).
    if values.shape[dim] < 2:
        return torch.zeros_like(values.select(dim, 0))
    return values.std(dim=dim, unbiased=True)
