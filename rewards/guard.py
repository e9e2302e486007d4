"""What a user reward's call may not do to the run's process unnoticed: move its current directory, close or
replace its stdout/stderr file descriptors, or write past the capture of its output.

    with process_guarded(where, sink):
        scores = user_function(...)

For the duration of the call, file descriptors 1 and 2 point at a temporary file (os.dup2), so output written
below Python's sys.stdout (os.write(1, ...), C code, a thread's print to sys.__stdout__) is captured with the rest;
sys.stdout and sys.stderr go to `sink` as before. After the call the descriptors and the directory are put back
from what was saved before it; the captured bytes are decoded into `sink` in chunks (it keeps a head and counts
every character). A directory that changed, or a descriptor closed or replaced, raises UserRewardRaised naming
what the reward did, after it was undone; what a training run then does is RewardFunction's (a failure of the
reward, counted). An exception of the reward's own wins over these. Rewards are called one at a time (TRL calls
them in turn), so one capture is in place at a time; what another thread of the run writes to fd 1 or 2 during a
call is captured with the reward's output.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import TextIO

from rewards.core import UserRewardRaised

_CHUNK = 1 << 16
_STREAMS = {1: "stdout", 2: "stderr"}


@contextlib.contextmanager
def process_guarded(where: str, sink: TextIO) -> Iterator[None]:
    """Run the body with its output captured into `sink` at the descriptor level; restore and name any change to
    the current directory or to file descriptors 1 and 2 (see the module docstring)."""
    cwd = _cwd()
    _flush_all()
    saved: dict[int, int] = {}
    for fd in _STREAMS:
        with contextlib.suppress(OSError):  # a descriptor closed before the call is left as it was
            saved[fd] = os.dup(fd)
    capture = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    for fd in saved:
        os.dup2(capture.fileno(), fd)
    captured = os.fstat(capture.fileno())
    problems: list[str] = []
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        _flush_all()
        for fd, copy in saved.items():
            try:
                now = os.fstat(fd)
                if (now.st_dev, now.st_ino) != (captured.st_dev, captured.st_ino):
                    problems.append(f"replaced file descriptor {fd} ({_STREAMS[fd]}) with another file")
            except OSError:
                problems.append(f"closed file descriptor {fd} ({_STREAMS[fd]})")
            os.dup2(copy, fd)
            os.close(copy)
        try:
            _drain(capture, sink)
        finally:
            capture.close()
        if cwd is not None and _cwd() != cwd:
            moved_to = _cwd()
            os.chdir(cwd)
            problems.insert(0, f"changed the current directory from {cwd} to {moved_to} (os.chdir)")
    if problems:  # only reached when the call itself returned
        raise UserRewardRaised(
            f"{where} {' and '.join(problems)}; it was put back. A reward must only return its scores, never "
            "change the run's process (its directory or its stdout/stderr): relative paths would move the run's "
            "files, and a closed stdout silences or ends the run."
        )


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the directory was deleted
        return None


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


def _drain(capture: object, sink: TextIO) -> None:
    """The captured bytes, decoded as UTF-8 (bad bytes replaced) into `sink`, a chunk at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    capture.seek(0)  # type: ignore[attr-defined]
    while chunk := capture.read(_CHUNK):  # type: ignore[attr-defined]
        text = decoder.decode(chunk)
        if text:
            sink.write(text)
    tail = decoder.decode(b"", final=True)
    if tail:
        sink.write(tail)
