"""Model loading: the built-in tiny model (tokenizer, warm start, cache) and the hf backend's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from train.config import validate_config
from train.errors import UserError
from train.models import load_policy
from train.models.builtin import (
    build_tokenizer,
    builtin_cache_root,
    builtin_model_dir,
    builtin_recipe,
    recipe_key,
    warm_start_examples,
)
from train.tasks import get_task

TINY = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "sft_steps": 2, "sft_examples": 16}


def tiny_cfg(**model):
    return validate_config(
        {
            "model": {"name": "builtin:tiny", "max_seq_length": 64, "builtin": TINY, **model},
            "data": {
                "task": "countdown",
                "prompt_template": "{question}\n",
                "train_samples": 12,
                "test_samples": 4,
                "options": {"min_numbers": 2, "max_numbers": 2, "max_number": 9, "question_style": "compact"},
            },
            "train": {"max_completion_length": 16},
        }
    )


def test_char_tokenizer_round_trips_text_and_makes_each_tag_one_token():
    tokenizer = build_tokenizer()
    text = "3 5 -> 8\n<think>3+5=8</think><answer>3+5</answer>"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(ids) == len("3 5 -> 8\n") + 1 + len("3+5=8") + 1 + 1 + len("3+5") + 1


def test_built_model_reloads_with_a_tokenizer_that_keeps_spaces(tmp_path, monkeypatch):
    # Regression: AutoTokenizer picked Qwen2's tokenizer for the built model's directory and dropped spaces and
    # newlines, so GRPO and evaluation saw different prompts than the warm start had.
    monkeypatch.setenv("GRPO_LAB_CACHE", str(tmp_path))
    cfg = tiny_cfg()
    task = get_task(cfg.data)
    policy = load_policy(cfg, task, backend="hf")
    assert policy.tokenizer.decode(policy.tokenizer("3 5 -> 8\n")["input_ids"]) == "3 5 -> 8\n"
    assert policy.tokenizer.padding_side == "left"


def test_built_model_is_cached_by_its_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("GRPO_LAB_CACHE", str(tmp_path))
    cfg = tiny_cfg()
    task = get_task(cfg.data)
    first = builtin_model_dir(cfg, task)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert builtin_model_dir(cfg, task) == first  # found, not rebuilt
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    other = tiny_cfg(builtin={**TINY, "seed": 1})
    assert builtin_model_dir(other, get_task(other.data)) != first


def recipe_of(cfg):
    b = cfg.model.builtin
    return builtin_recipe(cfg, warm_start_examples(get_task(cfg.data), b.sft_examples, b.solved_fraction, b.seed))


def test_the_cache_key_ignores_settings_that_leave_the_warm_start_as_it_is():
    cfg = tiny_cfg()
    same = validate_config(
        {**cfg.model_dump(mode="json"), "eval": {"pass_k": [1]}, "train": {"max_completion_length": 16, "beta": 0.0}}
    )
    assert recipe_key(recipe_of(same)) == recipe_key(recipe_of(cfg))


def test_countdown_test_samples_change_the_warm_start_and_the_build_says_so(tmp_path, monkeypatch, capsys):
    # Generated Countdown's training rows exclude every test problem, so another test split is another warm start.
    monkeypatch.setenv("GRPO_LAB_CACHE", str(tmp_path))
    cfg = tiny_cfg()
    builtin_model_dir(cfg, get_task(cfg.data))
    fewer = tiny_cfg()
    fewer.data.test_samples = 2
    assert recipe_key(recipe_of(fewer)) != recipe_key(recipe_of(cfg))
    capsys.readouterr()
    builtin_model_dir(fewer, get_task(fewer.data))
    assert "data.test_samples 4 -> 2, which changes the warm start" in capsys.readouterr().err


def test_the_cache_is_under_xdg_cache_home_unless_grpo_lab_cache_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("GRPO_LAB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert builtin_cache_root() == tmp_path / "xdg" / "grpo-lab" / "builtin"
    monkeypatch.setenv("GRPO_LAB_CACHE", str(tmp_path / "mine"))
    assert builtin_cache_root() == tmp_path / "mine" / "builtin"
    monkeypatch.delenv("GRPO_LAB_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert builtin_cache_root() == Path.home() / ".cache" / "grpo-lab" / "builtin"


def test_warm_start_mixes_solved_and_borrowed_completions():
    cfg = tiny_cfg()
    task = get_task(cfg.data)
    examples = warm_start_examples(task, 400, solved_fraction=0.25, seed=0)
    rows = {row["prompt"]: row for row in task.load_split("train", None)}
    solved = sum(task.is_correct(e["completion"], rows[e["prompt"]]) for e in examples)
    # 25% are the row's own solution; a borrowed one solves it only when two rows share an answer by chance.
    assert 0.15 * len(examples) <= solved <= 0.45 * len(examples)
    assert all(e["completion"].startswith("<think>") and e["completion"].endswith("</answer>") for e in examples)


def test_builtin_model_with_a_chat_template_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GRPO_LAB_CACHE", str(tmp_path))
    cfg = tiny_cfg()
    cfg.data.prompt_template = "chat"
    with pytest.raises(UserError, match="no chat template"):
        builtin_model_dir(cfg, get_task(cfg.data))


def test_unreachable_hub_model_names_the_model_the_cache_and_the_quickstart(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    cfg = validate_config({"model": {"name": "no-such-org/no-such-model"}, "data": {"task": "countdown"}})
    with pytest.raises(UserError) as error:
        load_policy(cfg, None, backend="hf")
    message = str(error.value)
    assert "no-such-org/no-such-model" in message
    assert "Hugging Face cache" in message
    assert "experiment_configs/quickstart.yaml" in message


def test_fresh_lora_adapters_come_from_the_runs_seed_whatever_the_rng_did_before():
    import torch

    from train.models.builtin import random_tiny_model
    from train.models.hf import attach_lora

    def adapters(seed: int, noise: int):
        torch.manual_seed(noise)  # whatever ran before: torch's default generator starts at a random seed
        model = random_tiny_model(build_tokenizer(), hidden_size=16, num_layers=1, num_heads=2)
        torch.manual_seed(noise + 1)
        cfg = tiny_cfg(lora_rank=4, target_modules=["q_proj", "v_proj"])
        cfg.train.seed = seed
        peft_model = attach_lora(model, cfg)
        return {name: p.detach().clone() for name, p in peft_model.named_parameters() if "lora_A" in name}

    first, again, other_seed = adapters(7, noise=1), adapters(7, noise=2), adapters(8, noise=1)
    assert first and all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other_seed[name]) for name in first)
