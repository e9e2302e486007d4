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
    # The generated ids up to and including EOS (the `completion_ids` TRL gives rewards); () when a backend
    # does not report them, and the rewards then estimate lengths from the text.
    token_ids: tuple[int, ...] = ()


class Generator(Protocol):
    def generate(
        self, prompts: list[Prompt], *, n: int, temperature: float, max_new_tokens: int, seed: int
    ) -> list[list[Completion]]:
        """n completions for each prompt, in prompt order. temperature 0 means greedy (then n must be 1)."""
        ...


class HFGenerator:
    """Batched generation with transformers' `model.generate`: the hf backend of `Generator`.

    One `generate` call per batch of `batch_size` prompts draws all n completions of each prompt
    (`num_return_sequences=n`), with the KV cache on and prompts padded on the left, so a prompt's completion does
    not depend on the batch it is in. Sampling is pure temperature sampling (top_p 1, no top-k, no repetition
    penalty, whatever the model's generation_config says), seeded once per call. Works on a peft-wrapped model.
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token  # batches need a pad token; many base models ship none
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def generate(
        self, prompts: list[Prompt], *, n: int, temperature: float, max_new_tokens: int, seed: int
    ) -> list[list[Completion]]:
        import torch

        greedy = temperature == 0
        if greedy and n != 1:
            raise ValueError(f"greedy decoding (temperature 0) gives one completion per prompt, not n={n}")
        texts = [self._render(prompt) for prompt in prompts]
        was_training = self.model.training
        self.model.eval()
        try:
            if not greedy:
                torch.manual_seed(seed)
            completions: list[list[Completion]] = []
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start : start + self.batch_size]
                completions.extend(self._generate_batch(batch, n, temperature, max_new_tokens))
            return completions
        finally:
            self.model.train(was_training)

    def _render(self, prompt: Prompt) -> str:
        if isinstance(prompt, str):
            return prompt
        if not getattr(self.tokenizer, "chat_template", None):
            from train.errors import UserError

            raise UserError(
                "the prompts are chat messages but the tokenizer has no chat template. Use a text prompt template "
                "(data.prompt_template: r1_zero, or your own text with {question}), or a model with a chat template."
            )
        return self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)

    def _generate_batch(
        self, texts: list[str], n: int, temperature: float, max_new_tokens: int
    ) -> list[list[Completion]]:
        import torch

        tokenizer = self.tokenizer
        eos_ids = self._eos_ids()
        device = next(self.model.parameters()).device
        # Like TRL: prompts are tokenized as rendered (the chat template already holds any BOS), padded on the left.
        inputs = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        sampling = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        with torch.no_grad():
            output = self.model.generate(
                input_ids=inputs["input_ids"].to(device),
                attention_mask=inputs["attention_mask"].to(device),
                max_new_tokens=max_new_tokens,
                num_return_sequences=n,
                repetition_penalty=1.0,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=sorted(eos_ids),
                use_cache=True,
                **sampling,
            )
        generated = output[:, inputs["input_ids"].shape[1] :].tolist()
        completions = [self._completion(ids, eos_ids) for ids in generated]
        return [completions[i * n : (i + 1) * n] for i in range(len(texts))]

    def _eos_ids(self) -> set[int]:
        """End-of-sequence ids: the model's generation_config (chat models list several) and the tokenizer's."""
        ids: set[int] = set()
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if configured is not None:
            ids.update(configured if isinstance(configured, list) else [configured])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def _completion(self, ids: list[int], eos_ids: set[int]) -> Completion:
        end = next((i for i, token in enumerate(ids) if token in eos_ids), None)
        kept = ids if end is None else ids[: end + 1]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(text=text, num_tokens=len(kept), truncated=end is None, token_ids=tuple(kept))
