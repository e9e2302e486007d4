"""Writing a run's files so that a reader, or a kill, finds the old content or the new, never half of either.

- `write_atomic`: a file (metrics.jsonl cut back on resume, summary.json, a sweep's state, a report, a plot) is
  written to a hidden temporary file beside it, fsynced, and renamed over it.
- `replace_dir`: a directory (the run's adapter/) is renamed into place once the old one is moved aside
  (`set_aside`, where a reader looks when a kill fell between the two renames).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from train.errors import writing


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Replace `path` with `data` (text is written as UTF-8), creating its directory if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # A full disk is named with this path (a write to an open file names none) and the size being written.
        with writing(path, f"{len(raw) / 2**10:.0f} KB"), os.fdopen(handle, "wb") as file:
            file.write(raw)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a run's files are for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a machine crash once the directory is synced
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def replace_dir(new: Path, target: Path) -> None:
    """Put `new` at `target`: the old one is moved aside first, so a reader finds one complete adapter or the other."""
    old = set_aside(target)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def set_aside(target: Path) -> Path:
    """Where `replace_dir` keeps the previous directory while it renames the new one into place."""
    return target.with_name(f".{target.name}.old")
