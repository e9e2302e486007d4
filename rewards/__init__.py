"""Reward functions for GRPO, usable with no model: answer parsing, safe Countdown scoring and the registry."""

from rewards.answers import (
    answers_match,
    extract_answer,
    has_answer_block,
    math_answers_match,
    parse_gsm8k_gold,
)
from rewards.countdown import CountdownCheck, check_countdown

__all__ = [
    "CountdownCheck",
    "answers_match",
    "check_countdown",
    "extract_answer",
    "has_answer_block",
    "math_answers_match",
    "parse_gsm8k_gold",
]
