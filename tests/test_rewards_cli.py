"""experiments/score_rewards.py, run as a user runs it: every input mode, the output, and every error path."""

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import write_jsonl

from rewards import RewardError

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "score_rewards.py"
_spec = importlib.util.spec_from_file_location("score_rewards", SCRIPT)
score_rewards = importlib.util.module_from_spec(_spec)
sys.modules["score_rewards"] = score_rewards  # its dataclasses look their module up there
_spec.loader.exec_module(score_rewards)

GOOD = "<think>\nStep 1: 9 * 2\n</think>\n<answer>\n18\n</answer>\n"


def run(argv, capsys):
    """(exit code, stdout, stderr) of main(argv)."""
    code = score_rewards.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(argv, capsys):
    code, out, err = run([*argv, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def assert_error(code, err, *fragments):
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1  # one paragraph
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


# --- input modes and output ---


def test_one_completion_with_its_answer(capsys):
    result = run_json(["--completion", GOOD, "--answer", "18", "--rewards", "mark_reward,correctness_reward"], capsys)
    assert result["rows"][0]["rewards"] == {"mark_reward": 0.5, "correctness_reward": 1.0}
    assert result["rows"][0]["total"] == 1.5
    assert result["token_counts"] == "estimated at 4 characters a token"


def test_one_countdown_completion_with_target_and_numbers(capsys):
    argv = ["--completion", "<answer>(8 - 5) * 8</answer>", "--target", "24", "--numbers", "3,8,5"]
    result = run_json([*argv, "--rewards", "countdown_reward"], capsys)
    assert result["rows"][0]["rewards"] == {"countdown_reward": 0.1}  # 8 used twice


def test_a_jsonl_file_gives_per_reward_summary(tmp_path, capsys):
    rows = [
        {"prompt": "q", "completion": "<answer>18</answer>", "answer": "18"},
        {"prompt": "q", "completion": "<answer>17</answer>", "answer": "18"},
        {"prompt": "q", "completion": "no answer", "answer": "18"},
        {"prompt": "q", "completion": "<answer>1,8</answer>", "answer": None},  # no gold: not applicable
    ]
    result = run_json([write_jsonl(tmp_path / "s.jsonl", rows), "--rewards", "correctness_reward"], capsys)
    assert [row["rewards"]["correctness_reward"] for row in result["rows"]] == [1.0, 0.0, 0.0, None]
    assert [row["line"] for row in result["rows"]] == [1, 2, 3, 4]
    summary = result["summary"][0]
    assert summary["mean"] == pytest.approx(1 / 3)
    assert summary["std"] == pytest.approx((2 / 9) ** 0.5)  # population std of 1, 0, 0
    assert (summary["min"], summary["max"]) == (0.0, 1.0)
    assert summary["fraction_zero"] == pytest.approx(2 / 3)
    assert summary["not_applicable"] == 1


def test_golds_a_reward_cannot_score_are_counted_and_named(tmp_path, capsys):
    rows = [
        {"completion": "<answer>3 * 8</answer>", "target": 24, "numbers": [3, 8]},
        {"completion": "<answer>3 * 8</answer>", "target": 24.5, "numbers": [3, 8]},
        {"completion": "<answer>3 * 8</answer>", "target": "24", "numbers": [3, 8]},
    ]
    result = run_json([write_jsonl(tmp_path / "s.jsonl", rows), "--rewards", "countdown_reward"], capsys)
    assert [row["rewards"]["countdown_reward"] for row in result["rows"]] == [1.0, None, None]
    assert result["summary"][0]["invalid_gold"] == 2 and result["summary"][0]["not_applicable"] == 2
    assert "countdown_reward: 2 row(s) with a gold it cannot score" in result["warnings"][0]
    assert "target 24.5 is not a whole number; target '24' is not a whole number" in result["warnings"][0]


def test_inf_and_nan_scores_of_a_user_reward_are_counted(tmp_path, capsys, monkeypatch):
    (tmp_path / "mine.py").write_text("def odd(completions, **kw):\n    return [float('nan'), 1.0]\n")
    (tmp_path / "exp.yaml").write_text("rewards: [{name: odd, path: mine.py:odd}]\n")
    monkeypatch.chdir(tmp_path)
    path = write_jsonl(tmp_path / "s.jsonl", [{"completion": "a"}, {"completion": "b"}])
    result = run_json([path, "--config", "exp.yaml"], capsys)
    assert [row["rewards"]["odd"] for row in result["rows"]] == [None, 1.0]
    assert result["summary"][0]["non_finite"] == 1
    assert result["warnings"] == ["odd: 1 score(s) were inf or NaN, left out as not applicable"]


def test_an_evaluation_samples_file_gives_token_counts_and_prompt_groups(tmp_path, capsys):
    rows = [
        {"label": "eval", "prompt": "a", "completion": "<answer>8</answer>", "answer": "8", "num_tokens": 90},
        {
            "label": "eval",
            "prompt": "a",
            "completion": "<answer>8</answer>" + " " * 20,
            "answer": "8",
            "num_tokens": 70,
        },
        {"label": "eval", "prompt": "b", "completion": "x", "answer": "8", "num_tokens": 10},
    ]
    path = write_jsonl(tmp_path / "eval_samples.jsonl", rows)
    argv = [path, "--rewards", "soft_overlong_punishment,len_reward"]
    argv += ["--param", "soft_overlong_punishment.max_completion_len=100"]
    argv += ["--param", "soft_overlong_punishment.soft_punish_cache=20"]
    result = run_json(argv, capsys)
    assert result["token_counts"] == "num_tokens"
    assert [row["rewards"]["soft_overlong_punishment"] for row in result["rows"]] == [-0.5, 0.0, 0.0]
    # len_reward groups by prompt: "a" has lengths 18 and 38 (both correct), "b" is alone.
    assert [row["rewards"]["len_reward"] for row in result["rows"]] == [0.5, -0.5, 0.0]


def test_a_config_gives_rewards_weights_and_params(tmp_path, capsys):
    config = tmp_path / "exp.yaml"
    config.write_text(
        textwrap.dedent(
            """
            model: {name: tiny}
            rewards:
              - mark_reward
              - {name: correctness_reward, weight: 0.5, params: {value: 2.0}}
            """
        )
    )
    result = run_json(["--completion", GOOD, "--answer", "18", "--config", config], capsys)
    assert result["rows"][0]["rewards"] == {"mark_reward": 0.5, "correctness_reward": 2.0}
    assert result["rows"][0]["total"] == 0.5 * 1 + 2.0 * 0.5


def test_param_values_are_read_as_yaml_scalars(capsys):
    argv = ["--completion", "<answer>18</answer>", "--answer", "18", "--rewards", "correctness_reward"]
    result = run_json([*argv, "--param", "correctness_reward.value=3"], capsys)
    assert result["rows"][0]["rewards"]["correctness_reward"] == 3.0


def test_without_a_reward_list_every_applicable_built_in_is_used(capsys):
    result = run_json(["--completion", GOOD, "--answer", "18"], capsys)
    names = set(result["rows"][0]["rewards"])
    assert {"hard_format_reward", "correctness_reward", "len_reward"} <= names
    assert "countdown_reward" not in names and "soft_overlong_punishment" not in names


def test_a_config_without_rewards_uses_its_tasks_default_set(tmp_path, capsys):
    config = tmp_path / "exp.yaml"
    config.write_text("data: {task: countdown}\n")
    result = run_json(["--completion", GOOD, "--target", "8", "--numbers", "3,5", "--config", config], capsys)
    assert set(result["rows"][0]["rewards"]) == {"hard_format_reward", "mark_reward", "countdown_reward"}


def test_a_user_reward_from_the_config(tmp_path, capsys, monkeypatch):
    (tmp_path / "mine.py").write_text("def short(completions, **kw):\n    return [1.0 / len(c) for c in completions]\n")
    (tmp_path / "exp.yaml").write_text("rewards: [{name: short, path: mine.py:short}]\n")
    monkeypatch.chdir(tmp_path)
    result = run_json(["--completion", "abcd", "--config", "exp.yaml"], capsys)
    assert result["rows"][0]["rewards"] == {"short": 0.25}


def test_the_tables_show_each_reward_and_the_total(tmp_path, capsys):
    rows = [{"completion": GOOD, "answer": "18"}, {"completion": "x", "answer": "18"}]
    code, out, _ = run([write_jsonl(tmp_path / "s.jsonl", rows), "--rewards", "mark_reward,correctness_reward"], capsys)
    assert code == 0
    assert "mark_reward" in out and "correctness_reward" in out and "total" in out and "1.500" in out
    assert "per reward" in out


def test_one_completion_prints_a_reward_per_line(capsys):
    code, out, _ = run(["--completion", GOOD, "--answer", "18", "--rewards", "mark_reward,correctness_reward"], capsys)
    assert code == 0 and "weighted total" in out and "1.500" in out


def test_list_shows_every_built_in_reward(capsys):
    code, out, _ = run(["--list"], capsys)
    assert code == 0 and "countdown_reward" in out and "max_completion_len" in out


# --- errors: one paragraph naming the problem and the fix, exit code 2 ---


def test_missing_input_file(tmp_path, capsys):
    assert_error(*run([tmp_path / "nope.jsonl", "--rewards", "mark_reward"], capsys)[::2], "not found", "nope.jsonl")


def test_nothing_to_score(capsys):
    assert_error(*run(["--rewards", "mark_reward"], capsys)[::2], "Nothing to score", "--completion")


def test_file_and_completion_together(tmp_path, capsys):
    path = write_jsonl(tmp_path / "s.jsonl", [{"completion": "x"}])
    assert_error(*run([path, "--completion", "x"], capsys)[::2], "not both")


def test_gold_flags_without_completion(tmp_path, capsys):
    path = write_jsonl(tmp_path / "s.jsonl", [{"completion": "x"}])
    assert_error(*run([path, "--answer", "18"], capsys)[::2], "go with --completion")


@pytest.mark.parametrize(
    ("flags", "fragment"), [(["--target", "x"], "--target must be"), (["--numbers", "3,five"], "--numbers must be")]
)
def test_bad_countdown_flags(flags, fragment, capsys):
    assert_error(*run(["--completion", "x", *flags], capsys)[::2], fragment)


def test_unknown_reward_lists_the_valid_ones(capsys):
    code, _, err = run(["--completion", "x", "--rewards", "mark_rewrd"], capsys)
    assert_error(code, err, "Unknown reward 'mark_rewrd'", "mark_reward", "countdown_reward")


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        ("mark_reward.scale=2", "has no parameter 'scale'"),
        ("repetition_penalty_reward.max_penalty=0.5", "max_penalty must be <= 0"),
        ("repetition_penalty_reward.ngram_size=three", "'ngram_size' must be an integer"),
        ("correctness_reward.value=2", "not among the rewards scored"),
        ("mark_reward=2", "must look like REWARD.KEY=VALUE"),
    ],
)
def test_bad_params(param, fragment, capsys):
    argv = ["--completion", "x", "--rewards", "mark_reward,repetition_penalty_reward", "--param", param]
    assert_error(*run(argv, capsys)[::2], fragment)


