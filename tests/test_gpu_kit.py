"""The GPU check kit's pure parts (tests/gpu: wheel selection and stripping, the preflight, the results summary) and
the fast-path decisions the GPU recipe takes (16-bit vs 4-bit, vLLM importance sampling, one vLLM call per pass)."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
import zipfile
from pathlib import Path

import pytest
from gpu import results, run_case, wheelhouse  # tests/gpu (pytest puts tests/ on the path); scripts on the device

from train.config import load_config, validate_config
from train.grpo.arguments import vllm_importance_sampling
from train.lab.memory_check import choose_precision, plan_config, resolve_precision

ROOT = Path(__file__).resolve().parent.parent

LOCK = (ROOT / "uv.lock").read_text()
# What the device lacks and a run imports (docs/gpu.md), by name.
CARRIED = {
    "annotated-types",
    "antlr4-python3-runtime",
    "bitsandbytes",
    "datasets",
    "dill",
    "latex2sympy2-extended",
    "math-verify",
    "multiprocess",
    "pydantic",
    "pydantic-core",
    "trl",
    "typing-inspection",
    "unsloth",
    "unsloth-zoo",
}


@pytest.mark.parametrize("python", ["3.12", "3.11"])
def test_the_wheelhouse_carries_exactly_what_the_device_lacks_at_the_locked_versions(python):
    lock = wheelhouse.Lock(LOCK, wheelhouse.marker_environment(python))
    pins = wheelhouse.pins(lock)
    assert set(pins) == CARRIED
    assert pins["trl"] == "1.14.2" and pins["unsloth"] == "2026.10.9" and pins["pydantic"] == "2.14.3"
    for never in ("torch", "torchvision", "pytest", "pyarrow", "pandas", "xformers", "diffusers", "vllm"):
        assert never not in pins


def test_every_left_out_package_has_its_reason():
    lock = wheelhouse.Lock(LOCK, wheelhouse.marker_environment("3.12"))
    reasons = wheelhouse.left_out(lock)
    assert reasons["torchvision"].startswith("never carried: built against one torch")
    assert reasons["diffusers"].startswith("not imported by a run")
    assert reasons["transformers"] == "the machine has it"
    assert reasons["nvidia-cublas"].startswith("never carried")
    assert not set(reasons) & CARRIED


def test_the_dry_runs_stand_in_has_torch_and_pytest_but_nothing_the_wheelhouse_carries():
    lock = wheelhouse.Lock(LOCK, wheelhouse.marker_environment("3.11"))
    base = wheelhouse.machine_base(lock)
    assert {"torch", "pytest", "pyarrow", "pandas", "transformers", "peft", "accelerate", "typer"} <= set(base)
    assert not set(base) & CARRIED
    assert "xformers" not in base and "diffusers" not in base  # the device has neither


def fake_wheel(path: Path, members: list[str]) -> Path:
    """A wheel whose RECORD lists every member (hash and size fields filled in)."""
    record_name = next(m for m in members if m.endswith(".dist-info/RECORD"))
    with zipfile.ZipFile(path, "w") as wheel:
        rows = []
        for member in members:
            if member != record_name:
                wheel.writestr(member, b"x" * 10)
                rows.append([member, "sha256=abc", "10"])
        rows.append([record_name, "", ""])
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        wheel.writestr(record_name, out.getvalue())
    return path


def test_strip_keeps_the_cpu_and_cuda_13_libraries_of_bitsandbytes_and_their_record_lines(tmp_path):
    libraries = ["cpu", "cuda118", "cuda126", "cuda130", "cuda132", "rocm64", "xpu2025"]
    members = [
        "bitsandbytes/__init__.py",
        *(f"bitsandbytes/libbitsandbytes_{lib}.so" for lib in libraries),
        "bitsandbytes-0.50.2.dist-info/RECORD",
    ]
    wheel = fake_wheel(tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl", members)
    wheelhouse.strip_wheel(wheel, keep_cuda="130")
    with zipfile.ZipFile(wheel) as stripped:
        names = set(stripped.namelist())
        record = [
            row[0] for row in csv.reader(io.StringIO(stripped.read("bitsandbytes-0.50.2.dist-info/RECORD").decode()))
        ]
    kept = {
        "bitsandbytes/__init__.py",
        "bitsandbytes/libbitsandbytes_cpu.so",
        "bitsandbytes/libbitsandbytes_cuda130.so",
    }
    assert names == kept | {"bitsandbytes-0.50.2.dist-info/RECORD"}
    assert set(record) == names


def test_strip_refuses_a_bitsandbytes_without_the_cuda_library_asked_for(tmp_path):
    members = ["bitsandbytes/libbitsandbytes_cuda126.so", "bitsandbytes-0.1.dist-info/RECORD"]
    wheel = fake_wheel(tmp_path / "bitsandbytes-0.1-py3-none-any.whl", members)
    with pytest.raises(SystemExit, match="no libbitsandbytes_cuda130"):
        wheelhouse.strip_wheel(wheel, keep_cuda="130")


def test_strip_drops_unsloth_studio_and_cli_and_keeps_the_library(tmp_path):
    members = [
        "unsloth/__init__.py",
        "unsloth/models/llama.py",
        "studio/frontend/app.js",
        "unsloth_cli/commands/train.py",
        "unsloth-2026.10.9.dist-info/RECORD",
    ]
    wheel = fake_wheel(tmp_path / "unsloth-2026.10.9-py3-none-any.whl", members)
    wheelhouse.strip_wheel(wheel, keep_cuda="130")
    with zipfile.ZipFile(wheel) as stripped:
        assert set(stripped.namelist()) == {
            "unsloth/__init__.py",
            "unsloth/models/llama.py",
            "unsloth-2026.10.9.dist-info/RECORD",
        }


def test_the_preflight_lists_every_module_that_does_not_import_and_the_fix():
    problems = wheelhouse.import_problems(["json", "no_such_module_grpo_lab", "csv"])
    assert list(problems) == ["no_such_module_grpo_lab"]
    assert problems["no_such_module_grpo_lab"].startswith("ModuleNotFoundError")
    missing = wheelhouse.missing_distributions(["pytest", "no-such-distribution-grpo-lab"])
    assert missing == ["no-such-distribution-grpo-lab"]
    report = wheelhouse.preflight_report(problems, missing)
    assert "1 module(s) do not import and 1 package(s) are missing" in report
    assert (
        "cannot import no_such_module_grpo_lab" in report and "not installed: no-such-distribution-grpo-lab" in report
    )
    assert "build_wheelhouse.sh" in report


def wheel_with_requirements(directory: Path, name: str, version: str, requires: list[str]) -> Path:
    """A wheel with only a METADATA that declares `requires` (Requires-Dist lines)."""
    path = directory / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name.replace('-', '_')}-{version}.dist-info/METADATA", "\n".join(lines) + "\n\nReadme.\n")
    return path


def test_the_preflight_names_a_device_package_older_than_a_carried_wheel_needs(tmp_path):
    wheels = [
        wheel_with_requirements(
            tmp_path,
            "unsloth-zoo",
            "2026.10.9",
            [
                "peft>=0.18.0,!=0.11.0",
                "trl<=1.15.0,>=0.18.2",
                "xformers>=0.0.27",
                "torch>=2.4.0",
                'tyro; extra == "cli"',
                'triton>=3.0.0; sys_platform == "never"',
            ],
        ),
        wheel_with_requirements(tmp_path, "trl", "1.14.2", ["accelerate>=1.4.0", "datasets>=3.0.0"]),
        wheel_with_requirements(tmp_path, "datasets", "4.8.5", ["fsspec[http]<=2026.9.0,>=2023.1.0"]),
    ]
    # The device as a package list: an old peft, an fsspec past datasets' cap, no xformers (left out by design).
    device = {"peft": "0.17.1", "torch": "2.11.0+cu130", "accelerate": "1.15.0", "fsspec": "2026.10.0"}
    found = wheelhouse.requirement_mismatches(wheels, installed=device)
    assert [(f["package"], f["installed"], f["required"], f["by"]) for f in found] == [
        ("fsspec", "2026.10.0", "<=2026.9.0,>=2023.1.0", "datasets 4.8.5"),
        ("peft", "0.17.1", "!=0.11.0,>=0.18.0", "unsloth-zoo 2026.10.9"),
    ]
    lines = results.mismatch_lines(found)
    assert lines[1] == "peft 0.17.1: unsloth-zoo 2026.10.9 requires !=0.11.0,>=0.18.0"
    summary = results.summary_markdown({"environment": {}, "preflight": {"problems": {}, "mismatches": found}})
    assert "**2 version mismatch(es)**" in summary and "  - peft 0.17.1: unsloth-zoo 2026.10.9 requires" in summary
    # The same device with a new enough peft and fsspec: nothing to name; a package it lacks is named as such.
    device.update(peft="0.21.2", fsspec="2026.9.0")
    assert wheelhouse.requirement_mismatches(wheels, installed=device) == []
    del device["accelerate"]
    (missing,) = wheelhouse.requirement_mismatches(wheels, installed=device)
    assert missing["package"] == "accelerate" and missing["problem"] == "not installed"


def test_pip_checks_output_is_kept_in_the_results_and_summary(tmp_path):
    path, text = tmp_path / "results.json", tmp_path / "pip-check.txt"
    peft = "unsloth-zoo 2026.10.9 has requirement peft>=0.18.0, but you have peft 0.17.1."
    xformers = "unsloth 2026.10.9 requires xformers, which is not installed."
    text.write_text(f"{xformers}\n{peft}\n")
    assert results.main(["pip-check", str(path), str(text), "1"]) == 0
    kept = results.load(path)["pip_check"]
    assert kept == {"status": 1, "lines": [xformers, peft], "left_out": [xformers]}
    summary = results.summary_markdown(results.load(path))
    assert "pip check: exit 1, 2 line(s), 1 of them naming packages left out by design" in summary
    assert f"  - {peft}" in summary and f"  - {xformers}" not in summary


SLOW_CASE = "import sys, time; print('case started', flush=True); time.sleep(float(sys.argv[1]))"
QUICK_CASE = (
    "import json, os, sys, time; open(sys.argv[1], 'w').write(json.dumps({'exit_code': 0, 'steps': [1, 2]})); "
    "time.sleep(float(sys.argv[2]))"
)


def test_the_case_runner_stops_a_slow_case_at_the_limit_from_the_environment(tmp_path):
    environ = {"GRPO_LAB_GPU_CASE_SECONDS": "2"}
    started = time.monotonic()
    result = run_case.run_case_limited(
        [sys.executable, "-c", SLOW_CASE, "60"], tmp_path / "result.json", tmp_path / "case.log", environ=environ
    )
    took = time.monotonic() - started
    assert result["status"] == "failed" and result["limit_s"] == 2
    assert "stopped at its 2 s limit (GRPO_LAB_GPU_CASE_SECONDS)" in result["reason"]
    assert 2 <= took < 10, took  # killed at the limit, not after the case's 60 s
    assert "case started" in (tmp_path / "case.log").read_text()


def test_the_budget_from_the_environment_cuts_a_case_and_skips_one_with_too_little_left(tmp_path):
    now = time.time()
    environ = {"GRPO_LAB_GPU_CASE_SECONDS": "200", "GRPO_LAB_GPU_BUDGET_SECONDS": "480"}
    assert run_case.case_limit({**environ, "GPU_CHECK_DEADLINE": str(now + 500)}, now) == (200, None)
    assert run_case.case_limit({**environ, "GPU_CHECK_DEADLINE": str(now + 120)}, now) == (100, None)  # 20 s kept
    limit, why = run_case.case_limit({**environ, "GPU_CHECK_DEADLINE": str(now + 50)}, now)
    assert why == "30 s left of the check's 480 s budget (GRPO_LAB_GPU_BUDGET_SECONDS), under the 60 s a case needs"
    skipped = run_case.run_case_limited(
        [sys.executable, "-c", SLOW_CASE, "60"],
        tmp_path / "result.json",
        tmp_path / "case.log",
        environ={**environ, "GPU_CHECK_DEADLINE": str(time.time() + 50)},
    )
    assert skipped["status"] == "skipped" and not (tmp_path / "case.log").exists()  # never started
    assert run_case.case_limit({}) == (run_case.DEFAULT_CASE_SECONDS, None)
    with pytest.raises(SystemExit, match="GRPO_LAB_GPU_CASE_SECONDS='soon'"):
        run_case.case_limit({"GRPO_LAB_GPU_CASE_SECONDS": "soon"})


def test_a_case_that_lingers_after_writing_its_result_is_ended_and_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(run_case, "EXIT_GRACE_S", 1)
    result_path = tmp_path / "result.json"
    started = time.monotonic()
    result = run_case.run_case_limited(
        [sys.executable, "-c", QUICK_CASE, str(result_path), "60"],
        result_path,
        tmp_path / "case.log",
        environ={"GRPO_LAB_GPU_CASE_SECONDS": "30"},
    )
    assert time.monotonic() - started < 10
    assert result["status"] == "passed" and result["steps"] == [1, 2]
    assert result["note"] == "ended by the check: still running 1 s after writing its result"
    assert json.loads(result_path.read_text())["exit_code"] == 0


def test_the_summary_has_one_row_per_case_with_its_figures_and_reasons():
    summary = results.summary_markdown(
        {
            "environment": {
                "date": "2026-12-02 14:00:00 UTC",
                "python": "3.12.3",
                "packages": {"torch": "2.11.0", "trl": "1.14.2", "vllm": None},
                "gpu": {"name": "NVIDIA H200", "memory": "143771 MiB", "driver": "580.159.03"},
                "memory_cap_gib": 24.0,
            },
            "wheelhouse": {"wheels": 14, "mib": 12.7, "install_s": 3.1},
            "preflight": {"problems": {}, "missing": [], "optional_missing": {"vllm": "No module named 'vllm'"}},
            "cases": {
                "a": {
                    "status": "passed",
                    "step_time_s": [10.25, 9.5],
                    "peak_allocated_gib": 7.5,
                    "plan": {"allocator_gib": 6},
                },
                "b": {"status": "skipped", "reason": "vLLM does not import here"},
            },
            "finished_at": "2026-12-02 14:04:00 UTC",
            "total_s": 240.0,
        }
    )
    assert "NVIDIA H200 (143771 MiB, driver 580.159.03); Python 3.12.3" in summary
    assert "ran: torch 2.11.0, trl 1.14.2" in summary and "vllm" not in summary.split("ran:")[1].split("\n")[0]
    assert "14 wheels, 12.7 MiB, installed in 3.1 s" in summary
    assert "(not installed, its cases skip: vllm)" in summary
    assert "| a | passed | 10.2, 9.5 | 7.50 | - | 6.00 | - |" in summary
    assert "| b | skipped | - |" in summary and "- b: vLLM does not import here" in summary
    assert "total 240.0 s" in summary


def test_a_failed_preflight_is_listed_in_the_summary():
    summary = results.summary_markdown(
        {"environment": {}, "preflight": {"problems": {"trl": "ModuleNotFoundError: No module named 'trl'"}}}
    )
    assert "preflight: **failed**" in summary and "cannot import trl: ModuleNotFoundError" in summary


def test_results_keep_every_case_written(tmp_path):
    path = tmp_path / "results.json"
    results.update(path, environment={"python": "3.12.3"})
    results.add_case(path, "a", {"status": "passed"})
    results.add_case(path, "b", {"status": "failed", "reason": "exit 1"})
    data = results.load(path)
    assert data["environment"] == {"python": "3.12.3"} and list(data["cases"]) == ["a", "b"]


# --------------------------------------------------------------------------------------------------------------
# The fast path


def test_the_planner_picks_16_bit_lora_for_qwen3_1_7b_on_24_gb():
    cfg = load_config(ROOT / "experiment_configs" / "eval_test_improved.yaml")
    assert cfg.model.load_in_4bit == "auto"
    four_bit, why = choose_precision(cfg, 24.0, "unsloth")
    assert four_bit is False and "16-bit LoRA (1.72B parameters" in why
    resolved, _ = resolve_precision(cfg, 24.0, "unsloth")
    assert resolved.model.load_in_4bit is False and cfg.model.load_in_4bit == "auto"  # the input is left alone
    plan = plan_config(cfg, 24.0, "unsloth")
    assert "16-bit" in plan.precision_note and plan.component("weights") > 3 * 2**30  # 1.72B x 2 B


def qwen(name: str, four_bit) -> object:
    return validate_config({"model": {"name": f"unsloth/{name}", "load_in_4bit": four_bit}})


def test_the_planner_keeps_4_bit_over_4_5b_parameters_and_where_16_bit_does_not_fit():
    four_bit, why = choose_precision(qwen("Qwen3-8B", "auto"), 24.0, "unsloth")
    assert four_bit is True and "over the 4.5B" in why
    assert choose_precision(qwen("Qwen3-4B", "auto"), 24.0, "unsloth")[0] is False  # 4.02B: the 16-bit path
    four_bit, why = choose_precision(qwen("Qwen3-4B", "auto"), 8.0, "unsloth")  # 8 GiB of 16-bit weights alone
    assert four_bit is True and "does not fit 8 GiB" in why


def test_an_explicit_precision_is_kept_and_auto_needs_deciding_before_loading():
    assert choose_precision(qwen("Qwen3-1.7B", True), 24.0, "unsloth") == (
        True,
        "model.load_in_4bit: true (set in the config)",
    )
    from train.models.unsloth import from_pretrained_kwargs

    with pytest.raises(ValueError, match="resolve_precision"):
        from_pretrained_kwargs(qwen("Qwen3-1.7B", "auto").model)
    assert from_pretrained_kwargs(qwen("Qwen3-1.7B", False).model)["load_in_4bit"] is False


def test_vllm_importance_sampling_is_off_on_unsloth_unless_asked_for():
    assert vllm_importance_sampling(None, "unsloth") is False
    assert vllm_importance_sampling(None, "hf") is True  # TRL's own vLLM: TRL's default
    assert vllm_importance_sampling(True, "unsloth") is True
    assert vllm_importance_sampling(False, "hf") is False


def test_a_report_that_cannot_import_warns_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    from train.grpo.callbacks import write_report

    monkeypatch.setitem(sys.modules, "train.lab.reports", None)  # import train.lab.reports now raises ImportError
    write_report(tmp_path)
    assert capsys.readouterr().err.startswith(f"warning: the run report for {tmp_path} cannot be written here")


def test_gpu_facts_record_vllms_model_share_standby_and_the_peak(monkeypatch):
    from types import SimpleNamespace

    import torch

    from train.models import Policy, gpu_facts

    assert gpu_facts(Policy(object(), None, "hf", "x")) is None  # no GPU: summary.json's gpu is null
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (4 * gib, 24 * gib))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA GeForce RTX 4090")
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 6 * gib)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: 7 * gib)
    monkeypatch.setenv("UNSLOTH_VLLM_STANDBY", "1")
    model_config = SimpleNamespace(model="unsloth/Qwen3-1.7B", quantization=None)
    cache_config = SimpleNamespace(gpu_memory_utilization=0.784)
    engine = SimpleNamespace(
        llm_engine=SimpleNamespace(model_config=model_config, vllm_config=SimpleNamespace(cache_config=cache_config))
    )
    plan = {"card_gib": 24.0, "allocator_gib": 4.548, "peak_gib": 19.9, "fits": True, "margin": 0.25}
    facts = gpu_facts(Policy(SimpleNamespace(vllm_engine=engine), None, "unsloth", "x"), plan=plan)
    assert facts == {
        "device": "NVIDIA GeForce RTX 4090",
        "total_gib": 24.0,
        "peak_allocated_gib": 6.0,
        "peak_reserved_gib": 7.0,
        "used_at_end_gib": 20.0,
        "vllm_model": "unsloth/Qwen3-1.7B",
        "vllm_quantization": None,
        "vllm_gpu_memory_utilization": 0.784,
        "standby": True,
        "plan": plan,  # the plan beside the measured peak: summary.json's first calibration of the planner
    }
