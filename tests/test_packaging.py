"""The gpu extra and the lock: what must hold for `uv sync --extra gpu` to give a stack that loads together.

Runs in the base environment (no unsloth, no vLLM): it reads pyproject.toml and uv.lock. The one check that reads an
installed package (vLLM's own metadata) runs only where the gpu extra is installed (CI's .venv-gpu).
"""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
OUR_CODE = ("train", "rewards", "experiments")

# vLLM pins the torch family exactly; uv.lock records a registry package's dependencies by name only, without the
# specifier, so the pins are copied here from the locked wheel's METADATA (Requires-Dist), tied to that exact wheel
# by its sha256 in uv.lock. Relocking to another vLLM fails test_vllm_torch_pins_match_the_locked_torch until the
# new wheel's pins are copied in: `unzip -p vllm-X-*.whl 'vllm-X.dist-info/METADATA' | grep -E '^Requires-Dist: torch'`.
VLLM_WHEEL_PINS = {
    "0.32.0": {
        "wheel": "vllm-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl",
        "sha256": "5e2ecdc5b0baf72921c288486417ca82778456a448e4fe60b62ee43c0dfc8611",
        "requires": {"torch": "==2.13.0", "torchvision": "==0.28.0", "torchaudio": "==2.11.0"},
    },
}


def _gpu_extra() -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [Requirement(line) for line in pyproject["project"]["optional-dependencies"]["gpu"]]


def _locked() -> dict[str, dict]:
    """uv.lock's packages by name; a package locked at several versions (a fork by platform) maps to a list."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages: dict[str, list[dict]] = {}
    for package in lock["package"]:
        packages.setdefault(package["name"], []).append(package)
    return {name: found[0] if len(found) == 1 else found for name, found in packages.items()}


def test_gpu_extra_does_not_list_xformers():
    # xformers 0.0.35 from PyPI is built for torch 2.10 (its cpp_lib.json); beside the locked torch its kernels never
    # load and unsloth uses PyTorch attention. It still comes in as unsloth's own dependency.
    assert "xformers" not in {requirement.name for requirement in _gpu_extra()}


def test_nothing_of_ours_imports_xformers():
    importers = []
    for folder in OUR_CODE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    names = [node.value] if node.value.split(".")[0] == "xformers" else []  # import_module("...")
                if any(name.split(".")[0] == "xformers" for name in names):
                    importers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert importers == []


def test_gpu_extra_keeps_vllm_below_the_first_release_unsloth_zoo_does_not_name():
    # docs/gpu.md: unsloth-zoo 2026.10.9 gates on vLLM up to 0.32; 0.33 came out a week after it.
    vllm = next(requirement for requirement in _gpu_extra() if requirement.name == "vllm")
    assert vllm.specifier.contains("0.32.0")
    assert not vllm.specifier.contains("0.33.0")


def test_lock_holds_the_documented_stack():
    locked = {name: package["version"] for name, package in _locked().items() if isinstance(package, dict)}
    expected = {
        "torch": "2.13.0",
        "transformers": "5.17.0",
        "trl": "1.14.2",
        "unsloth": "2026.10.9",
        "unsloth-zoo": "2026.10.9",
        "vllm": "0.32.0",
    }
    assert {name: locked.get(name) for name in expected} == expected


def test_vllm_torch_pins_match_the_locked_torch():
    locked = _locked()
    vllm = locked["vllm"]
    assert vllm["version"] in VLLM_WHEEL_PINS, (
        f"vLLM {vllm['version']} is locked but its torch pins are not recorded in VLLM_WHEEL_PINS: copy them from "
        "the wheel's METADATA"
    )
    recorded = VLLM_WHEEL_PINS[vllm["version"]]
    hashes = {Path(wheel["url"]).name: wheel["hash"] for wheel in vllm["wheels"]}
    assert hashes.get(recorded["wheel"]) == f"sha256:{recorded['sha256']}", "the recorded pins are from another wheel"
    depends_on = {dependency["name"] for dependency in vllm["dependencies"]}
    for name, pin in recorded["requires"].items():
        assert name in depends_on
        version = locked[name]["version"]
        assert SpecifierSet(pin).contains(version), f"vLLM wants {name}{pin}, uv.lock has {version}"


def test_recorded_vllm_pins_are_the_installed_wheels_own():
    try:
        requires = importlib.metadata.requires("vllm") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("vLLM is not installed here (it comes with the gpu extra: uv sync --extra gpu)")
    installed = importlib.metadata.version("vllm")
    pins = {
        requirement.name: str(requirement.specifier)
        for requirement in map(Requirement, requires)
        if requirement.name in ("torch", "torchvision", "torchaudio") and requirement.marker is None
    }
    assert pins == VLLM_WHEEL_PINS[installed]["requires"]


def test_docs_state_the_oldest_gpu_the_locked_torch_runs_on():
    """docs/gpu.md said compute capability 7.0; the locked torch ships kernels from sm_75 up."""
    import re

    import torch

    oldest = min(torch.cuda.get_arch_list(), key=lambda arch: int(arch.removeprefix("sm_")))
    major, minor = oldest.removeprefix("sm_")[:-1], oldest.removeprefix("sm_")[-1]
    docs = (Path(__file__).resolve().parent.parent / "docs" / "gpu.md").read_text()
    stated = re.search(r"compute capability (\d+\.\d+) or newer", docs)
    assert stated is not None and stated.group(1) == f"{major}.{minor}"
