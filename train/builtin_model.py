"""The built-in tiny model: a character-level Qwen2 built and warm-started locally, with no network.

`model.name: builtin:tiny` gives a policy that runs the whole loop on a CPU: a tokenizer built with the
`tokenizers` library (one token per printable ASCII character, plus one token per answer-format tag so a tag is a
single decision), a small Qwen2 model, and a short supervised warm start (TRL's SFTTrainer) on the task's own
synthetic examples. GRPO sharpens what a policy can already sometimes do, so the warm start mixes completions that
solve their prompt with well-formatted ones that answer a different prompt (`builtin.solved_fraction`): the model
starts able to produce the format and sometimes the right answer, and GRPO has right and wrong samples to compare.

The result is cached on disk under a key made of the recipe (model shape, SFT settings, task, template, seed), so
the second run of an experiment loads it in a second. Building is deterministic for a seed on the same hardware.
"""

from __future__ import annotations

import string

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

# Tags of every answer format the tasks render; each is one token so the tiny model emits a tag in one step.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>", "<reasoning>", "</reasoning>"]
SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "unk_token": "<unk>"}
CHARACTERS = list(string.printable)  # digits, letters, punctuation, space, \t \n \r \x0b \x0c


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level fast tokenizer: one id per printable ASCII character and per answer tag."""
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS.values(), *CHARACTERS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    # Split into single characters; WordLevel then maps each character to its id.
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, padding_side="left", **SPECIAL_TOKENS)
    tokenizer.add_tokens(TAG_TOKENS)
    tokenizer.model_max_length = 4096
    return tokenizer


def random_tiny_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 96,
    num_layers: int = 3,
    num_heads: int = 4,
    max_positions: int = 1024,
    seed: int = 0,
) -> Qwen2ForCausalLM:
    """A freshly initialized tiny Qwen2 whose vocabulary is the tokenizer's (deterministic for a seed)."""
    import torch

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 3,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
