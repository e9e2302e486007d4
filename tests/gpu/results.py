"""The GPU check's results: one JSON file that every step adds to, and the short markdown summary made from it.

    python tests/gpu/results.py environment OUT/results.json              # versions, GPU, driver, the carry
    python tests/gpu/results.py preflight OUT/results.json PREFLIGHT.json
    python tests/gpu/results.py pip-check OUT/results.json PIP_CHECK.txt EXIT_STATUS   # pip check's output, kept
    python tests/gpu/results.py summary OUT/results.json OUT/summary.md   # also printed

results.json holds `environment` (Python, torch and the packages that ran, the GPU, its driver, the memory cap),
`preflight` (what does not import; `mismatches`: the machine's packages that a carried wheel's requirement does
not accept), `pip_check` (pip check's exit status and lines), `cases` (one object per case: status passed /
failed / skipped, the reason, step times, peak memory, the memory plan it is held against: `planned GiB` is the
plan's need without the CUDA context, which torch's allocator never counts) and `finished_at`. A case is written
when it ends, so a run killed by its time limit keeps the cases that finished. Standard library only: the
machine's python3 runs it before anything is installed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PACKAGES = [
    "torch",
    "torchvision",
    "transformers",
    "accelerate",
    "peft",
    "trl",
    "datasets",
    "pydantic",
    "bitsandbytes",
    "unsloth",
    "unsloth_zoo",
    "vllm",
    "triton",
]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def save(path: Path, results: dict[str, Any]) -> None:
    """Write atomically (a reader never sees half a file; a kill between cases keeps the last whole one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(results, indent=1, default=str) + "\n")
    partial.replace(path)


def update(path: Path, **sections: Any) -> dict[str, Any]:
    results = load(path)
    results.update(sections)
    save(path, results)
    return results


def add_case(path: Path, name: str, case: dict[str, Any]) -> None:
    results = load(path)
    results.setdefault("cases", {})[name] = case
    save(path, results)


def package_versions(names: list[str] = PACKAGES) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def environment() -> dict[str, Any]:
    """What ran: Python, package versions (by metadata: nothing imported), and nvidia-smi's GPU and driver."""
    gpu = None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode == 0 and done.stdout.strip():
            name, memory, driver = (part.strip() for part in done.stdout.strip().splitlines()[0].split(","))
            gpu = {"name": name, "memory": memory, "driver": driver}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "packages": package_versions(),
        "gpu": gpu,
        "memory_cap_gib": float(os.environ.get("GPU_CHECK_MEMORY_CAP_GIB", "24")),
        "dry_run": os.environ.get("GPU_CHECK_DRY_RUN") == "1",
    }


