"""The unsloth backend without a GPU: its argument mappings by hand, and every argument against the real packages.

Three layers, each running where it can:
- pure mappings and backend choice: everywhere (no unsloth, vLLM or GPU needed);
- vLLM's real SamplingParams, RequestOutput and CompletionOutput, built directly: where vllm is installed
  (`uv sync --extra gpu`); vLLM imports on a CPU, its engine does not run;
- unsloth's real signatures and its patched GRPOConfig: in a subprocess (importing unsloth patches transformers and
  trl for the whole process, and blocks vllm imports on a machine without libcuda), with UNSLOTH_ALLOW_CPU=1, the
  switch unsloth provides for CPU-only tests. About 45 s, once per session.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from train.config import ModelConfig, TrainConfig, load_config
from train.errors import EXIT_USER_ERROR, UserError, exit_on_user_error
from train.grpo.arguments import resolve
from train.grpo.workarounds import unsloth_grpo_config
from train.models import Policy
from train.models import generation as gen
from train.models import unsloth as ub
from train.models.generation import GeneratedCompletion

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiment_configs" / "eval_test_improved.yaml"
HAS_UNSLOTH = importlib.util.find_spec("unsloth") is not None
HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_unsloth = pytest.mark.skipif(not HAS_UNSLOTH, reason="unsloth is in the gpu extra: uv sync --extra gpu")
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vllm is in the gpu extra: uv sync --extra gpu")


# --------------------------------------------------------------------------------------------------------------
# Pure mappings


def test_from_pretrained_kwargs_follow_the_notebook_recipe():
    model = ModelConfig(name="unsloth/Qwen3-1.7B", max_seq_length=1024, lora_rank=32, gpu_memory_utilization=0.7)
    assert ub.from_pretrained_kwargs(model) == {
        "model_name": "unsloth/Qwen3-1.7B",
        "max_seq_length": 1024,
        "load_in_4bit": True,
        "fast_inference": True,
        "max_lora_rank": 32,
        "gpu_memory_utilization": 0.7,
    }


def test_peft_kwargs_use_unsloth_checkpointing_and_the_run_seed():
    model = ModelConfig(name="unsloth/Qwen3-1.7B", lora_rank=16, lora_alpha=32, target_modules=["q_proj", "v_proj"])
    assert ub.peft_kwargs(model, TrainConfig(seed=7)) == {
        "r": 16,
        "target_modules": ["q_proj", "v_proj"],
        "lora_alpha": 32,
        "lora_dropout": 0.0,
        "use_gradient_checkpointing": "unsloth",
        "random_state": 7,
    }


def test_unset_lora_rank_means_rank_16():
    model = ModelConfig(name="unsloth/Qwen3-1.7B", lora_rank=None)
    assert ub.peft_kwargs(model, TrainConfig())["r"] == 16
    assert ub.from_pretrained_kwargs(model)["max_lora_rank"] == 16


def test_full_fine_tune_is_refused_on_unsloth_with_the_fix():
    model = ModelConfig(name="unsloth/Qwen3-1.7B", lora_rank=0)
    with pytest.raises(UserError, match="model.lora_rank is 0") as error:
        ub.from_pretrained_kwargs(model)
    assert "model.backend: hf" in str(error.value)
    with pytest.raises(UserError):
        ub.peft_kwargs(model, TrainConfig())


def unsloth_args(bf16_supported: bool = True, **train: Any) -> dict[str, Any]:
    """The resolved GRPOConfig arguments of the seed config on unsloth, with `train` keys changed."""
    cfg = load_config(EXPERIMENT)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=train)})
    return resolve(cfg, "unsloth", on_gpu=True, bf16_supported=bf16_supported).grpo


def test_grpo_overrides_are_unsloths_choices_and_quirks_only():
    resolved = {"loss_type": "grpo", "scale_rewards": "group", "beta": 0.05, "optim": "adamw_torch"}
    assert unsloth_grpo_config(resolved, bf16_supported=True) == {
        "bf16": True,
        "fp16": False,
        "gradient_checkpointing": True,
        "mask_truncated_completions": False,
        "scale_rewards": "group",
    }


def test_unsloth_without_bf16_trains_in_fp16_and_keeps_an_explicit_optimizer():
    args = unsloth_args(
        bf16_supported=False, optim="paged_adamw_8bit", beta=0.0, clip_eps=0.2, clip_eps_high=0.28, loss_type="dapo"
    )
    assert (args["bf16"], args["fp16"]) == (False, True)
    assert args["optim"] == "paged_adamw_8bit"
    assert (args["beta"], args["epsilon_high"], args["mask_truncated_completions"]) == (0.0, 0.28, False)


@pytest.mark.parametrize(("scale", "passed"), [("group", None), ("batch", "batch"), ("none", "none")])
@pytest.mark.parametrize("loss_type", ["dr_grpo", "hybrid"])
def test_dr_grpo_keeps_our_reward_scaling_through_unsloths_opt_out(scale, passed, loss_type):
    assert unsloth_args(loss_type=loss_type, scale_rewards=scale)["scale_rewards"] == passed


def test_sampling_kwargs_are_pure_temperature_sampling():
    assert gen.sampling_kwargs(n=4, temperature=0.8, max_new_tokens=512, seed=3) == {
        "n": 4,
        "temperature": 0.8,
        "max_tokens": 512,
        "seed": 3,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
    }


def test_a_stop_string_stops_vllm_and_stays_in_the_completion():
    kwargs = gen.sampling_kwargs(n=2, temperature=0.8, max_new_tokens=64, seed=1, stop=["</answer>"])
    assert (kwargs["stop"], kwargs["include_stop_str_in_output"]) == (["</answer>"], True)
    assert "stop" not in gen.sampling_kwargs(n=2, temperature=0.8, max_new_tokens=64, seed=1)


def test_greedy_gives_one_completion_per_prompt():
    with pytest.raises(ValueError, match="greedy"):
        gen.sampling_kwargs(n=2, temperature=0.0, max_new_tokens=8, seed=0)


def test_the_experiment_config_maps_to_a_16bit_lora_run_on_24gb_and_4bit_when_forced():
    from train.lab.memory_check import resolve_precision

    cfg, _ = resolve_precision(load_config(EXPERIMENT), 24.0, "unsloth")  # model.load_in_4bit: auto
    assert ub.from_pretrained_kwargs(cfg.model)["load_in_4bit"] is False
    forced = load_config(EXPERIMENT, ["model.load_in_4bit=true"])
    assert ub.from_pretrained_kwargs(forced.model)["load_in_4bit"] is True
    assert ub.peft_kwargs(cfg.model, cfg.train)["r"] == 16
    assert resolve(cfg, "unsloth", on_gpu=True, bf16_supported=True).grpo["beta"] == 0.05


def test_grpo_overrides_are_grpo_config_fields(tmp_path):
    """The keys exist in trl's own GRPOConfig too (the unsloth-patched one is checked in the subprocess below)."""
    from trl import GRPOConfig

    resolved = {"loss_type": "grpo", "scale_rewards": "group"}
    overrides = unsloth_grpo_config(resolved, bf16_supported=True) | {"bf16": False, "fp16": False}
    config = GRPOConfig(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", beta=0.04, loss_type="grpo", **overrides
    )
    assert (config.beta, config.loss_type, config.mask_truncated_completions) == (0.04, "grpo", False)