def test_missing_gold_column_names_the_rewards_that_need_it(tmp_path, capsys):
    path = write_jsonl(tmp_path / "s.jsonl", [{"completion": "x"}])
    code, _, err = run([path, "--rewards", "correctness_reward,len_reward,countdown_reward"], capsys)
    assert_error(
        code, err, "'answer' (needed by correctness_reward, len_reward)", "'target' (needed by countdown_reward)"
    )


def test_missing_gold_for_one_completion_suggests_the_flag(capsys):
    code, _, err = run(["--completion", "x", "--rewards", "correctness_reward"], capsys)
    assert_error(code, err, "pass --answer")


def test_unreadable_lines_are_reported_with_line_numbers(tmp_path, capsys):
    path = tmp_path / "s.jsonl"
    path.write_text('{"completion": "x"}\nnot json\n\n["a list"]\n{"answer": "1"}\n')
    code, _, err = run([path, "--rewards", "mark_reward"], capsys)
    fragments = ["3 bad line(s)", "line 2: not JSON", "line 4: not a JSON object", "line 5: no 'completion'"]
    assert_error(code, err, *fragments, "--skip-bad")


@pytest.mark.parametrize(("value", "shown"), [("NaN", "NaN is not a JSON number"), ("1e999", "1e999 is too large")])
def test_a_number_json_does_not_have_is_a_bad_line(tmp_path, capsys, value, shown):
    path = tmp_path / "s.jsonl"
    path.write_text(f'{{"completion": "<answer>1</answer>"}}\n{{"completion": "x", "target": {value}}}\n')
    code, _, err = run([path, "--rewards", "mark_reward"], capsys)
    assert_error(code, err, "1 bad line(s)", f"line 2: {shown}", "write null")


