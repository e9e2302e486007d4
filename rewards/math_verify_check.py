"""Every math-verify comparison, made in one long-lived child process under a time bound and a memory bound.

    compare_many([("\\frac{1}{2}", "0.5")])  # -> [Verdict.EQUAL]

math-verify (sympy underneath) bounds neither: its signal.alarm timeouts work only in the main thread and cannot
stop sympy inside C code, and nothing bounds its memory (`10^{10^{10^{10}}}` against `x^2+1` took 15-51 s and
8.5-9.6 GB in the calling process). So the calling process never imports it. A child process parses both sides
and compares them, one request of many pairs at a time, with:
- a time bound: the child's interval timer stops one comparison after MATH_VERIFY_SECONDS (the exception leaves
  sympy at its next bytecode); if C code holds on, the caller stops waiting MATH_VERIFY_GRACE_SECONDS later,
  kills the child and starts another for the rest of the request (a restart costs the sympy import, ~2 s);
- a memory bound: RLIMIT_AS of MATH_VERIFY_MEMORY_BYTES in the child, so an allocation past it fails there and
  never in the caller; a comparison that took the child's peak address space past half the bound is UNDECIDED
  (math-verify would read the MemoryError as "not equal"), and that child is replaced after its request;
- no orphan: the child asks Linux to SIGKILL it when its parent dies (PR_SET_PDEATHSIG) and exits at the end of
  its stdin, so a SIGKILLed trainer leaves no child behind (tests/test_rewards_math_verify.py pins both bounds,
  the replacement and the orphan case).
A comparison stopped by either bound is UNDECIDED: "could not decide", as opposed to DIFFERENT.

The child is plain `python -c` over JSON lines (nothing of the caller's __main__ is re-imported, as multiprocessing's
spawn would), serves one caller at a time (a lock), and is started on first use. Verdicts are cached by
(prediction, gold) in the caller: the completions of one prompt share a gold answer and often an answer.
"""

from __future__ import annotations

import ctypes
import enum
import gc
import json
import os
import re
import resource
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

MATH_VERIFY_SECONDS = 3.0
MATH_VERIFY_GRACE_SECONDS = 2.0
MATH_VERIFY_MEMORY_BYTES = 1 << 30
# Starting the child imports sympy: seconds on a cold machine.
CHILD_STARTUP_SECONDS = 120.0
VERDICT_CACHE_SIZE = 16_384
_READY = "ready"
_CLEARED = "cleared"
_PR_SET_PDEATHSIG = 1
# A `$` that is not escaped: `\\$18.90` (MATH's dollar amounts) is a currency sign inside LaTeX, not a delimiter.
_DOLLAR_DELIMITER = re.compile(r"(?<!\\)\$")


class Verdict(enum.Enum):
    """The outcome of one comparison: the prediction EQUAL to the gold or DIFFERENT, the gold not parseable by
    math-verify (GOLD_UNPARSEABLE), or UNDECIDED (stopped by the time or memory bound)."""

    EQUAL = "equal"
    DIFFERENT = "different"
    GOLD_UNPARSEABLE = "gold_unparseable"
    UNDECIDED = "undecided"


Pair = tuple[str | None, str]