# --------------------------------------------------------------------------------------------------------------
# Choosing the backend


@pytest.fixture
def no_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def model(name: str, backend: str) -> ModelConfig:
    return ModelConfig(name=name, backend=backend)


def test_auto_with_a_hub_model_and_no_gpu_stops_instead_of_training_on_the_cpu(no_cuda, capsys):
    """A GPU recipe never quietly becomes a days-long float32 CPU run: it stops, naming the cause and the fix."""
    before = "unsloth" in sys.modules

    @exit_on_user_error
    def main() -> None:
        ub.prepare_backend(model("unsloth/Qwen3-1.7B", "auto"))

    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == EXIT_USER_ERROR
    message = " ".join(capsys.readouterr().err.split())
    assert "no CUDA GPU is visible" in message
    assert "model.backend: hf" in message
    assert ("unsloth" in sys.modules) == before


def test_a_driver_too_old_is_named_with_the_version_torch_found(monkeypatch):
    import warnings

    import torch

    def old_driver() -> bool:
        warnings.warn(
            "CUDA initialization: The NVIDIA driver on your system is too old (found version 12040).", stacklevel=2
        )
        return False

    monkeypatch.setattr(torch.cuda, "is_available", old_driver)
    with pytest.raises(UserError, match=r"driver on your system is too old \(found version 12040\)"):
        ub.prepare_backend(model("Qwen/Qwen3-0.6B", "auto"))


