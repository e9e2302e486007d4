"""tests/gpu runs only where CUDA is: everywhere else each of its cases is skipped with the reason, and the skip is
written to the check's results (GPU_CHECK_OUT/results.json) as well, so a dry run's results say what would run.

They are marked `gpu` (select or deselect them with `-m gpu` / `-m "not gpu"`). On a machine without network,
tests/gpu/run_offline.sh installs what they need from a wheelhouse first (docs/gpu.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def cuda_missing() -> str | None:
    """Why tests/gpu cannot run here, or None when a CUDA GPU is visible."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return (
            f"no CUDA GPU here (torch {torch.__version__}: torch.cuda.is_available() is False); tests/gpu runs on a "
            "CUDA machine, see docs/gpu.md"
        )
    return None


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if HERE in Path(item.path).resolve().parents]
    reason = cuda_missing() if mine else None
    for item in mine:
        item.add_marker(pytest.mark.gpu)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
    out = os.environ.get("GPU_CHECK_OUT")
    if reason and out:  # the dry run and a machine without CUDA: every collected case, skipped, in the results
        sys.path.insert(0, str(HERE))
        import results

        for item in mine:
            case = item.callspec.params.get("case", item.name) if hasattr(item, "callspec") else item.name
            results.add_case(Path(out) / "results.json", case, {"status": "skipped", "reason": reason})