class MathVerifyChild:
    """One child process and the pipe to it; `compare_many` starts it when needed and replaces it after an overrun."""

    def __init__(
        self,
        seconds: float = MATH_VERIFY_SECONDS,
        memory_bytes: int = MATH_VERIFY_MEMORY_BYTES,
        wait_seconds: float | None = None,
    ) -> None:
        """seconds and memory_bytes: the child's bounds for one comparison; wait_seconds: how long the caller waits
        for one reply before it kills the child (default: seconds + MATH_VERIFY_GRACE_SECONDS)."""
        self.seconds, self.memory_bytes = seconds, memory_bytes
        self.wait_seconds = seconds + MATH_VERIFY_GRACE_SECONDS if wait_seconds is None else wait_seconds
        self.lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0  # children started, and requests sent to them: for tests and the fuzz benchmark
        self.requests = 0
        self._pending = b""

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def compare_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
        """One verdict per (prediction, gold) pair, in order. A pair whose reply does not come within the bound
        (plus grace) is UNDECIDED, and the rest go to a fresh child."""
        verdicts: list[Verdict] = []
        with self.lock:
            while len(verdicts) < len(pairs):
                self._start_if_needed()
                verdicts += self._request(pairs[len(verdicts) :])
            self._replace_if_bloated()
        return verdicts

    def clear(self) -> None:
        """Empty the child's parse cache (when a child is running)."""
        with self.lock:
            if self.process is not None and self.process.poll() is None:
                self._send({"clear": True})
                if self._read_line(CHILD_STARTUP_SECONDS) != _CLEARED:
                    self.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()
            self.process = None

    def _request(self, pairs: Sequence[Pair]) -> list[Verdict]:
        """Verdicts for the pairs the child answered in time, then UNDECIDED for the one it did not (if any)."""
        verdicts: list[Verdict] = []
        self.requests += 1
        try:
            self._send({"pairs": [list(pair) for pair in pairs]})
        except OSError:  # the child died since it was started
            self.stop()
            return [Verdict.UNDECIDED]
        for _ in pairs:
            verdict = self._reply(self.wait_seconds)
            if verdict is None:
                self.stop()
                return [*verdicts, Verdict.UNDECIDED]
            verdicts.append(verdict)
        return verdicts

    def _reply(self, timeout: float) -> Verdict | None:
        line = self._read_line(timeout)
        try:
            return None if line is None else Verdict(json.loads(line))
        except ValueError:
            return None

    def _start_if_needed(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.stop()
        path = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
        bounds = f"{self.seconds!r}, {self.memory_bytes!r}, {os.getpid()}"
        code = f"from rewards.math_verify_check import serve; serve({bounds})"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # math-verify logs every timeout and parse failure
            env=env,
        )
        self.starts += 1
        self._pending = b""
        if self._read_line(CHILD_STARTUP_SECONDS) != _READY:
            self.stop()
            raise RuntimeError("the math-verify child process did not start (is math-verify installed?)")

    def _send(self, request: dict) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()

    def _read_line(self, timeout: float) -> str | None:
        """The child's next reply line, or None when it sends none within `timeout` seconds or closes its end."""
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._pending:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    def _replace_if_bloated(self) -> None:
        # Past half the bound once, a child can no longer tell the next memory overrun (see _bounded_verdict).
        if self.process is not None and _peak_address_space(self.process.pid) > self.memory_bytes // 2:
            self.stop()


def _peak_address_space(pid: int | str = "self") -> int:
    """VmPeak of a process in bytes (Linux), 0 where /proc does not say."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


_CHILD = MathVerifyChild()
_VERDICTS: OrderedDict[Pair, Verdict] = OrderedDict()
_VERDICTS_LOCK = threading.Lock()


def _forget_child_after_fork() -> None:
    # The forked copy must not share the parent's pipe: it starts its own child on first use.
    global _CHILD, _VERDICTS_LOCK
    _CHILD = MathVerifyChild(_CHILD.seconds, _CHILD.memory_bytes, _CHILD.wait_seconds)
    _VERDICTS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_child_after_fork)


def compare_many(pairs: Sequence[Pair]) -> list[Verdict]:
    """The verdict of each (prediction, gold) pair, by math-verify in the child process; cached by pair.

    A prediction of None (no answer) is DIFFERENT when the gold parses; both sides are LaTeX answers without
    delimiters, wrapped in `$...$` unless they hold `\\boxed` or an unescaped `$`.
    """
    with _VERDICTS_LOCK:
        known = {pair: _VERDICTS[pair] for pair in pairs if pair in _VERDICTS}
    unknown = list(dict.fromkeys(pair for pair in pairs if pair not in known))
    if unknown:
        found = dict(zip(unknown, _CHILD.compare_many(unknown), strict=True))
        with _VERDICTS_LOCK:
            for pair, verdict in found.items():
                _VERDICTS[pair] = verdict
            while len(_VERDICTS) > VERDICT_CACHE_SIZE:
                _VERDICTS.popitem(last=False)
        known.update(found)
    return [known[pair] for pair in pairs]


def clear_cache() -> None:
    """Forget every verdict, here and in the child's parse cache."""
    with _VERDICTS_LOCK:
        _VERDICTS.clear()
    _CHILD.clear()