def test_hf_and_the_builtin_model_on_auto_never_touch_unsloth(no_cuda):
    before = "unsloth" in sys.modules
    assert ub.prepare_backend(model("unsloth/Qwen3-1.7B", "hf")) == "hf"
    assert ub.prepare_backend(model("builtin:tiny", "auto")) == "hf"
    assert ("unsloth" in sys.modules) == before


def test_explicit_unsloth_not_installed_names_the_gpu_extra(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "unsloth" else real_find_spec(name, *a)
    )
    with pytest.raises(UserError, match="uv sync --extra gpu"):
        ub.prepare_backend(model("unsloth/Qwen3-1.7B", "unsloth"))
    with pytest.raises(UserError, match="uv sync --extra gpu"):
        ub.prepare_backend(model("builtin:tiny", "unsloth"))
    assert ub.prepare_backend(model("unsloth/Qwen3-1.7B", "auto")) == "hf"


def test_unknown_backend_is_a_config_error():
    from train.config import validate_config

    with pytest.raises(UserError, match="model.backend = 'vllm' is not allowed"):
        validate_config({"model": {"backend": "vllm"}})


def test_the_builtin_model_on_unsloth_trains_lora_by_default():
    assert ModelConfig(name="builtin:tiny", backend="unsloth").effective_lora_rank == 16
    assert ModelConfig(name="builtin:tiny", backend="hf").effective_lora_rank == 0


def test_import_unsloth_refuses_to_come_after_trl_and_keeps_a_users_standby_setting(monkeypatch):
    monkeypatch.delitem(sys.modules, "unsloth", raising=False)
    monkeypatch.setitem(sys.modules, "trl", types.ModuleType("trl"))
    monkeypatch.setenv("UNSLOTH_VLLM_STANDBY", "0")
    with pytest.raises(RuntimeError, match="unsloth must be imported before trl"):
        ub.import_unsloth()
    assert os.environ["UNSLOTH_VLLM_STANDBY"] == "0"
    monkeypatch.delenv("UNSLOTH_VLLM_STANDBY")
    with pytest.raises(RuntimeError, match="prepare_backend"):
        ub.import_unsloth()
    assert os.environ["UNSLOTH_VLLM_STANDBY"] == "1"


# --------------------------------------------------------------------------------------------------------------
# Generation with vLLM's real types (the engine itself needs a GPU)


def char_tokenizer():
    """A real character-level fast tokenizer with a chat template, built offline."""
    import string

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<pad>", "<eos>", "<unk>", *string.printable])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    return tokenizer


def request_output(request_id, samples):
    """A vLLM RequestOutput for (text, token_ids, finish_reason) samples, built from vLLM's own classes."""
    from vllm.outputs import CompletionOutput, RequestOutput

    outputs = [
        CompletionOutput(
            index=i, text=text, token_ids=ids, cumulative_logprob=None, logprobs=None, finish_reason=reason
        )
        for i, (text, ids, reason) in enumerate(samples)
    ]
    return RequestOutput(
        request_id=str(request_id),
        prompt=None,
        prompt_token_ids=[1],
        prompt_logprobs=None,
        outputs=outputs,
        finished=True,
    )


