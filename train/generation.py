"""Generation for evaluation: one interface, one implementation per backend.

The evaluator asks a `Generator` for n completions of each prompt and never knows which backend answers: the hf
backend (batched `generate`, here) or vLLM through Unsloth's `fast_generate` (train/unsloth_backend.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

# A prompt as the task renders it: plain text, or a list of chat messages for the tokenizer's chat template.
Prompt = str | list[dict[str, Any]]


@dataclass(frozen=True)
class Completion:
    text: str
    num_tokens: int
    truncated: bool  # stopped by the token budget, not by end-of-sequence


class Generator(Protocol):
    def generate(
        self, prompts: list[Prompt], *, n: int, temperature: float, max_new_tokens: int, seed: int
    ) -> list[list[Completion]]:
        """n completions for each prompt, in prompt order. temperature 0 means greedy (then n must be 1)."""
        ...