def child_pid() -> int | None:
    """The process id of the running child, or None before the first comparison or after an overrun."""
    return _CHILD.pid


# --- the child ---


class _Overrun(BaseException):
    """Raised by the child's timer; a BaseException, so math-verify's `except Exception` does not swallow it."""


_armed = False


def _on_timer(signum: int, frame: object) -> None:
    if _armed:
        raise _Overrun


def serve(seconds: float, memory_bytes: int, parent_pid: int) -> None:
    """The child's loop: one JSON request per stdin line, one JSON reply line per pair (or "cleared")."""
    _die_with_parent(parent_pid)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    replies = sys.stdout
    sys.stdout = sys.stderr  # anything printed by sympy or math-verify stays out of the replies
    signal.signal(signal.SIGALRM, _on_timer)
    import math_verify  # noqa: F401  (sympy, before any timer runs: an import stopped halfway stays broken)

    _bounded_verdict("1", "1", seconds, memory_bytes)
    print(_READY, file=replies, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("clear"):
            _parse.cache_clear()
            gc.collect()
            print(_CLEARED, file=replies, flush=True)
            continue
        for pred, gold in request["pairs"]:
            verdict = _bounded_verdict(pred, gold, seconds, memory_bytes)
            print(json.dumps(verdict.value), file=replies, flush=True)


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def _bounded_verdict(pred: str | None, gold: str, seconds: float, memory_bytes: int) -> Verdict:
    """The verdict within `seconds`, UNDECIDED past them or past the memory bound.

    Past the memory bound, an allocation fails with MemoryError, which math-verify catches like any error and
    reads as "not equal": so a comparison that pushed the peak address space past half the bound (big integers
    double on the way up) is UNDECIDED whatever math-verify said.
    """
    global _armed
    peak_before = _peak_address_space()
    _armed = True
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        verdict = _verdict(pred, gold)
        _armed = False
    except (_Overrun, MemoryError, RecursionError):
        verdict = Verdict.UNDECIDED
    finally:
        _armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
    peak_after = _peak_address_space()
    if peak_after > peak_before and peak_after > memory_bytes // 2:
        verdict = Verdict.UNDECIDED
    if verdict is Verdict.UNDECIDED:
        _parse.cache_clear()  # a cache filled while the bound was hit may hold half-built values
        gc.collect()
    return verdict


def _verdict(pred: str | None, gold: str) -> Verdict:
    from math_verify import verify

    gold_parsed = _parse(gold)
    if all(isinstance(value, str) for value in gold_parsed):  # only the raw text came back: nothing parsed
        return Verdict.GOLD_UNPARSEABLE
    answer = _parse(pred) if pred is not None else ()
    if not answer:
        return Verdict.DIFFERENT
    # Timeouts off: math-verify's own would return "not equal" (or "unparsed") where ours says UNDECIDED.
    return Verdict.EQUAL if verify(list(gold_parsed), list(answer), timeout_seconds=None) else Verdict.DIFFERENT


@lru_cache(maxsize=4096)
def _parse(answer: str) -> tuple:
    from math_verify import parse

    wrapped = answer if ("\\boxed" in answer or _DOLLAR_DELIMITER.search(answer)) else f"${answer}$"
    return tuple(parse(wrapped, parsing_timeout=None))
