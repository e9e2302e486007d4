"""The locked pins a bare CUDA machine needs for tests/gpu, from uv.lock: `name==version`, one a line.

Such machines usually have CUDA, torch, transformers, peft and accelerate and nothing else. This walks uv.lock's
dependency graph (markers evaluated for the target Python and platform) from the roots of a set, and leaves out
everything those four packages bring themselves:

    core      trl, datasets, pydantic, pyyaml, rich, pytest: the hf backend in bf16 (and the test runner)
    unsloth   unsloth, unsloth-zoo, bitsandbytes: 4-bit (hf and unsloth) and the unsloth backend, minus core
    vllm      vllm, vllm-bnb-plugin: fast_inference, minus core and unsloth (far over the 64 MiB a device run
              carries; for machines that can be given a large wheelhouse)

    python3 tests/gpu/wheelhouse.py pins core --python-version 3.11 --platform manylinux_2_28_x86_64
    python3 tests/gpu/wheelhouse.py parts wheelhouse/parts wheelhouse/core wheelhouse/unsloth --max-mib 60

Standard library only (and the `packaging` that pip vendors), so it runs wherever pip does. Used by
tests/gpu/build_wheelhouse.sh.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

try:
    from packaging.markers import Marker
except ImportError:  # a bare Python: pip carries its own copy
    from pip._vendor.packaging.markers import Marker

ROOT = Path(__file__).resolve().parents[2]
PREINSTALLED = ["torch", "transformers", "peft", "accelerate"]
SETS = {
    "core": ["trl", "datasets", "pydantic", "pyyaml", "rich", "pytest"],
    "unsloth": ["unsloth", "unsloth-zoo", "bitsandbytes"],
    "vllm": ["vllm", "vllm-bnb-plugin"],
}
ORDER = list(SETS)
# Locked (unsloth depends on it) but left out: the PyPI wheel is built for torch 2.10 and its kernels never load
# beside the locked torch 2.13; unsloth then uses PyTorch attention. 100+ MB the wheelhouse does not need.
LEFT_OUT = {"xformers"}


def marker_environment(python_version: str, platform_tag: str) -> dict[str, str]:
    """The PEP 508 marker values of a CPython `python_version` on a manylinux/musllinux `platform_tag`."""
    match = re.search(r"(x86_64|aarch64)$", platform_tag)
    if not platform_tag.startswith(("manylinux", "musllinux", "linux")) or not match:
        raise SystemExit(f"platform {platform_tag!r}: expected a Linux x86_64/aarch64 tag like manylinux_2_28_x86_64")
    full = python_version if python_version.count(".") == 2 else f"{python_version}.0"
    return {
        "python_version": ".".join(full.split(".")[:2]),
        "python_full_version": full,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": match.group(1),
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


class Lock:
    def __init__(self, path: Path, environment: dict[str, str]):
        self.environment = environment
        self.packages: dict[str, list[dict]] = {}
        for package in tomllib.loads(path.read_text())["package"]:
            self.packages.setdefault(package["name"], []).append(package)

    def applies(self, marker: str | None) -> bool:
        return marker is None or Marker(marker).evaluate(self.environment)

    def package(self, name: str, version: str | None = None) -> dict:
        candidates = self.packages[name]
        if version is not None:
            return next(package for package in candidates if package["version"] == version)
        if len(candidates) == 1:
            return candidates[0]
        # A fork: the version whose resolution markers match the target.
        for package in candidates:
            if any(self.applies(marker) for marker in package.get("resolution-markers", [])):
                return package
        raise SystemExit(f"uv.lock holds {name} at several versions and none matches the target platform")

    def closure(self, roots: list[str]) -> dict[str, str]:
        """name -> locked version of the roots and everything they need on the target."""
        found: dict[str, str] = {}
        todo = [(root, None, ()) for root in roots]
        seen_extras: set[tuple[str, str]] = set()
        while todo:
            name, version, extras = todo.pop()
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


def pins(lock: Lock, wanted: str) -> dict[str, str]:
    """The set's packages: its roots' closure minus what the machine has and what earlier sets hold."""
    exclude = set(lock.closure(PREINSTALLED))
    for name in ORDER[: ORDER.index(wanted)]:
        exclude |= set(lock.closure(SETS[name]))
    exclude |= LEFT_OUT
    return {name: version for name, version in sorted(lock.closure(SETS[wanted]).items()) if name not in exclude}


def parts(sources: list[Path], out: Path, max_mib: float) -> list[list[Path]]:
    """Hard-link the wheels of `sources` into out/part-1, part-2, ... of at most `max_mib` each (largest first,
    each into the first part with room), for a transfer with a size limit; run_offline.sh installs them in turn."""
    wheels = sorted((w for source in sources for w in source.glob("*.whl")), key=lambda w: -w.stat().st_size)
    limit = max_mib * 1024**2
    bins: list[list[Path]] = []
    for wheel in wheels:
        size = wheel.stat().st_size
        if size > limit:
            raise SystemExit(f"{wheel.name} alone is {size / 1024**2:.1f} MiB, over the {max_mib} MiB limit")
        target = next((b for b in bins if sum(w.stat().st_size for w in b) + size <= limit), None)
        if target is None:
            bins.append(target := [])
        target.append(wheel)
    for index, wheels_in_part in enumerate(bins, start=1):
        folder = out / f"part-{index}"
        folder.mkdir(parents=True, exist_ok=True)
        for wheel in wheels_in_part:
            link = folder / wheel.name
            if not link.exists():
                link.hardlink_to(wheel)
        size = sum(w.stat().st_size for w in wheels_in_part) / 1024**2
        print(f"{folder}: {len(wheels_in_part)} wheels, {size:.1f} MiB")
    return bins


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pin = commands.add_parser("pins", help="print a set's locked pins, name==version")
    pin.add_argument("set", choices=ORDER)
    pin.add_argument("--python-version", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    pin.add_argument("--platform", default="manylinux_2_28_x86_64")
    pin.add_argument("--lock", type=Path, default=ROOT / "uv.lock")
    split = commands.add_parser("parts", help="split downloaded wheels into parts of at most --max-mib")
    split.add_argument("out", type=Path)
    split.add_argument("sources", type=Path, nargs="+")
    split.add_argument("--max-mib", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.command == "parts":
        parts(args.sources, args.out, args.max_mib)
        return
    lock = Lock(args.lock, marker_environment(args.python_version, args.platform))
    for name, version in pins(lock, args.set).items():
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
