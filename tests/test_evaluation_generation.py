"""HFGenerator on the built-in tiny model, and an evaluation end to end with it."""

from __future__ import annotations

import json

import pytest

from train.config import DataConfig, EvalConfig
from train.errors import UserError
from train.evaluation.evaluate import evaluate
from train.models.builtin import build_tokenizer, random_tiny_model
from train.models.generation import HFGenerator
from train.tasks import build_rewards, get_task

PROMPTS = ["12+3=", "Using the numbers [3, 5], create 8.\n", "hi"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny model's matrices are too small to share: one thread is 5-10x faster on a busy 2-core CI box."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return random_tiny_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, seed=0)


def test_n_completions_per_prompt_within_the_budget(model, tokenizer):
    out = HFGenerator(model, tokenizer, batch_size=2).generate(PROMPTS, n=4, temperature=1.0, max_new_tokens=6, seed=0)
    assert [len(group) for group in out] == [4, 4, 4]
    for completion in (c for group in out for c in group):
        assert 1 <= completion.num_tokens <= 6
        assert completion.num_tokens == len(completion.token_ids)
        assert completion.truncated == (
            completion.num_tokens == 6 and tokenizer.eos_token_id not in completion.token_ids
        )


def test_greedy_is_deterministic_and_needs_n_1(model, tokenizer):
    generator = HFGenerator(model, tokenizer)
    first = generator.generate(PROMPTS, n=1, temperature=0, max_new_tokens=8, seed=0)
    assert generator.generate(PROMPTS, n=1, temperature=0, max_new_tokens=8, seed=99) == first
    with pytest.raises(ValueError, match="greedy"):
        generator.generate(PROMPTS, n=2, temperature=0, max_new_tokens=8, seed=0)


def test_sampling_is_reproducible_for_a_seed(model, tokenizer):
    generator = HFGenerator(model, tokenizer)
    first = generator.generate(PROMPTS, n=3, temperature=1.0, max_new_tokens=8, seed=5)
    assert generator.generate(PROMPTS, n=3, temperature=1.0, max_new_tokens=8, seed=5) == first
    assert generator.generate(PROMPTS, n=3, temperature=1.0, max_new_tokens=8, seed=6) != first


def test_left_padding_a_prompt_alone_and_in_a_batch_gives_the_same_greedy_output(model, tokenizer):
    generator = HFGenerator(model, tokenizer, batch_size=8)
    batched = generator.generate(PROMPTS, n=1, temperature=0, max_new_tokens=8, seed=0)
    alone = [generator.generate([prompt], n=1, temperature=0, max_new_tokens=8, seed=0)[0] for prompt in PROMPTS]
    assert batched == alone


def test_generation_stops_at_end_of_sequence(model, tokenizer):
    generator = HFGenerator(model, tokenizer)
    first_char = generator.generate(["hi"], n=1, temperature=0, max_new_tokens=8, seed=0)[0][0].text[0]
    eos = tokenizer.convert_tokens_to_ids(first_char)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, eos]  # a chat model's list of stop ids
    try:
        [[completion]] = generator.generate(["hi"], n=1, temperature=0, max_new_tokens=8, seed=0)
    finally:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    assert (completion.num_tokens, completion.truncated, completion.token_ids) == (1, False, (eos,))


def test_model_mode_is_restored_and_cache_used_under_gradient_checkpointing(tokenizer):
    model = random_tiny_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, seed=1)
    model.gradient_checkpointing_enable()
    model.train()
    HFGenerator(model, tokenizer).generate(PROMPTS, n=2, temperature=1.0, max_new_tokens=4, seed=0)
    assert model.training
    model.eval()
    HFGenerator(model, tokenizer).generate(PROMPTS, n=1, temperature=0, max_new_tokens=4, seed=0)
    assert not model.training


def test_chat_prompts_are_rendered_with_the_chat_template(model):
    tokenizer = build_tokenizer()
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "12+3="}]
    with pytest.raises(UserError, match="no chat template"):
        HFGenerator(model, tokenizer).generate([messages], n=1, temperature=0, max_new_tokens=4, seed=0)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}"
    )
    generator = HFGenerator(model, tokenizer)
    chat = generator.generate([messages], n=1, temperature=0, max_new_tokens=6, seed=0)
    assert chat == generator.generate(["S\n12+3=\nA:"], n=1, temperature=0, max_new_tokens=6, seed=0)


