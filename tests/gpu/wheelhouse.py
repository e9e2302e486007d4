"""What the GPU check must carry to a machine that has torch but not the rest, and whether that machine has it all.

The lent device (/work/.library/device/KINDS.md, `nvidia-h200`) runs Python 3.12 at /opt/torch/.venv with torch
2.11.0+cu130, torchvision, transformers 5.17.0, accelerate, peft, matplotlib, pandas, pyarrow, pytest and about 200
other packages (DEVICE_PACKAGES), has no network, and takes 64 MiB of carried files a call. The wheelhouse holds
only what a run imports and that machine lacks, at uv.lock's versions, for the target Python:

    python3 tests/gpu/wheelhouse.py pins --python-version 3.12            # name==version, one a line
    python3 tests/gpu/wheelhouse.py strip WHEELHOUSE/bitsandbytes-*.whl --keep-cuda 130     # and unsloth-*.whl
    python3 tests/gpu/wheelhouse.py preflight [--wheelhouse DIR]            # exit 3 with the list of what is missing

How a pin is chosen: uv.lock's dependency graph is walked from ROOTS (markers evaluated for the target Python on
manylinux x86_64), then three kinds of package are left out, each for a stated reason:
- DEVICE_PACKAGES: the machine has them (its own versions run; the results say which);
- NEVER_CARRIED: torch and what is built against it (torchvision, torchaudio, triton, the CUDA wheels), pytest,
  pyarrow and pandas: a carried copy would shadow the machine's, and one built for another torch breaks imports;
- NOT_IMPORTED: unsloth's dependencies that a GRPO run never imports (checked in the installed unsloth 2026.10.9:
  the imports are optional, in a try, or on a path the check does not take, such as vLLM or saving to GGUF).
bitsandbytes ships one library per CUDA/ROCm/XPU release (16 of them, 124 MiB unpacked); `strip` keeps the CPU one and
the one for the machine's CUDA (13.0: libbitsandbytes_cuda130.so), and drops Unsloth Studio and the CLI from the
unsloth wheel; it rewrites each wheel and its RECORD.

The preflight also holds the machine's own packages against what the carried wheels require (each wheel's
METADATA Requires-Dist, markers evaluated here): a package the machine has at a version outside a carried wheel's
specifier (peft under unsloth-zoo's floor, fsspec over datasets' cap) is named in results.json and summary.md, so
a case that fails later on it is explained; the cases still run (the mismatch may not matter to them).

Standard library only (and the `packaging` that pip vendors), so it runs with any interpreter that has pip: the
device's python3 runs `preflight` before anything of the project is imported.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.metadata
import importlib.util
import io
import json
import re
import sys
import tomllib
import zipfile
from pathlib import Path

try:
    from packaging.markers import Marker
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version
except ImportError:  # a bare Python: pip carries its own copy
    from pip._vendor.packaging.markers import Marker
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024**2
CARRY_LIMIT_MIB = 64  # what one device call carries, working tree included (/work/.library/device/README.md)

# The project's run-time needs (pyproject's dependencies without wandb, which `logging.wandb: disabled` never
# imports) and the unsloth backend's. vLLM is not here: 311 MiB of wheel, far over a carry.
ROOTS = [
    "pydantic",
    "pyyaml",
    "rich",
    "trl",
    "datasets",
    "math-verify",
    "transformers",
    "accelerate",
    "peft",
    "tokenizers",
    "matplotlib",
    "unsloth",
    "unsloth-zoo",
    "bitsandbytes",
]

# The `cuda` image of the nvidia-h200 kind, as KINDS.md lists it (read there on 2026-11-17).
_DEVICE_LIST = """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
    charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
    cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
    flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
    huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
    jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
    llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
    multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
    nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
    nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
    nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
    opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
    patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
    py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
    pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
    safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
    setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
    tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
    torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
    typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