def test_the_script_exits_2_without_traceback_on_nan_in_the_input(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"completion": "<answer>(8 - 5) * 8</answer>", "target": float("nan")}])
    result = run_process(path, "--rewards", "countdown_reward")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "NaN" in result.stderr and "Traceback" not in result.stderr


def test_skip_bad_scores_the_readable_lines_and_warns(tmp_path, capsys):
    path = tmp_path / "s.jsonl"
    path.write_text('{"completion": "<answer>1</answer>"}\nnot json\n')
    result = run_json([path, "--rewards", "mark_reward", "--skip-bad"], capsys)
    assert len(result["rows"]) == 1 and "line 2" in result["warnings"][0]


@pytest.mark.parametrize(
    ("config_text", "fragment"),
    [
        (None, "not found"),
        ("rewards: [mark_reward\n", "not valid YAML at line"),
        ("data: {task: nope}\n", "unknown task 'nope'"),
        ("rewards: [{weight: 2}]\n", "rewards.0.name"),
        ("rewards: [{name: mark_reward, wieght: 2}]\n", "unknown config key 'rewards.0.wieght'"),
        ("rewards: [{name: mark_reward, weight: heavy}]\n", "rewards.0.weight = 'heavy' is invalid"),
        ("rewards: [{name: mark_reward, params: [1]}]\n", "rewards.0.params"),
        ("rewards: [{name: mine, path: nowhere.py:mine}]\n", "Reward file 'nowhere.py' not found"),
    ],
)
def test_bad_configs(tmp_path, capsys, monkeypatch, config_text, fragment):
    monkeypatch.chdir(tmp_path)
    if config_text is not None:
        (tmp_path / "exp.yaml").write_text(config_text)
    assert_error(*run(["--completion", "x", "--config", "exp.yaml"], capsys)[::2], fragment)


def test_a_user_reward_that_raises_is_not_hidden(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text("def boom(completions, **kw):\n    raise KeyError('gold')\n")
    (tmp_path / "exp.yaml").write_text("rewards: [{name: boom, path: mine.py:boom}]\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RewardError, match="reward 'boom' .*KeyError"):
        score_rewards.main(["--completion", "x", "--config", "exp.yaml"])


# --- as a process: exit codes and no traceback for bad input ---


def run_process(*argv, cwd=None):
    return subprocess.run(
        [sys.executable, SCRIPT, *map(str, argv)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_the_script_exits_2_without_traceback_on_bad_input():
    result = run_process("--completion", "x", "--rewards", "no_such_reward")
    assert result.returncode == 2
    assert result.stderr.startswith("error: Unknown reward") and "Traceback" not in result.stderr


def test_the_script_scores_and_exits_0():
    result = run_process(
        "--completion", "<answer>18</answer>", "--answer", "18", "--rewards", "correctness_reward", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"][0]["total"] == 1.0