class FakeUnslothModel:
    """Stands in for unsloth's model object only: save_lora, load_lora, fast_generate (= vLLM's LLM.generate).

    fast_generate binds its arguments to the real `vllm.LLM.generate` signature and answers with real vLLM outputs.
    """

    def __init__(self, tokenizer):
        self.vllm_engine = object()
        self.tokenizer = tokenizer
        self.saved: list[str] = []
        self.rendered: list[str] = []
        self.sampling = None

    def save_lora(self, directory):
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.saved.append(directory)

    def load_lora(self, directory):
        from vllm.lora.request import LoRARequest

        return LoRARequest(str(len(self.saved)), len(self.saved), directory)

    def fast_generate(self, prompts, **kwargs):
        from vllm import LLM

        inspect.signature(LLM.generate).bind(object(), prompts, **kwargs)
        assert kwargs["lora_request"].lora_path == self.saved[-1]
        self.sampling = kwargs["sampling_params"]
        outputs = []
        for i, prompt in enumerate(prompts):
            self.rendered.append(self.tokenizer.decode(prompt["prompt_token_ids"]))
            samples = [(f"p{i}s{j}", [5, 6, 1][: j + 2], "length" if j % 2 else "stop") for j in range(self.sampling.n)]
            output = request_output(i, samples)
            output.outputs.reverse()  # out of index order: the mapping sorts by index
            outputs.append(output)
        return outputs


@needs_vllm
def test_sampling_params_accept_what_we_pass():
    from vllm import SamplingParams

    params = SamplingParams(**gen.sampling_kwargs(n=5, temperature=0.8, max_new_tokens=512, seed=11))
    assert (params.n, params.temperature, params.max_tokens, params.seed, params.top_p) == (5, 0.8, 512, 11, 1.0)
    greedy = SamplingParams(**gen.sampling_kwargs(n=1, temperature=0.0, max_new_tokens=16, seed=0))
    assert greedy.temperature == 0.0
    stopping = SamplingParams(**gen.sampling_kwargs(n=1, temperature=0.0, max_new_tokens=16, seed=0, stop=["</a>"]))
    assert (stopping.stop, stopping.include_stop_str_in_output) == (["</a>"], True)


@needs_vllm
def test_completions_from_real_vllm_outputs():
    outputs = [
        request_output(0, [("<answer>18</answer>", [7, 8, 1], "stop"), ("<think>", [7, 9], "length")]),
        request_output(1, [("", [1], "stop"), ("x" * 3, [4, 4, 4], "length")]),
    ]
    assert gen.completions_from_outputs(outputs, n=2) == [
        [
            GeneratedCompletion("<answer>18</answer>", num_tokens=3, truncated=False, token_ids=(7, 8, 1)),
            GeneratedCompletion("<think>", num_tokens=2, truncated=True, token_ids=(7, 9)),
        ],
        [
            GeneratedCompletion("", num_tokens=1, truncated=False, token_ids=(1,)),
            GeneratedCompletion("xxx", num_tokens=3, truncated=True, token_ids=(4, 4, 4)),
        ],
    ]


@needs_vllm
def test_an_aborted_or_short_request_raises_instead_of_being_graded():
    with pytest.raises(RuntimeError, match="abort"):
        gen.completions_from_outputs([request_output(0, [("", [], "abort")])], n=1)
    with pytest.raises(RuntimeError, match="1 completions"):
        gen.completions_from_outputs([request_output(0, [("a", [1], "stop")])], n=2)


@needs_vllm
def test_vllm_generator_serves_the_live_lora_and_keeps_prompt_order(tmp_path):
    tokenizer = char_tokenizer()
    model = FakeUnslothModel(tokenizer)
    generator = gen.VLLMGenerator(model, tokenizer, lora_dir=tmp_path / "eval_lora")
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}]
    generator.snapshot_policy()
    completions = generator.generate(["Q: 1+1?\nA:", chat], n=3, temperature=0.8, max_new_tokens=64, seed=5)
    assert (model.sampling.n, model.sampling.seed, model.sampling.max_tokens) == (3, 5, 64)
    generator.generate(["Q: 2+2?\nA:"], n=1, temperature=0.0, max_new_tokens=8, seed=5)

    # One adapter save per evaluation (snapshot), however many generate calls it makes.
    assert model.saved == [str(tmp_path / "eval_lora")]
    assert model.rendered[:2] == ["Q: 1+1?\nA:", "system: be brief\nuser: 2+2?\nassistant:"]
    assert [[c.text for c in row] for row in completions] == [["p0s0", "p0s1", "p0s2"], ["p1s0", "p1s1", "p1s2"]]
    assert [c.truncated for c in completions[0]] == [False, True, False]
    assert completions[0][2].token_ids == (5, 6, 1)