"""
DEVICE_PACKAGES = frozenset(_DEVICE_LIST.split())

NEVER_CARRIED = {
    "torch": "the machine's own build is what runs",
    "torchvision": "built against one torch: a copy for torch 2.13 breaks unsloth's and trl's imports under 2.11",
    "torchaudio": "built against one torch",
    "triton": "pinned by the machine's torch",
    "pytest": "the machine's test runner",
    "pyarrow": "the machine has it (55 MiB of wheel)",
    "pandas": "the machine has it (12 MiB of wheel)",
}
NEVER_CARRIED_PREFIXES = ("nvidia-", "cuda-")

NOT_IMPORTED = {
    "xformers": "its PyPI wheel is built for torch 2.10; unsloth uses PyTorch attention without it",
    "diffusers": "imported by no module of unsloth 2026.10.9 or unsloth-zoo (30 MiB)",
    "torchao": "QAT and fp8 only, every import optional (in a try, or after find_spec); built per torch version",
    "tyro": "unsloth's CLI only",
    "hf-transfer": "faster hub downloads; the check downloads nothing",
    "structlog": "not imported by a training run",
    "json5": "not imported by a training run",
    "nest-asyncio": "OpenEnv's async clients only, imported in a try",
    "msgspec": "unsloth_zoo's vLLM LoRA requests only (vLLM is not carried)",
    "cut-cross-entropy": "unsloth_zoo's loss for other model families, imported inside functions",
    "wandb": "logging.wandb: disabled imports nothing of it",
}

# What `preflight` imports, in the order a run imports them: the project's config and rewards, 4-bit, the unsloth
# backend, trl's trainer. A name that fails is listed with its error, all at once.
PREFLIGHT_MODULES = [
    "yaml",
    "rich",
    "pydantic",
    "math_verify",
    "bitsandbytes",
    "unsloth",  # before trl, transformers and peft, as a run imports it
    "trl",
    "peft",
    "accelerate",
    "datasets",
]
# Imported in their own child after the rest (vLLM prints much and takes seconds): missing means skipped cases.
OPTIONAL_MODULES = ["vllm"]


def normalize(name: str) -> str:
    """PEP 503's normalized project name: runs of -, _ and . become one -, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def marker_environment(python_version: str, machine: str = "x86_64") -> dict[str, str]:
    """The PEP 508 marker values of CPython `python_version` on Linux `machine`."""
    full = python_version if python_version.count(".") == 2 else f"{python_version}.0"
    return {
        "python_version": ".".join(full.split(".")[:2]),
        "python_full_version": full,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


class Lock:
    """uv.lock's packages and their dependency edges, with markers evaluated for one target."""

    def __init__(self, text: str, environment: dict[str, str]):
        self.environment = environment
        self.packages: dict[str, list[dict]] = {}
        for package in tomllib.loads(text)["package"]:
            self.packages.setdefault(package["name"], []).append(package)

    def applies(self, marker: str | None) -> bool:
        return marker is None or Marker(marker).evaluate(self.environment)

    def package(self, name: str, version: str | None = None) -> dict:
        candidates = self.packages[name]
        if version is not None:
            return next(package for package in candidates if package["version"] == version)
        if len(candidates) == 1:
            return candidates[0]
        for package in candidates:  # a fork: the version whose resolution markers match the target
            if any(self.applies(marker) for marker in package.get("resolution-markers", [])):
                return package
        raise SystemExit(f"uv.lock holds {name} at several versions and none matches the target platform")

    def closure(self, roots: list[str], stop: set[str] = frozenset()) -> dict[str, str]:
        """name -> locked version of the roots and what they need on the target, not walking past `stop`."""
        found: dict[str, str] = {}
        todo = [(root, None, ()) for root in roots]
        seen_extras: set[tuple[str, str]] = set()
        while todo:
            name, version, extras = todo.pop()
            if name in stop:
                continue
            package = self.package(name, version)
            new = name not in found
            found[name] = package["version"]
            edges = list(package.get("dependencies", [])) if new else []
            for extra in extras:
                if (name, extra) not in seen_extras:
                    seen_extras.add((name, extra))
                    edges += package.get("optional-dependencies", {}).get(extra, [])
            for dependency in edges:
                if self.applies(dependency.get("marker")):
                    todo.append((dependency["name"], dependency.get("version"), tuple(dependency.get("extra", ()))))
        return found


def why_left_out(name: str, preinstalled: frozenset[str] | set[str]) -> str | None:
    """Why `name` is not carried (None: it is)."""
    name = normalize(name)
    if name in NEVER_CARRIED:
        return f"never carried: {NEVER_CARRIED[name]}"
    if name.startswith(NEVER_CARRIED_PREFIXES):
        return "never carried: CUDA libraries come with the machine's torch"
    if name in NOT_IMPORTED:
        return f"not imported by a run: {NOT_IMPORTED[name]}"
    if name in preinstalled:
        return "the machine has it"
    return None


def pins(lock: Lock, preinstalled: frozenset[str] | set[str] = DEVICE_PACKAGES) -> dict[str, str]:
    """name -> locked version of everything a run imports that the machine lacks (see the module docstring).

    Left-out packages are not walked through: what only xformers or diffusers needs is not carried either, and
    what the machine's own packages need, the machine has."""
    stop = set(NEVER_CARRIED) | set(NOT_IMPORTED) | set(preinstalled)
    closure = lock.closure(ROOTS, stop=stop)
    return {name: version for name, version in sorted(closure.items()) if why_left_out(name, preinstalled) is None}


def machine_base(lock: Lock, preinstalled: frozenset[str] | set[str] = DEVICE_PACKAGES) -> dict[str, str]:
    """name -> locked version of what the machine is taken to have already (torch, pytest and the rest of the run's
    closure that `pins` leaves to the machine): the dry run builds a venv of exactly these to stand in for it."""
    closure = lock.closure([*ROOTS, "pytest"])
    return {
        name: version
        for name, version in sorted(closure.items())
        if name in NEVER_CARRIED or name.startswith(NEVER_CARRIED_PREFIXES) or name in preinstalled
    }


def left_out(lock: Lock, preinstalled: frozenset[str] | set[str] = DEVICE_PACKAGES) -> dict[str, str]:
    """name -> why, for every package of the run's closure that the wheelhouse does not carry."""
    closure = lock.closure(ROOTS)
    return {name: why for name in sorted(closure) if (why := why_left_out(name, preinstalled)) is not None}


# --------------------------------------------------------------------------------------------------------------
# Stripping wheels of what a run never loads

_BACKEND_LIBRARY = re.compile(r"(^|/)libbitsandbytes_(?P<backend>cuda\d+|rocm\d+|xpu\d+|mps|cpu)\.(so|dylib|dll)$")
# unsloth's wheel carries Unsloth Studio (a web app: 24 MiB of its 27) and its command line beside the library;
# no module of unsloth or unsloth-zoo imports either (checked in 2026.10.9).
UNSLOTH_UNUSED_TOP_LEVEL = ("studio/", "unsloth_cli/")


def dropped(project: str, member: str, keep_cuda: str) -> bool:
    """Whether `strip` leaves a wheel member out: bitsandbytes' backend libraries but the CPU one and
    cuda<keep_cuda> (as bitsandbytes names them: 130 for CUDA 13.0), and unsloth's Studio and CLI."""
    project = normalize(project)
    if project == "bitsandbytes":
        match = _BACKEND_LIBRARY.search(member)
        return match is not None and match.group("backend") not in ("cpu", f"cuda{keep_cuda}")
    if project == "unsloth":
        return member.startswith(UNSLOTH_UNUSED_TOP_LEVEL)
    return False


def strip_wheel(wheel: Path, keep_cuda: str) -> tuple[int, int]:
    """Rewrite `wheel` in place without the members `dropped` names, and its RECORD without their lines (pip would
    otherwise list files that are not there). Returns (bytes before, bytes after)."""
    project = wheel.name.split("-")[0]
    before = wheel.stat().st_size
    buffer = io.BytesIO()
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        members = [info for info in source.infolist() if not dropped(project, info.filename, keep_cuda)]
        libraries = [info.filename for info in source.infolist() if _BACKEND_LIBRARY.search(info.filename)]
        if libraries and not any(f"cuda{keep_cuda}." in name for name in libraries):
            raise SystemExit(f"{wheel.name} has no libbitsandbytes_cuda{keep_cuda}: nothing would load on that CUDA")
        kept_names = {info.filename for info in members}
        for info in members:
            data = source.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = _filtered_record(data, kept_names)
            target.writestr(info, data)
    wheel.write_bytes(buffer.getvalue())
    return before, wheel.stat().st_size


def _filtered_record(record: bytes, kept: set[str]) -> bytes:
    rows = [row for row in csv.reader(io.StringIO(record.decode())) if row and (row[0] in kept or not row[1])]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


# --------------------------------------------------------------------------------------------------------------
# Preflight


def import_problems(modules: list[str]) -> dict[str, str]:
    """module -> the last line of its import error, for every module of `modules` that does not import."""
    problems: dict[str, str] = {}
    for module in modules:
        try:
            importlib.import_module(module)
        except BaseException as error:  # noqa: BLE001 - unsloth raises NotImplementedError/RuntimeError too
            if isinstance(error, KeyboardInterrupt):
                raise
            problems[module] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error) else ''}"
    return problems