def test_a_peft_wrapped_model_generates_like_its_base_at_initialization(model, tokenizer):
    from peft import LoraConfig, get_peft_model

    base = HFGenerator(model, tokenizer).generate(PROMPTS, n=1, temperature=0, max_new_tokens=6, seed=0)
    wrapped = get_peft_model(
        random_tiny_model(tokenizer, hidden_size=32, num_layers=2, num_heads=2, seed=0),
        LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    assert HFGenerator(wrapped, tokenizer).generate(PROMPTS, n=1, temperature=0, max_new_tokens=6, seed=0) == base


def test_evaluation_end_to_end_writes_samples_that_agree_with_the_metrics(model, tokenizer, tmp_path):
    options = {"min_numbers": 2, "max_numbers": 2, "max_number": 9, "operations": ["+", "-"]}
    task = get_task(DataConfig(task="countdown", test_samples=6, prompt_template="{question}\n", options=options))
    rows = task.load_split("test", 6)
    funcs, weights = build_rewards([], task, columns=rows.column_names)
    cfg = EvalConfig(pass_k=[1, 2, 4], batch_size=6)
    path = tmp_path / "eval" / "samples.jsonl"
    generator = HFGenerator(model, tokenizer, batch_size=6)
    metrics = evaluate(generator, task, rows, funcs, weights, cfg, max_new_tokens=6, samples_path=path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    greedy = [r for r in records if r["kind"] == "greedy"]
    assert len(records) == metrics["samples_generated"] == 6 * (1 + 4)
    assert [r["index"] for r in greedy] == list(range(6))
    assert [r["target"] for r in greedy] == rows["target"]
    assert metrics["pass@1"] == sum(r["correct"] for r in greedy) / 6
    assert metrics["mean_output_tokens"] == pytest.approx(sum(r["num_tokens"] for r in greedy) / 6)
    for name in ("hard_format_reward", "mark_reward", "countdown_reward"):
        assert metrics[f"reward/{name}"] == pytest.approx(sum(r["rewards"][name] for r in greedy) / 6)
    assert metrics["failed"] + metrics["partial"] + metrics["correct"] == 6


def test_a_tokenizer_without_pad_token_pads_with_end_of_sequence_and_is_left_unchanged(model):
    """Evaluation shares the tokenizer with training: it must not change it (it used to set pad_token)."""
    tokenizer = build_tokenizer()
    tokenizer.pad_token = None
    out = HFGenerator(model, tokenizer).generate(PROMPTS, n=1, temperature=0, max_new_tokens=4, seed=0)
    assert tokenizer.pad_token is None
    assert len(out) == len(PROMPTS)
    reference = build_tokenizer()
    assert out == HFGenerator(model, reference).generate(PROMPTS, n=1, temperature=0, max_new_tokens=4, seed=0)


def bos_tokenizer():
    """The built-in tokenizer, made to add a BOS token as Llama-style tokenizers do."""
    from tokenizers import processors

    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"bos_token": "<bos>"})
    bos = tokenizer.convert_tokens_to_ids("<bos>")
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", bos)]
    )
    assert tokenizer("3 5 -> 8")["input_ids"][0] == bos
    return tokenizer


def test_prompts_are_the_token_ids_trls_rollouts_use_bos_included():
    """Evaluation scores the exact token sequence training saw: TRL tokenizes text prompts with the tokenizer's
    defaults (adding BOS where it does); it used to be tokenized without special tokens here."""
    from types import SimpleNamespace

    from trl import GRPOTrainer

    from train.models.generation import prompt_token_ids

    tokenizer = bos_tokenizer()
    trl_side = SimpleNamespace(processing_class=tokenizer, _is_vlm=False, environment_factories=None)
    prompts = ["3 5 -> 8\n", "12+3="]
    trl_ids, _, _ = GRPOTrainer._tokenize_prompts(trl_side, prompts)
    assert [prompt_token_ids(tokenizer, p) for p in prompts] == [list(ids) for ids in trl_ids]
    assert trl_ids[0][0] == tokenizer.bos_token_id


def test_the_hf_generator_feeds_the_model_the_bos_training_sees():
    tokenizer = bos_tokenizer()
    model = random_tiny_model(tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=0)
    seen = []
    original = model.generate

    def record(**kwargs):
        seen.append(kwargs["input_ids"][0].tolist())
        return original(**kwargs)

    model.generate = record
    HFGenerator(model, tokenizer).generate(["3 5 -> 8\n"], n=1, temperature=0, max_new_tokens=2, seed=0)
    assert seen[0][0] == tokenizer.bos_token_id


def test_an_evaluation_leaves_the_training_random_state_as_it_found_it(model, tokenizer):
    """Sampling in an evaluation reseeds torch; the rollouts after it must draw what they would have drawn."""
    import torch

    task = get_task(DataConfig(task="countdown", test_samples=3, prompt_template="{question}\n"))
    rows = task.load_split("test", 3)
    funcs, weights = build_rewards([], task, columns=rows.column_names)

    torch.manual_seed(7)
    without_evaluation = torch.rand(4)
    torch.manual_seed(7)
    evaluate(HFGenerator(model, tokenizer), task, rows, funcs, weights, EvalConfig(pass_k=[1, 2]), max_new_tokens=4)
    assert torch.equal(torch.rand(4), without_evaluation)


def test_generation_stops_after_a_stop_string_and_keeps_it(model, tokenizer):
    """Rollouts for answer-tag prompts used to run on past </answer> into imagined next turns."""
    free = HFGenerator(model, tokenizer).generate(PROMPTS, n=1, temperature=0, max_new_tokens=12, seed=0)
    # The random model repeats a character, then switches: stop at the switch ("...iXX" for "hi"), which cannot
    # match earlier, even across the prompt's end (transformers looks there too).
    text = free[2][0].text
    switch = next(i for i, char in enumerate(text) if char != text[0])
    stop, expected = text[switch - 1 : switch + 2], text[: switch + 2]
    stopped = HFGenerator(model, tokenizer, stop_strings=[stop]).generate(
        PROMPTS[2:], n=1, temperature=0, max_new_tokens=12, seed=0
    )[0][0]
    assert stopped.text == expected
    assert stopped.num_tokens == len(stopped.token_ids) == len(expected)  # one token a character; no padding
    assert not stopped.truncated  # stopped by the stop string, not by the budget
