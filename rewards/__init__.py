"""Reward functions for GRPO, usable with no model: answer parsing, safe Countdown scoring and the registry.

from rewards import REWARDS, get_reward
reward = get_reward("correctness_reward", value=2.0)   # a TRL reward function, logged as its name
"""

from rewards.answers import (
    Verdict,
    answers_match,
    clear_caches,
    extract_answer,
    has_answer_block,
    math_answers_match,
    math_verdicts,
    parse_gsm8k_gold,
)
from rewards.core import RewardConfigError, RewardError
from rewards.countdown import CountdownCheck, check_countdown
from rewards.jsonl import JsonlError, read_jsonl
from rewards.registry import REWARDS, RewardFunction, get_reward

__all__ = [
    "REWARDS",
    "CountdownCheck",
    "JsonlError",
    "RewardConfigError",
    "RewardError",
    "RewardFunction",
    "Verdict",
    "answers_match",
    "check_countdown",
    "clear_caches",
    "extract_answer",
    "get_reward",
    "has_answer_block",
    "math_answers_match",
    "math_verdicts",
    "parse_gsm8k_gold",
    "read_jsonl",
]