def test_vllm_generator_needs_a_vllm_engine_and_greedy_means_n_1(tmp_path):
    with pytest.raises(ValueError, match="no vLLM engine"):
        gen.VLLMGenerator(types.SimpleNamespace(), tokenizer=None, lora_dir=tmp_path)
    generator = gen.VLLMGenerator(types.SimpleNamespace(vllm_engine=object()), tokenizer=None, lora_dir=tmp_path)
    with pytest.raises(ValueError, match="greedy"):
        generator.generate(["q"], n=4, temperature=0.0, max_new_tokens=8, seed=0)
    assert generator.generate([], n=1, temperature=0.0, max_new_tokens=8, seed=0) == []


def test_vllm_is_read_from_the_loaded_model_not_from_the_config(tmp_path):
    """unsloth turns fast_inference off by itself on some GPUs and models: the generator follows the model."""
    tokenizer = char_tokenizer()
    without_engine = Policy(model=types.SimpleNamespace(), tokenizer=tokenizer, backend="unsloth", source="x")
    assert not without_engine.has_vllm
    assert isinstance(without_engine.generator(4, scratch_dir=tmp_path), gen.HFGenerator)
    with_engine = Policy(
        model=types.SimpleNamespace(vllm_engine=object()), tokenizer=tokenizer, backend="unsloth", source="x"
    )
    assert isinstance(with_engine.generator(4, scratch_dir=tmp_path), gen.VLLMGenerator)


@needs_vllm
def test_the_gpu_extra_has_the_bitsandbytes_plugin_vllm_needs_for_4bit():
    assert importlib.util.find_spec("vllm_bnb_plugin") is not None


# --------------------------------------------------------------------------------------------------------------
# unsloth's real signatures and patched GRPOConfig, in a fresh process

