"""A user's own reward: the built-ins' code path, its output checked, non-finite scores dropped, a time limit."""

import math
import signal
import textwrap
import threading

import pytest
from conftest import score

from rewards import RewardConfigError, RewardError, get_reward


def user_reward(tmp_path, source, function="mine", **params):
    path = tmp_path / "my_rewards.py"
    path.write_text(textwrap.dedent(source))
    return get_reward(function, path=f"{path}:{function}", **params)


# --- what a call returns ---


def test_inf_and_nan_become_none_and_are_counted(tmp_path):
    reward = user_reward(
        tmp_path,
        """
        def mine(completions, **kwargs):
            return [1.0, float("inf"), float("nan"), -float("inf"), None, 2]
        """,
    )
    assert score(reward, list("abcdef")) == [1.0, None, None, None, None, 2.0]
    assert reward.non_finite_count == 3
    score(reward, list("abcdef"))
    assert reward.non_finite_count == 6


@pytest.mark.parametrize(
    ("returned", "fragment"),
    [
        ("[1.0]", "must return a list with one float (or None) per completion: got list of length 1 for 2"),
        ("1.0", "got float for 2 completions"),
        ("'ab'", "got str of length 2 for 2"),
        ("[1.0, '1']", "returned '1' (str), which is not a number or None"),
        ("[1.0, [2.0]]", "returned [2.0] (list)"),
    ],
)
def test_a_wrong_length_or_a_non_number_is_an_error_naming_the_reward_and_the_value(tmp_path, returned, fragment):
    reward = user_reward(tmp_path, f"def mine(completions, **kwargs):\n    return {returned}\n")
    with pytest.raises(RewardError, match=r"reward 'mine' \(.*my_rewards\.py:mine\)") as caught:
        score(reward, ["a", "b"])
    assert fragment in str(caught.value)


def test_booleans_are_numbers(tmp_path):
    reward = user_reward(tmp_path, "def mine(completions, **kw):\n    return [c.isupper() for c in completions]\n")
    assert score(reward, ["HI", "hi"]) == [1.0, 0.0]


# --- one code path with the built-ins ---


def test_rows_without_gold_are_not_passed_to_the_function(tmp_path):
    reward = user_reward(
        tmp_path,
        """
        def mine(completions, answer, **kwargs):
            return [float(len(completions))] * len(completions)
        """,
    )
    assert score(reward, ["a", "b", "c"], answer=["1", None, "3"]) == [2.0, None, 2.0]


def test_the_function_gets_every_column_ids_extras_and_params(tmp_path):
    reward = user_reward(
        tmp_path,
        """
        def mine(completions, prompts, completion_ids, answer, level, trainer_state, scale):
            return [scale * (len(ids) + lv + trainer_state) for ids, lv in zip(completion_ids, level)]
        """,
        scale=10,
    )
    assert reward.required_columns == ("answer", "level")
    scores = reward(
        prompts=["p", "q"],
        completions=["a", "b"],
        completion_ids=[[1], [1, 2]],
        answer=["x", "y"],
        level=[1, 2],
        trainer_state=100,
    )
    assert scores == [10 * (1 + 1 + 100), 10 * (2 + 2 + 100)]


# --- the time limit ---


def test_a_reward_looping_forever_is_stopped_with_an_error_naming_it(tmp_path):
    reward = user_reward(
        tmp_path, "def mine(completions, **kw):\n    while True:\n        pass\n", call_timeout_seconds=0.5
    )
    with pytest.raises(RewardError, match=r"reward 'mine' .* did not return within 0.5 s \(its call_timeout_seconds\)"):
        score(reward, ["a"])


def test_a_reward_blocked_in_a_system_call_is_stopped_in_the_main_thread(tmp_path):
    reward = user_reward(
        tmp_path, "import time\ndef mine(completions, **kw):\n    time.sleep(3600)\n", call_timeout_seconds=0.5
    )
    with pytest.raises(RewardError, match="did not return within 0.5 s"):
        score(reward, ["a"])


def test_a_reward_looping_forever_is_stopped_off_the_main_thread_too(tmp_path):
    reward = user_reward(
        tmp_path, "def mine(completions, **kw):\n    while True:\n        pass\n", call_timeout_seconds=0.5
    )
    raised = []

    def call():
        try:
            score(reward, ["a"])
        except RewardError as error:
            raised.append(error)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "hung"
    assert "did not return within 0.5 s" in str(raised[0])


def test_a_reward_that_swallows_the_interruption_is_still_reported(tmp_path):
    source = """
        import time
        def mine(completions, **kw):
            try:
                time.sleep(3600)
            except BaseException:
                pass
            return [1.0] * len(completions)
        """
    with pytest.raises(RewardError, match="did not return within 0.5 s"):
        score(user_reward(tmp_path, source, call_timeout_seconds=0.5), ["a"])


def test_the_time_limit_leaves_no_thread_and_restores_the_signal_handler(tmp_path):
    before_threads, before_handler = threading.active_count(), signal.getsignal(signal.SIGUSR2)
    quick = user_reward(tmp_path, "def mine(completions, **kw):\n    return [1.0] * len(completions)\n")
    assert score(quick, ["a"]) == [1.0]
    slow = user_reward(
        tmp_path, "def mine(completions, **kw):\n    while True:\n        pass\n", call_timeout_seconds=0.2
    )
    with pytest.raises(RewardError):
        score(slow, ["a"])
    assert threading.active_count() == before_threads
    assert signal.getsignal(signal.SIGUSR2) == before_handler


def test_a_reward_under_its_limit_returns_normally_and_none_means_no_limit(tmp_path):
    source = "import time\ndef mine(completions, **kw):\n    time.sleep(0.05)\n    return [1.0] * len(completions)\n"
    assert score(user_reward(tmp_path, source, call_timeout_seconds=30), ["a"]) == [1.0]
    assert score(user_reward(tmp_path, source, call_timeout_seconds=None), ["a"]) == [1.0]


@pytest.mark.parametrize("bad", [0, -1, "60", True, math.inf * 0, math.inf])
def test_the_time_limit_must_be_a_positive_number_of_seconds(tmp_path, bad):
    with pytest.raises(RewardConfigError, match="call_timeout_seconds must be a positive number of seconds"):
        user_reward(tmp_path, "def mine(completions): return []\n", call_timeout_seconds=bad)


def test_a_built_in_reward_takes_no_time_limit():
    with pytest.raises(RewardConfigError, match="call_timeout_seconds applies to your own rewards"):
        get_reward("mark_reward", call_timeout_seconds=10)