def missing_distributions(names: list[str]) -> list[str]:
    """The distributions of `names` that are not installed (by metadata, without importing anything)."""
    missing = []
    for name in names:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def preflight_report(problems: dict[str, str], missing: list[str]) -> str:
    """The paragraph that stops the check: what does not import and what is not installed, and the fix."""
    lines = [f"preflight: {len(problems)} module(s) do not import and {len(missing)} package(s) are missing."]
    lines += [f"  cannot import {module}: {why}" for module, why in problems.items()]
    if missing:
        lines.append(f"  not installed: {', '.join(missing)}")
    lines.append(
        "Carry a wheelhouse built for this machine's Python (tests/gpu/build_wheelhouse.sh, docs/gpu.md) and pass it "
        "to tests/gpu/run_offline.sh --wheelhouse DIR, or install the project's gpu extra (uv sync --extra gpu)."
    )
    return "\n".join(lines)


def wheel_requirements(wheel: Path) -> tuple[str, str, list[str]]:
    """(project name, version, Requires-Dist lines) from a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        metadata = archive.read(name).decode("utf-8", "replace")
    headers = metadata.split("\n\n", 1)[0].splitlines()
    field = lambda key: [line.split(":", 1)[1].strip() for line in headers if line.startswith(f"{key}:")]  # noqa: E731
    return field("Name")[0], field("Version")[0], field("Requires-Dist")


def requirement_mismatches(
    wheels: list[Path], installed: dict[str, str | None] | None = None, environment: dict[str, str] | None = None
) -> list[dict[str, str | None]]:
    """What the machine has against what the carried wheels require: one entry per requirement of a wheel on a
    package the wheels do not carry that is not installed or whose installed version is outside the specifier.

    `installed` maps normalized names to versions (None: absent); by default this interpreter's metadata. Markers
    are evaluated for this interpreter (`environment` overrides; extras never apply). Packages left out by design
    (NOT_IMPORTED: xformers, diffusers, ...) are not reported when absent. Entries: package, installed, required
    (the specifier), by ("unsloth-zoo 2026.10.9"), problem ("too old or too new" / "not installed")."""
    carried = {}
    for wheel in wheels:
        name, version, requires = wheel_requirements(wheel)
        carried[normalize(name)] = (version, requires)
    env = {**(environment or {}), "extra": ""}
    findings: list[dict[str, str | None]] = []
    for owner, (owner_version, requires) in sorted(carried.items()):
        for line in requires:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            target = normalize(requirement.name)
            if target in carried or (requirement.marker is not None and not requirement.marker.evaluate(env)):
                continue
            have = installed.get(target) if installed is not None else versions([target])[target]
            if have is None:
                if target not in NOT_IMPORTED:
                    findings.append(_finding(target, None, requirement, owner, owner_version, "not installed"))
                continue
            try:
                fits = requirement.specifier.contains(Version(have), prereleases=True)
            except InvalidVersion:
                fits = False
            if not fits:
                findings.append(_finding(target, have, requirement, owner, owner_version, "outside the specifier"))
    return findings


def _finding(package: str, have: str | None, requirement: Requirement, owner: str, version: str, problem: str):
    return {
        "package": package,
        "installed": have,
        "required": str(requirement.specifier) or "any version",
        "by": f"{owner} {version}",
        "problem": problem,
    }


def versions(names: list[str]) -> dict[str, str | None]:
    """name -> installed version (None when absent), read from metadata."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pin = commands.add_parser("pins", help="print the carried set's locked pins, name==version")
    pin.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    pin.add_argument("--lock", type=Path, default=ROOT / "uv.lock")
    pin.add_argument("--left-out", action="store_true", help="print what is not carried and why instead")
    pin.add_argument("--machine", action="store_true", help="print what the machine is taken to have instead")
    strip = commands.add_parser("strip", help="drop what a run never loads from a bitsandbytes or unsloth wheel")
    strip.add_argument("wheel", type=Path)
    strip.add_argument("--keep-cuda", default="130", help="the CUDA library to keep, as bitsandbytes names it")
    check = commands.add_parser("preflight", help="import what a run needs; exit 3 with the list of what fails")
    check.add_argument("--json", type=Path, help="also write the findings here")
    check.add_argument("--wheelhouse", type=Path, help="hold this machine's packages against these wheels' needs")
    args = parser.parse_args(argv)

    if args.command == "pins":
        lock = Lock(args.lock.read_text(), marker_environment(args.python_version))
        if args.machine:
            for name, version in machine_base(lock).items():
                print(f"{name}=={version}")
        elif args.left_out:
            for name, why in left_out(lock).items():
                print(f"{name}: {why}")
        else:
            for name, version in pins(lock).items():
                print(f"{name}=={version}")
        return 0
    if args.command == "strip":
        before, after = strip_wheel(args.wheel, args.keep_cuda)
        print(f"{args.wheel.name}: {before / MIB:.1f} -> {after / MIB:.1f} MiB (stripped of what a run never loads)")
        return 0
    problems = import_problems(PREFLIGHT_MODULES)
    missing = missing_distributions(["pydantic", "trl", "datasets", "unsloth", "unsloth-zoo", "bitsandbytes"])
    optional = import_problems_in_child(OPTIONAL_MODULES)
    wheels = sorted(args.wheelhouse.glob("*.whl")) if args.wheelhouse else []
    mismatches = requirement_mismatches(wheels)
    findings = {
        "problems": problems,
        "missing": missing,
        "optional_missing": optional,
        "mismatches": mismatches,
        "ok": not problems,
    }
    if args.json:
        args.json.write_text(json.dumps(findings, indent=1) + "\n")
    if mismatches:
        print(f"preflight: {len(mismatches)} requirement(s) of the carried wheels that this machine does not meet:")
        try:  # beside this file: run as a script (the device)
            from results import mismatch_lines
        except ImportError:  # imported as the tests' package `gpu`
            from gpu.results import mismatch_lines

        for line in mismatch_lines(mismatches):
            print(f"  {line}")
    elif wheels:
        print(f"preflight: this machine's packages meet every requirement of the {len(wheels)} carried wheels")
    if problems or missing:
        print(preflight_report(problems, missing), file=sys.stderr)
        return 3
    extra = f"; optional, missing: {', '.join(f'{m} ({why})' for m, why in optional.items())}" if optional else ""
    print(f"preflight: every module a run needs imports ({', '.join(PREFLIGHT_MODULES)}){extra}")
    return 0


def import_problems_in_child(modules: list[str]) -> dict[str, str]:
    """import_problems in a child interpreter each (vLLM's import is heavy and must not share this process)."""
    import subprocess

    problems = {}
    for module in modules:
        if importlib.util.find_spec(module) is None:  # not installed: no child needed to say so
            problems[module] = f"ModuleNotFoundError: No module named '{module}'"
            continue
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300)
        if done.returncode:
            problems[module] = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
    return problems


if __name__ == "__main__":
    sys.exit(main())