PROBE = r"""
import contextlib, inspect, io, json, os, sys, tempfile, time

start = time.perf_counter()
from train.models import unsloth as ub

ub.import_unsloth()
result = {"import_seconds": time.perf_counter() - start, "standby": os.environ.get("UNSLOTH_VLLM_STANDBY")}
from unsloth import FastLanguageModel, is_bfloat16_supported
from unsloth.models.loader_utils import get_model_name
from unsloth.models._utils import save_lora_adapter
from unsloth.save import unsloth_generic_save_pretrained_merged
from unsloth_zoo import vllm_utils
from train.config import load_config

cfg = load_config(sys.argv[1], ["model.load_in_4bit=true"])  # the 4-bit path: its pre-quantized repo and plugin


def only_through_var_kwargs(function, *args, **kwargs):
    # bind raises TypeError for a name the function does not take; the rest must be named parameters
    signature = inspect.signature(function)
    signature.bind(*args, **kwargs)
    named = {n for n, p in signature.parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return sorted(set(kwargs) - named)


result["from_pretrained"] = only_through_var_kwargs(
    FastLanguageModel.from_pretrained, **ub.from_pretrained_kwargs(cfg.model)
)
result["get_peft_model"] = only_through_var_kwargs(
    FastLanguageModel.get_peft_model, None, **ub.peft_kwargs(cfg.model, cfg.train)
)
result["save_lora"] = only_through_var_kwargs(vllm_utils.save_lora, None, "dir")
result["save_lora_adapter"] = only_through_var_kwargs(save_lora_adapter, None, "dir")
result["load_lora"] = only_through_var_kwargs(vllm_utils.load_lora, None, "dir")
result["save_pretrained_merged"] = only_through_var_kwargs(
    unsloth_generic_save_pretrained_merged, None, "dir", None, save_method="merged_16bit"
)
result["resolved_model"] = get_model_name(cfg.model.name, load_in_4bit=True)
result["bf16_supported"] = is_bfloat16_supported()

# UNSLOTH_ALLOW_CPU skips unsloth's rewrite of trl's trainers (unsloth/models/rl.py:5091); do the GRPO one by hand.
from unsloth.models.rl import _patch_trl_rl_trainers

start = time.perf_counter()
_patch_trl_rl_trainers("grpo_trainer")
result["patch_seconds"] = time.perf_counter() - start
import trl

Config = trl.GRPOConfig
params = inspect.signature(Config.__init__).parameters
result["patched"] = "vllm_sampling_params" in params and "unsloth_num_chunks" in params
pristine = inspect.signature(Config.__mro__[1].__init__).parameters
result["changed_defaults"] = sorted(
    name for name, p in params.items() if name in pristine and repr(p.default) != repr(pristine[name].default)
)
from train.grpo.arguments import resolve  # its grpo_config(), called after the patch, builds unsloth's GRPOConfig
from train.grpo.workarounds import unsloth_grpo_config

hf_args = resolve(cfg, "hf", on_gpu=False).grpo
result["unknown_override_keys"] = sorted(set(unsloth_grpo_config(hf_args, bf16_supported=True)) - set(params))

with tempfile.TemporaryDirectory() as output_dir, contextlib.redirect_stdout(io.StringIO()):
    ours = resolve(cfg, "hf", output_dir=output_dir, reward_weights=[1.0] * len(cfg.rewards)).grpo_config()
result["ours_patched"] = "unsloth_num_chunks" in inspect.signature(type(ours).__init__).parameters
result["ours_importance_sampling"] = ours.vllm_importance_sampling_correction
result["configs"] = []
with tempfile.TemporaryDirectory() as output_dir:
    for loss_type, scale, beta in [
        ("grpo", "group", 0.05), ("grpo", "group", 0.0), ("bnpo", "none", 0.04), ("dapo", "group", 0.0),
        ("dapo", "group", 0.1), ("dr_grpo", "group", 0.0), ("dr_grpo", "batch", 0.0),
    ]:
        train = cfg.train.model_copy(update={"loss_type": loss_type, "scale_rewards": scale, "beta": beta})
        # no mixed precision without a GPU; the bf16/fp16 names are checked against the signature above
        resolved = resolve(cfg.model_copy(update={"train": train}), "unsloth", on_gpu=False, bf16_supported=False).grpo
        keys = ("beta", "loss_type", "epsilon_high", "mask_truncated_completions", "scale_rewards", "optim")
        overrides = {key: resolved[key] for key in keys} | {"bf16": False, "fp16": False}
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            config = Config(
                output_dir=output_dir, use_cpu=True, report_to="none", temperature=train.temperature,
                epsilon=train.clip_eps, num_generations=train.num_generations,
                per_device_train_batch_size=train.per_device_train_batch_size, **overrides,
            )
        result["configs"].append({
            "asked": [loss_type, scale, beta],
            "got": [config.loss_type, config.scale_rewards, config.beta],
            "epsilon_high": config.epsilon_high,
            "mask_truncated_completions": config.mask_truncated_completions,
            "optim": getattr(config.optim, "value", config.optim),
            "gradient_checkpointing": config.gradient_checkpointing,
            "printed": printed.getvalue(),
        })
    # Controls: what unsloth does with the same settings when the pins are left out (so the pins are needed).
    controls = {
        "beta_unset": dict(loss_type="grpo"),
        "dr_grpo_group": dict(loss_type="dr_grpo", scale_rewards="group", beta=0.0),
        "dapo_unpinned": dict(loss_type="dapo", beta=0.0),
    }
    result["controls"] = {}
    for name, kwargs in controls.items():
        with contextlib.redirect_stdout(io.StringIO()):
            config = Config(output_dir=output_dir, use_cpu=True, bf16=False, report_to="none", **kwargs)
        result["controls"][name] = [
            config.beta, config.scale_rewards, config.mask_truncated_completions, config.epsilon_high
        ]
print("PROBE-RESULT " + json.dumps(result))
"""

