"""math-verify in its child process: verdicts, the time and memory bounds, replacement, caching, and no orphan."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import score

from rewards import Verdict, clear_caches, get_reward, math_answers_match
from rewards import math_verify_check as mvc
from rewards.math_verify_check import MathVerifyChild

HOSTILE = r"<answer>10^{10^{10^{10}}}</answer>"  # took 15-51 s and 8.5-9.6 GB in the caller before the child
ROOT = Path(__file__).resolve().parents[1]


def vm_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def in_a_thread(function, *args):
    """function(*args) in another thread, failing the test if it never returns (a guard, not a timing)."""
    results = []
    worker = threading.Thread(target=lambda: results.append(function(*args)), daemon=True)
    worker.start()
    worker.join(timeout=300)
    assert not worker.is_alive(), "hung"
    return results[0]


def process_is_gone(pid: int, wait_seconds: float = 30.0) -> bool:
    """True once `pid` no longer runs (gone, or a zombie awaiting its reaper), polling up to wait_seconds."""
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as status:
                if any(line.startswith("State:") and "Z" in line.split()[1] for line in status):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def child():
    children = []

    def make(**bounds):
        children.append(MathVerifyChild(**bounds))
        return children[-1]

    yield make
    for made in children:
        made.stop()


# --- verdicts ---


@pytest.mark.parametrize("gold", [r"\frac{", "unparseable_latex"])
def test_math_accuracy_reward_is_not_applicable_when_the_gold_does_not_parse(gold):
    # open-r1 skips such a row (None); wrapped in $...$ the gold used to count as parsed and every answer as wrong.
    assert score(
        "math_accuracy_reward", [r"<answer>\frac{1}{2}</answer>", "<answer>1</answer>"], answer=[gold] * 2
    ) == [
        None,
        None,
    ]
    assert math_answers_match("1", gold) is None


def test_len_reward_counts_an_unparseable_gold_as_correct_as_open_r1_does():
    # open-r1 tests/test_rewards.py test_unparseable_solution: the shorter completion gets 0.5.
    completions = [r"\boxed{answer}", r"\boxed{answer} " + "x" * 10]
    reward = get_reward("len_reward", checker="math")
    assert score(reward, completions, answer=["unparseable_latex"] * 2) == [0.5, -0.5]


def test_cosine_scaled_reward_gives_max_value_correct_for_an_unparseable_gold_as_open_r1_does():
    reward = get_reward("cosine_scaled_reward", checker="math", max_value_correct=0.9)
    assert score(reward, [r"\boxed{answer}"], answer=["unparseable_latex"]) == [0.9]


def test_math_verdicts_in_one_request():
    pairs = [("0.5", r"\frac12"), ("3", "x^2+1"), (None, "2"), ("1", r"\frac{"), ("1", "x" * 1001)]
    expected = [Verdict.EQUAL, Verdict.DIFFERENT, Verdict.DIFFERENT, Verdict.GOLD_UNPARSEABLE]
    assert mvc.compare_many(pairs[:4]) == expected
    from rewards import math_verdicts

    assert math_verdicts(pairs) == [*expected, Verdict.GOLD_UNPARSEABLE]  # a gold over the length bound


def test_math_answers_match_works_outside_the_main_thread():
    # math-verify's signal timeouts need the main thread; in the child they are not used at all.
    assert in_a_thread(math_answers_match, "0.5", r"\frac12") is True


# --- the bounds ---


def test_a_hostile_answer_is_undecided_and_does_not_grow_the_calling_process():
    reward = get_reward("math_accuracy_reward")
    assert score(reward, ["<answer>1</answer>"], answer=["1"]) == [1.0]  # the child is up
    before = vm_rss_bytes()
    completions = [HOSTILE, "<answer>x^2 + 1</answer>"]
    assert in_a_thread(lambda: score(reward, completions, answer=["x^2+1"] * 2)) == [None, 1.0]
    assert vm_rss_bytes() - before < 50 * 2**20


def test_a_comparison_past_the_memory_bound_is_undecided_and_the_child_is_replaced(child):
    made = child(seconds=60, memory_bytes=250 * 2**20)
    assert made.compare_many([("1", "1")]) == [Verdict.EQUAL]
    limits = Path(f"/proc/{made.pid}/limits").read_text().splitlines()
    assert any(line.startswith("Max address space") and " 262144000 " in line for line in limits)
    # 2^(2^31) needs 256 MiB; its MemoryError inside math-verify would read as "different".
    assert made.compare_many([("2^{2^{31}}", "x^2+1")]) == [Verdict.UNDECIDED]
    assert made.process is None  # replaced before the next request
    assert made.compare_many([("1/2", "0.5")]) == [Verdict.EQUAL]
    assert made.starts == 2


def test_a_child_that_overruns_the_wait_is_killed_and_a_fresh_one_serves_the_rest(child):
    # The child's own timer (60 s) would stop it later; the caller waits 1 s, kills it, and goes on.
    made = child(seconds=60, wait_seconds=1)
    assert made.compare_many([("1", "1")]) == [Verdict.EQUAL]
    first_pid = made.pid
    assert made.compare_many([("9^{9^{9^{9}}}", "5"), ("1/2", "0.5")]) == [Verdict.UNDECIDED, Verdict.EQUAL]
    assert made.starts == 2 and made.pid != first_pid
    assert process_is_gone(first_pid)


# --- caching ---


def test_verdicts_are_cached_in_the_caller_and_clear_caches_forgets_them():
    assert math_answers_match("0.25", r"\frac14") is True
    requests = mvc._CHILD.requests
    assert math_answers_match("0.25", r"\frac14") is True
    assert mvc._CHILD.requests == requests  # from the cache
    clear_caches()
    assert math_answers_match("0.25", r"\frac14") is True
    assert mvc._CHILD.requests == requests + 1


def test_a_request_asks_the_child_once_for_each_distinct_pair(monkeypatch):
    asked = []
    ask = mvc._CHILD.compare_many
    monkeypatch.setattr(mvc._CHILD, "compare_many", lambda pairs: asked.append(list(pairs)) or ask(pairs))
    clear_caches()
    assert mvc.compare_many([("2", "2"), ("3", "2"), ("2", "2")]) == [Verdict.EQUAL, Verdict.DIFFERENT, Verdict.EQUAL]
    assert asked == [[("2", "2"), ("3", "2")]]


# --- no orphan ---

PARENT = """
import sys, threading, time
from rewards.math_verify_check import MathVerifyChild
child = MathVerifyChild(seconds=600)
child.compare_many([("1", "1")])
if sys.argv[1] == "busy":  # the child is computing when the parent dies: it does not read its stdin
    threading.Thread(target=child.compare_many, args=([("9^{9^{9^{9}}}", "5")],), daemon=True).start()
    time.sleep(1)
print(child.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_the_child_dies_with_a_parent_that_is_sigkilled(tmp_path, state):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, str(script), state], stdout=subprocess.PIPE, text=True, env=env)
    try:
        child_pid = int(parent.stdout.readline())
        assert not process_is_gone(child_pid, wait_seconds=0)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert process_is_gone(child_pid)
    finally:
        parent.kill()
        parent.stdout.close()
