"""What a user reward's call may not do to the run's process unnoticed: move its current directory, close or
replace its stdout/stderr file descriptors, or write past the capture of its output.

    with process_guarded(where, sink, later, counted_as):
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
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

from rewards.core import UserRewardRaised

_CHUNK = 1 << 16
_STREAMS = {1: "stdout", 2: "stderr"}
_console_stderr: list[int] = []  # the run's own stderr descriptor, saved while a call's output is captured


def console_stderr() -> int:
    """The file descriptor of the run's stderr: fd 2, or the copy saved while fd 2 captures a reward's output
    (for a message that must reach the person while a reward runs: the time limit's last word)."""
    return _console_stderr[-1] if _console_stderr else 2


@contextlib.contextmanager
def process_guarded(where: str, sink: TextIO, later: Callable[[str], object], counted_as: str) -> Iterator[None]:
    """Run the body with its output captured into `sink` at the descriptor level; restore and name any change to
    the current directory or to file descriptors 1 and 2 (see the module docstring). What a thread started during
    the body and still running after it prints goes to `later`, not the console (`_ThreadsLeftRunning`;
    `counted_as` names where it is counted, for the note said when such a thread first prints)."""
    threads_before = set(threading.enumerate())
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
    _console_stderr.append(saved.get(2, 2))
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        _console_stderr.pop()
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
        left = [thread for thread in threading.enumerate() if thread not in threads_before and thread.is_alive()]
        if left:
            _ThreadsLeftRunning.follow(left, where, later, counted_as)
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


class _ThreadsLeftRunning:
    """sys.stdout and sys.stderr once a reward has left a thread running after its call: what such a thread
    prints goes to its reward's `later` (counted with the reward's output, not shown), every other thread's output
    goes where it went. A thread the reward left to print on its own (a loop
    with print, a progress bar) would otherwise write over the run's console between and during steps. The first
    time one prints, one note names the reward and the thread. Installed only when a reward leaves a thread running;
    the console streams are wrapped, not replaced (every other attribute is theirs). What such a thread writes to
    file descriptors 1 and 2 directly (os.write, C code) is not caught after the call."""

    _followed: dict[int, tuple[threading.Thread, str, Callable[[str], object], str]] = {}
    _noted: set[str] = set()

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @classmethod
    def follow(
        cls, threads: list[threading.Thread], where: str, later: Callable[[str], object], counted_as: str
    ) -> None:
        for ident, (thread, *_) in list(cls._followed.items()):
            if not thread.is_alive():
                del cls._followed[ident]
        for thread in threads:
            if thread.ident is not None:
                cls._followed[thread.ident] = (thread, where, later, counted_as)
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, cls):
                setattr(sys, name, cls(stream))

    def write(self, text: str) -> int:
        followed = self._followed.get(threading.get_ident())
        if followed is None or followed[0] is not threading.current_thread():
            return self._stream.write(text)
        thread, where, later, counted_as = followed
        if where not in self._noted:
            self._noted.add(where)
            note = (
                f"note: {where} left a thread running after its call ({thread.name}) that prints: what it prints goes "
                f"with the reward's own output (counted in {counted_as}), not to the console. A reward should finish "
                "its work before it returns.\n"
            )
            console = sys.stderr._stream if isinstance(sys.stderr, _ThreadsLeftRunning) else sys.stderr
            with contextlib.suppress(Exception):
                console.write(note)
        later(text)
        return len(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


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
