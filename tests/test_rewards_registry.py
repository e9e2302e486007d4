"""The registry: names, parameters, the TRL call convention, metadata, and a user's own reward from a file."""

import inspect
import math
import pickle
import subprocess
import sys
import textwrap

import pytest

from rewards import REWARDS, RewardConfigError, RewardError, get_reward

REQUIRED_PARAMS = {"soft_overlong_punishment": {"max_completion_len": 100, "soft_punish_cache": 20}}
GOLD = {"answer": ["8"], "target": [24], "numbers": [[3, 5, 8]], "question": ["3 and 5 make?"]}
TEXT = "<think>\nStep 1: 3*5+8\n</think>\n<answer>\n8\n</answer>\n"


def build(name, **params):
    return get_reward(name, **{**REQUIRED_PARAMS.get(name, {}), **params})


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_every_reward_is_named_for_trl_logs(name):
    reward = build(name)
    assert reward.__name__ == name  # TRL logs rewards/<__name__>/mean
    assert not inspect.iscoroutinefunction(reward.__call__)


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_every_reward_documents_its_rule_range_and_source(name):
    doc = inspect.getdoc(REWARDS[name])
    assert doc and "Range" in doc and "Source" in doc


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_every_reward_takes_the_trl_call_and_ignores_trainer_extras(name):
    reward = build(name)
    scores = reward(
        prompts=["p"],
        completions=[TEXT],
        completion_ids=[[1, 2, 3]],
        trainer_state=object(),
        log_metric=lambda *a: None,
        log_extra=lambda *a: None,
        environments=None,
        **GOLD,
    )
    low, high = reward.value_range
    assert len(scores) == 1 and (scores[0] is None or low <= scores[0] <= high)


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_every_reward_survives_pickling(name):
    # TRL's async rollout worker pickles reward functions into a child process.
    reward = build(name)
    copy = pickle.loads(pickle.dumps(reward))
    assert copy(completions=[TEXT], **GOLD) == reward(completions=[TEXT], **GOLD)


def test_chat_completions_score_the_last_message_content():
    reward = get_reward("correctness_reward")
    chat = [{"role": "assistant", "content": "thinking"}, {"role": "assistant", "content": "<answer>8</answer>"}]
    assert reward(completions=[chat, "<answer>8</answer>", None, [], [{"role": "assistant"}]], answer=["8"] * 5) == [
        1.0,
        1.0,
        0.0,
        0.0,
        0.0,
    ]


def test_required_columns_and_value_range_metadata():
    assert get_reward("correctness_reward", value=2.0).required_columns == ("answer",)
    assert get_reward("correctness_reward", value=2.0).value_range == (0.0, 2.0)
    assert get_reward("countdown_reward").required_columns == ("target", "numbers")
    assert get_reward("mark_reward").required_columns == ()
    assert get_reward("xmlcount_reward").value_range == (-math.inf, 0.5)


def test_timing_accumulates_seconds_and_calls():
    reward = get_reward("mark_reward")
    assert (reward.seconds_total, reward.calls) == (0.0, 0)
    reward(completions=["a"] * 10)
    reward(completions=["b"])
    assert reward.calls == 2 and reward.seconds_total > 0


def test_a_missing_required_column_names_the_column_and_the_reward():
    reward = get_reward("countdown_reward")
    with pytest.raises(RewardConfigError, match=r"countdown_reward.*'numbers'"):
        reward(completions=["<answer>1</answer>"], target=[1])


def test_a_column_of_the_wrong_length_is_an_error():
    with pytest.raises(RewardConfigError, match="2 values for 1 completions"):
        get_reward("correctness_reward")(completions=["x"], answer=["1", "2"])


def test_an_empty_batch_scores_nothing():
    assert get_reward("len_reward")(prompts=[], completions=[], answer=[]) == []


def test_an_unknown_reward_lists_the_valid_names():
    with pytest.raises(RewardConfigError) as caught:
        get_reward("corectness_reward")
    message = str(caught.value)
    assert "Unknown reward 'corectness_reward'" in message and "correctness_reward" in message and "path" in message


def test_an_unknown_param_lists_the_valid_params_with_types_and_defaults():
    with pytest.raises(RewardConfigError) as caught:
        get_reward("correctness_reward", vaule=2.0)
    message = str(caught.value)
    assert (
        "'vaule'" in message
        and "value (a finite number, default 1.0)" in message
        and "length_penalty_tokens" in message
    )


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("correctness_reward", {"value": "two"}, "'value' must be a finite number"),
        ("correctness_reward", {"value": True}, "'value' must be a finite number"),
        ("correctness_reward", {"fallback": "first_number"}, "one of 'last_number' or None"),
        ("len_reward", {"scope": "global"}, "one of 'group', 'batch'"),
        ("repetition_penalty_reward", {"ngram_size": 2.5}, "'ngram_size' must be an integer"),
        ("cosine_scaled_reward", {"checker": "sympy"}, "one of 'answer', 'math'"),
    ],
)
def test_a_param_of_the_wrong_type_is_a_config_error(name, params, fragment):
    with pytest.raises(RewardConfigError, match=fragment):
        get_reward(name, **params)