def _gib(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def _seconds(values: Any) -> str:
    if not values:
        return "-"
    return ", ".join(f"{v:.1f}" for v in values if isinstance(v, int | float)) or "-"


def summary_markdown(results: dict[str, Any]) -> str:
    """The short markdown summary: what ran where, the preflight, and one table row per case."""
    env = results.get("environment", {})
    packages = env.get("packages", {})
    gpu = env.get("gpu") or {}
    ran = ", ".join(f"{name} {version}" for name, version in packages.items() if version)
    title = "GPU check (dry run, no GPU)" if env.get("dry_run") else "GPU check"
    lines = [f"# {title}: {env.get('date', '?')}", ""]
    where = f"{gpu.get('name')} ({gpu.get('memory')}, driver {gpu.get('driver')})" if gpu else "no GPU visible"
    cap = env.get("memory_cap_gib")
    lines.append(f"- machine: {where}; Python {env.get('python', '?')}; GPU memory capped to {cap} GiB")
    lines.append(f"- ran: {ran or '?'}")
    carry = results.get("wheelhouse")
    if carry:
        wheels, mib, seconds = carry.get("wheels"), carry.get("mib"), carry.get("install_s")
        lines.append(f"- wheelhouse: {wheels} wheels, {mib} MiB, installed in {seconds} s")
    preflight = results.get("preflight")
    if preflight is not None:
        if preflight.get("problems") or preflight.get("missing"):
            lines.append("- preflight: **failed**, the check stopped there:")
            lines += [f"  - cannot import {module}: {why}" for module, why in preflight.get("problems", {}).items()]
            if preflight.get("missing"):
                lines.append(f"  - not installed: {', '.join(preflight['missing'])}")
        else:
            optional = preflight.get("optional_missing") or {}
            note = f" (not installed, its cases skip: {', '.join(optional)})" if optional else ""
            lines.append(f"- preflight: every module a run needs imports{note}")
        mismatches = preflight.get("mismatches") or []
        if mismatches:
            count = len(mismatches)
            lines.append(f"- preflight: **{count} version mismatch(es)** between this machine and the wheels:")
            lines += [f"  - {line}" for line in mismatch_lines(mismatches)]
        elif "mismatches" in preflight:
            lines.append("- preflight: this machine's packages meet every requirement of the carried wheels")
    pip_check = results.get("pip_check")
    if pip_check is not None:
        found = pip_check.get("lines") or []
        expected = pip_check.get("left_out") or []
        other = [line for line in found if line not in expected]
        if pip_check.get("status") == 0:
            lines.append("- pip check: no broken requirements")
        else:
            known = f", {len(expected)} of them naming packages left out by design" if expected else ""
            lines.append(f"- pip check: exit {pip_check.get('status')}, {len(found)} line(s){known} (results.json):")
            lines += [f"  - {line}" for line in other[:8]]
    cases = results.get("cases") or {}
    if cases:
        lines += [
            "",
            "| case | status | step times (s) | peak allocated GiB | peak reserved GiB | planned GiB | wall s |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for name, case in cases.items():
            status = case.get("status", "?")
            plan = case.get("plan") or {}
            lines.append(
                f"| {name} | {status} | {_seconds(case.get('step_time_s'))} | {_gib(case.get('peak_allocated_gib'))} "
                f"| {_gib(case.get('peak_reserved_gib'))} | {_gib(plan.get('allocator_gib'))} | "
                f"{case.get('wall_s', '-')} |"
            )
        reasons = [(name, case["reason"]) for name, case in cases.items() if case.get("reason")]
        if reasons:
            lines.append("")
            lines += [f"- {name}: {reason}" for name, reason in reasons]
    if results.get("finished_at"):
        lines += ["", f"Finished {results['finished_at']}; total {results.get('total_s', '?')} s."]
    return "\n".join(lines) + "\n"


def mismatch_lines(findings: list[dict[str, Any]]) -> list[str]:
    """One line a finding of the preflight (wheelhouse.requirement_mismatches): 'peft 0.17.1: unsloth-zoo
    2026.10.9 requires >=0.18', or '... (not installed): ...'."""
    return [
        f"{f['package']} {f['installed'] or '(not installed)'}: {f['by']} requires {f['required']}" for f in findings
    ]


def pip_check(text: str, status: int) -> dict[str, Any]:
    """pip check's exit status and lines, and which lines only name a package the wheelhouse leaves out on purpose
    (wheelhouse.NOT_IMPORTED: "unsloth 2026.10.9 requires xformers, which is not installed.")."""
    try:  # beside this file: run as a script (the device), imported late since it needs `packaging`
        from wheelhouse import NOT_IMPORTED, normalize
    except ImportError:  # imported as the tests' package `gpu`
        from gpu.wheelhouse import NOT_IMPORTED, normalize

    lines = [line.strip() for line in text.splitlines() if line.strip()]
    left_out = []
    for line in lines:
        words = line.split()
        if line.endswith("which is not installed.") and "requires" in words:
            name = words[words.index("requires") + 1].rstrip(",")
            if normalize(name) in NOT_IMPORTED:
                left_out.append(line)
    return {"status": status, "lines": lines, "left_out": left_out}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command, path = args[0], Path(args[1])
    if command == "environment":
        update(path, environment=environment())
    elif command == "preflight":
        update(path, preflight=json.loads(Path(args[2]).read_text()))
    elif command == "pip-check":
        update(path, pip_check=pip_check(Path(args[2]).read_text(), int(args[3])))
    elif command == "wheelhouse":
        update(path, wheelhouse={"wheels": int(args[2]), "mib": float(args[3]), "install_s": float(args[4])})
    elif command == "summary":
        results = load(path)
        if "finished_at" not in results:
            started = float(os.environ.get("GPU_CHECK_STARTED", time.time()))
            results = update(
                path,
                finished_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                total_s=round(time.time() - started, 1),
            )
        text = summary_markdown(results)
        Path(args[2]).write_text(text)
        print(text)
    else:
        print(f"unknown command {command!r}: environment, preflight, pip-check, wheelhouse or summary", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