# Fields whose default unsloth's GRPOConfig changes from trl 1.14.2's (unsloth/models/rl.py:3237-3303): our trainer
# must pass each one it cares about. A change here after an upgrade means re-reading unsloth's rl.py.
UNSLOTH_CHANGED_DEFAULTS = {
    "beta",
    "bf16",
    "eval_accumulation_steps",
    "generation_kwargs",
    "gradient_accumulation_steps",
    "include_num_input_tokens_seen",
    "learning_rate",
    "logging_nan_inf_filter",
    "logging_steps",
    "loss_type",
    "mask_truncated_completions",
    "optim",
    "per_device_eval_batch_size",
    "per_device_train_batch_size",
    "router_aux_loss_coef",
    "seed",
    "torch_empty_cache_steps",
    "vllm_importance_sampling_correction",
    "warmup_steps",
    "weight_decay",
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    cache = tmp_path_factory.mktemp("unsloth_compiled_cache")
    env = {
        **os.environ,
        "UNSLOTH_ALLOW_CPU": "1",  # unsloth's switch for CPU-only tests: import and patch, no model loading
        "UNSLOTH_COMPILE_LOCATION": str(cache),  # its generated trainer sources, out of the repo
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
    }
    env.pop("UNSLOTH_VLLM_STANDBY", None)
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(EXPERIMENT)], cwd=cache, env=env, capture_output=True, text=True, timeout=600
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("PROBE-RESULT ")]
    assert run.returncode == 0 and lines, f"the unsloth probe failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    result = json.loads(lines[-1].removeprefix("PROBE-RESULT "))
    result["wall_seconds"] = time.perf_counter() - start
    print(
        f"\nunsloth probe: import {result['import_seconds']:.1f} s, patch GRPO {result['patch_seconds']:.1f} s, "
        f"process {result['wall_seconds']:.1f} s"
    )
    return result


@needs_unsloth
def test_import_unsloth_turns_standby_on(probe):
    assert probe["standby"] == "1"


@needs_unsloth
def test_every_loading_argument_is_a_named_parameter_of_unsloth(probe):
    assert probe["from_pretrained"] == []
    assert probe["get_peft_model"] == []


@needs_unsloth
def test_save_load_and_merge_calls_match_unsloth(probe):
    assert probe["save_lora"] == probe["save_lora_adapter"] == probe["load_lora"] == []
    assert probe["save_pretrained_merged"] == []


@needs_unsloth
def test_the_experiment_model_resolves_to_a_prequantized_4bit_repo(probe):
    assert probe["resolved_model"] == "unsloth/Qwen3-1.7B-unsloth-bnb-4bit"


@needs_unsloth
def test_unsloth_patches_grpo_config_with_the_defaults_we_know(probe):
    assert probe["patched"]
    assert set(probe["changed_defaults"]) == UNSLOTH_CHANGED_DEFAULTS
    assert probe["unknown_override_keys"] == []
    # unsloth's config turns the vLLM importance-sampling correction off by default; ours passes train's (on).
    assert probe["ours_patched"]  # grpo_config builds unsloth's patched class
    assert probe["ours_importance_sampling"] is True


@needs_unsloth
def test_our_beta_loss_and_scaling_survive_unsloths_grpo_config(probe):
    configs = probe["configs"]
    for case in configs:
        assert "IGNORED" not in case["printed"], case  # unsloth drops unknown arguments with a print, not an error
        assert case["optim"] == "adamw_8bit"
        assert case["gradient_checkpointing"] is True
        assert case["mask_truncated_completions"] is False
        assert case["epsilon_high"] == 0.2
    assert [case["got"] for case in configs] == [
        ["grpo", "group", 0.05],
        ["grpo", "group", 0.0],
        ["bnpo", "none", 0.04],
        ["dapo", "group", 0.0],
        ["dapo", "group", 0.1],
        ["dr_grpo", "group", 0.0],
        ["dr_grpo", "batch", 0.0],
    ]


@needs_unsloth
def test_without_the_pins_unsloth_would_change_our_settings(probe):
    """Controls for the test above: the same config built without our explicit values (beta, scale, dapo pins)."""
    assert probe["controls"] == {
        "beta_unset": [0.001, "group", False, None],
        "dr_grpo_group": [0.0, "none", False, None],
        "dapo_unpinned": [0.0, "group", True, 0.28],
    }