def test_an_integer_is_accepted_for_a_float_param():
    assert get_reward("correctness_reward", value=2)(completions=["<answer>1</answer>"], answer=["1"]) == [2.0]


# --- a user's own reward ---


def write(tmp_path, source, name="my_rewards.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def test_user_reward_loads_from_a_path_relative_to_the_current_directory(tmp_path, monkeypatch):
    write(
        tmp_path,
        """
        def shout(completions, **kwargs):
            return [1.0 if text.isupper() else 0.0 for text in completions]
        """,
    )
    monkeypatch.chdir(tmp_path)
    reward = get_reward("shout", path="my_rewards.py:shout")
    assert reward.__name__ == "shout"
    chat = [{"role": "assistant", "content": "HI"}]
    assert reward(prompts=["p", "p"], completions=[chat, "hi"], trainer_state=None) == [1.0, 0.0]
    assert reward.calls == 1 and reward.value_range == (-math.inf, math.inf)


def test_user_reward_gets_params_columns_and_declared_metadata(tmp_path):
    path = write(
        tmp_path,
        """
        def near(completions, answer, tolerance=0):
            return [1.0 if abs(len(text) - int(gold)) <= tolerance else 0.0 for text, gold in zip(completions, answer)]
        near.value_range = (0.0, 1.0)
        """,
    )
    reward = get_reward("near", path=f"{path}:near", tolerance=1)
    assert reward.required_columns == ("answer",)  # inferred: a parameter without default
    assert reward.value_range == (0.0, 1.0)
    assert reward(completions=["abc", "abcdef"], answer=["4", "4"], log_metric=print) == [1.0, 0.0]


def test_user_reward_receives_trainer_extras_it_names(tmp_path):
    path = write(
        tmp_path,
        """
        def by_step(completions, trainer_state):
            return [float(trainer_state)] * len(completions)
        """,
    )
    assert get_reward("by_step", path=f"{path}:by_step")(completions=["a"], trainer_state=3) == [3.0]


def test_user_reward_that_raises_is_reported_with_its_name(tmp_path):
    path = write(tmp_path, "def broken(completions, **kw):\n    return [1 / 0 for _ in completions]\n")
    with pytest.raises(RewardError, match=r"reward 'broken' .*ZeroDivisionError"):
        get_reward("broken", path=f"{path}:broken")(completions=["a"])


def test_user_reward_must_return_one_number_per_completion(tmp_path):
    path = write(
        tmp_path,
        """
        def short(completions, **kw):
            return [1.0]
        def text(completions, **kw):
            return ["1"]
        """,
    )
    with pytest.raises(RewardError, match="one float"):
        get_reward("short", path=f"{path}:short")(completions=["a", "b"])
    with pytest.raises(RewardError, match="not a number"):
        get_reward("text", path=f"{path}:text")(completions=["a"])


@pytest.mark.parametrize(
    ("source", "path_suffix", "fragment"),
    [
        ("def f(completions): return []\n", ":g", "has no function 'g'. Functions defined there: f"),
        ("def f(completions): return []\n", "", "must name a Python file and a function"),
        ("def f(completions) return []\n", ":f", "syntax error at line 1"),
        ("import not_a_module_anywhere\n", ":f", "ModuleNotFoundError"),
        ("def f(text): return []\n", ":f", "must take a 'completions' argument"),
    ],
)
def test_user_reward_file_problems_are_config_errors(tmp_path, source, path_suffix, fragment):
    path = write(tmp_path, source)
    with pytest.raises(RewardConfigError, match=fragment):
        get_reward("mine", path=f"{path}{path_suffix}")


def test_user_reward_missing_file_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RewardConfigError, match=r"not found \(looked for .*nope\.py"):
        get_reward("mine", path="nope.py:mine")


def test_user_reward_unknown_param_lists_its_parameters(tmp_path):
    path = write(tmp_path, "def f(completions, scale=1.0): return [scale] * len(completions)\n")
    with pytest.raises(RewardConfigError, match="no parameter 'sclae'. Parameters of f: completions, scale"):
        get_reward("mine", path=f"{path}:f", sclae=2)


def test_user_reward_may_not_reuse_a_built_in_name(tmp_path):
    path = write(tmp_path, "def f(completions): return [0.0] * len(completions)\n")
    with pytest.raises(RewardConfigError, match="built-in"):
        get_reward("mark_reward", path=f"{path}:f")


def test_user_reward_takes_the_length_penalty_too(tmp_path):
    path = write(tmp_path, "def one(completions): return [1.0] * len(completions)\n")
    reward = get_reward("one", path=f"{path}:one", length_penalty_tokens=10)
    assert reward(completions=["x"], completion_ids=[[0] * 20]) == [pytest.approx(0.9)]


def test_the_rewards_package_imports_no_model_code():
    # rewards/ must stay usable with no model: importing it may not pull in torch, trl, transformers or train/.
    code = "import sys, rewards; print(sorted({'torch', 'trl', 'transformers', 'train'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
