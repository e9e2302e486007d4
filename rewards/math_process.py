"""math-verify off the main thread: in one long-lived child process, killed and replaced when it overruns.

math-verify bounds its time with signal.alarm, which only the main thread can use. In any other thread (an async
reward, an evaluation thread) a hostile answer such as `9^{9^{9^{9}}}` would make sympy compute forever while
holding the GIL. The child runs the comparison in its own main thread, with math-verify's timeouts on; the caller
waits at most CHILD_TIMEOUT_SECONDS for the reply, and an answer that overruns counts as no match (as a
math-verify timeout does). Requests are serialized by a lock; the child is plain `python -c` over JSON lines, so
nothing of the caller's __main__ is re-imported (as multiprocessing's spawn would).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

# A backstop over math-verify's own timeouts (three of MATH_VERIFY_TIMEOUT_SECONDS: gold, prediction, verify).
CHILD_TIMEOUT_SECONDS = 10.0
# Starting the child imports sympy: seconds on a cold machine.
CHILD_STARTUP_SECONDS = 120.0
_READY = "ready"


class _Child:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen[str] | None = None
        self.replies: queue.Queue[str] = queue.Queue()

    def compare(self, pred: str | None, gold_latex: str) -> bool | None:
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self._start()
            assert self.process is not None and self.process.stdin is not None
            try:
                self.process.stdin.write(json.dumps([pred, str(gold_latex)]) + "\n")
                self.process.stdin.flush()
                return json.loads(self.replies.get(timeout=CHILD_TIMEOUT_SECONDS))
            except (queue.Empty, OSError, ValueError):
                self._stop()
                return False

    def _start(self) -> None:
        package_parent = str(Path(__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from rewards.math_process import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # math-verify logs every timeout
            text=True,
            env=env,
        )
        self.replies = queue.Queue()
        threading.Thread(target=_forward_lines, args=(self.process.stdout, self.replies), daemon=True).start()
        try:
            ready = self.replies.get(timeout=CHILD_STARTUP_SECONDS)
        except queue.Empty:
            ready = None
        if ready != _READY:
            self._stop()
            raise RuntimeError("the math-verify child process did not start (is math-verify installed?)")

    def _stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def _forward_lines(stream: IO[str], replies: queue.Queue[str]) -> None:
    for line in stream:
        replies.put(line.strip())


_CHILD = _Child()


def compare_in_child_process(pred: str | None, gold_latex: str) -> bool | None:
    """math_answers_match computed in the child process; False when it overruns CHILD_TIMEOUT_SECONDS."""
    return _CHILD.compare(pred, gold_latex)


def serve() -> None:
    """The child's loop: one JSON [pred, gold] per input line, one JSON reply per output line."""
    from rewards.answers import MATH_VERIFY_TIMEOUT_SECONDS, compare_math

    replies = sys.stdout
    sys.stdout = sys.stderr  # anything printed by sympy or math-verify stays out of the replies
    compare_math("1", "1", MATH_VERIFY_TIMEOUT_SECONDS)  # import sympy before saying ready
    print(_READY, file=replies, flush=True)
    for line in sys.stdin:
        pred, gold = json.loads(line)
        print(json.dumps(compare_math(pred, gold, MATH_VERIFY_TIMEOUT_SECONDS)), file=replies, flush=True)
