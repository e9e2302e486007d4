"""experiments/score_rewards.py, run as a user runs it: every input mode, the output, and every error path."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import write_jsonl

from experiments import score_rewards

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "score_rewards.py"

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


# --- your own rewards: file.py:function in --rewards, every reward function of a file with --reward-file ---

# A user's reward file: two rewards (one with reasons), a helper, a private function, the reasons function attached
# as `.explain`, a reward imported from another file, and one named like a built-in reward.
REWARD_FILE = """
from shared import imported_reward


def parse(text):
    return text.strip()


def short(completions, **kwargs):
    return [1.0 / len(c) for c in completions]


def why_short(completions, **kwargs):
    return [f"{len(c)} chars" for c in completions]


short.explain = why_short


def _private(completions, **kwargs):
    return [0.0 for _ in completions]


def exact(completions, answer, **kwargs):
    return [float(c == a) for c, a in zip(completions, answer)]


def correctness_reward(completions, answer, bonus=0.0, **kwargs):
    return [0.25 + bonus for _ in completions]
"""


@pytest.fixture
def reward_file(tmp_path, monkeypatch):
    """mine.py (REWARD_FILE) in the current directory, with shared.py, which it imports a reward from."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "shared.py").write_text(
        "def imported_reward(completions, **kwargs):\n    return [9.0] * len(completions)\n"
    )
    (tmp_path / "mine.py").write_text(REWARD_FILE)
    return tmp_path / "mine.py"


def test_a_file_and_function_in_rewards_scores_the_users_function(reward_file, capsys):
    result = run_json(["--completion", "abcd", "--answer", "abcd", "--rewards", "mark_reward,mine.py:short"], capsys)
    assert result["rows"][0]["rewards"] == {"mark_reward": 0.0, "short": 0.25}
    assert result["rewards"][1] == {"name": "short", "weight": 1.0, "params": {}, "path": "mine.py:short"}


def test_a_user_reward_named_like_a_built_in_is_scored_next_to_it_under_its_file_stem(reward_file, capsys):
    argv = ["--completion", "<answer>18</answer>", "--answer", "18"]
    argv += ["--rewards", "correctness_reward,mine.py:correctness_reward"]
    result = run_json([*argv, "--param", "mine.correctness_reward.bonus=0.5"], capsys)
    assert result["rows"][0]["rewards"] == {"correctness_reward": 1.0, "mine.correctness_reward": 0.75}


def test_reward_file_picks_exactly_the_reward_functions_defined_in_it(reward_file, capsys):
    argv = ["--completion", "abcd", "--answer", "abcd", "--rewards", "mark_reward", "--reward-file", "mine.py"]
    result = run_json([*argv, "--rewards", "len_reward"], capsys)
    # not parse (no `completions`), _private, why_short (short's .explain) or imported_reward (imported)
    assert list(result["rows"][0]["rewards"]) == [
        "mark_reward",
        "short",
        "exact",
        "mine.correctness_reward",
        "len_reward",
    ]
    assert result["rows"][0]["rewards"]["exact"] == 1.0


def test_a_function_given_both_ways_is_scored_once(reward_file, capsys):
    result = run_json(
        ["--completion", "ab", "--answer", "ab", "--rewards", "mine.py:short", "--reward-file", "mine.py"], capsys
    )
    assert list(result["rows"][0]["rewards"]) == ["short", "exact", "mine.correctness_reward"]


def test_reward_file_goes_with_a_config(reward_file, capsys):
    (reward_file.parent / "exp.yaml").write_text("rewards: [{name: mark_reward, weight: 2}]\n")
    result = run_json(
        ["--completion", "ab", "--answer", "ab", "--config", "exp.yaml", "--reward-file", "mine.py"], capsys
    )
    assert list(result["rows"][0]["rewards"]) == ["mark_reward", "short", "exact", "mine.correctness_reward"]


def test_reward_file_without_a_reward_function_names_what_it_found_and_what_it_needs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "helpers.py").write_text(
        "def parse(text):\n    return text\n\n\ndef _score(completions):\n    return []\n"
    )
    code, _, err = run(["--completion", "x", "--reward-file", "helpers.py"], capsys)
    assert_error(
        code,
        err,
        "--reward-file helpers.py: no reward function in it",
        "a parameter named `completions`",
        "`def my_reward(completions, **kwargs)`",
        "functions defined in helpers.py: parse(text), _score(completions) (private)",
    )


def test_reward_file_that_is_not_there(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["--completion", "x", "--reward-file", "nope.py"], capsys)
    assert_error(code, err, "--reward-file nope.py: no such file", str(tmp_path / "nope.py"))


def test_rewards_and_config_together_are_refused(reward_file, capsys):
    (reward_file.parent / "exp.yaml").write_text("rewards: [mark_reward]\n")
    code, _, err = run(["--completion", "x", "--config", "exp.yaml", "--rewards", "mark_reward"], capsys)
    assert_error(code, err, "either --rewards or --config, not both", "--reward-file goes with either")


# --- --explain: why each reward gave its score ---


def test_explain_shows_a_user_rewards_reasons_in_the_table_and_in_json(reward_file, tmp_path, capsys):
    rows = [
        {"prompt": "Say\nhi", "completion": "hello", "answer": "hi"},
        {"prompt": "Say\nhi", "completion": "hi", "answer": "hi"},
    ]
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    code, out, _ = run([path, "--rewards", "mine.py:short,mine.py:exact", "--explain"], capsys)
    assert code == 0
    assert "0.200" in out and "5 chars" in out and "2 chars" in out  # score, and its reason under it
    assert "Say⏎hi" in out and "prompt" in out and "gold" in out
    assert "note: no reasons from exact: it has no explain function." in out
    result = run_json([path, "--rewards", "mine.py:short,mine.py:exact", "--explain"], capsys)
    assert [row["reasons"] for row in result["rows"]] == [
        {"short": "5 chars", "exact": ""},
        {"short": "2 chars", "exact": ""},
    ]
    assert result["without_reasons"] == ["exact"]


def test_explain_gives_the_built_in_reasons_for_the_docs_example(capsys):
    argv = ["--completion", "<answer>(8 - 5) * 8</answer>", "--target", "24", "--numbers", "3,5,8", "--explain"]
    result = run_json([*argv, "--rewards", "countdown_reward,hard_format_reward,mark_reward"], capsys)
    assert result["rows"][0]["rewards"] == {"countdown_reward": 0.1, "hard_format_reward": 0.25, "mark_reward": 0.25}
    assert result["rows"][0]["reasons"] == {
        "countdown_reward": "8 used twice; 3 not used (numbers 3, 5, 8); evaluates to 24, target 24",
        "hard_format_reward": "answer block, no <think>...</think> block",
        "mark_reward": "missing <think>, </think>",
    }
    assert result["without_reasons"] == []
    code, out, _ = run([*argv, "--rewards", "countdown_reward"], capsys)
    assert code == 0 and "8 used twice" in out and "note:" not in out


def test_explain_on_one_completion_adds_a_why_column(reward_file, capsys):
    code, out, _ = run(["--completion", "abcd", "--rewards", "mine.py:short", "--explain"], capsys)
    assert code == 0 and "why" in out and "4 chars" in out


def test_explain_without_any_reward_that_explains_is_a_note_not_an_error(reward_file, capsys):
    code, out, err = run(["--completion", "ab", "--answer", "ab", "--rewards", "mine.py:exact", "--explain"], capsys)
    assert code == 0 and err == ""
    assert out.count("note:") == 1 and "no reasons from exact" in out


def test_without_explain_reasons_are_not_computed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(
        "def plain(completions, **kwargs):\n    return [1.0] * len(completions)\n\n\n"
        "def why(completions, **kwargs):\n    raise RuntimeError('explain was called')\n\n\nplain.explain = why\n"
    )
    result = run_json(["--completion", "x", "--rewards", "mine.py:plain"], capsys)
    assert result["rows"][0] == {"line": None, "completion": "x", "rewards": {"plain": 1.0}, "total": 1.0}
    code, out, _ = run(["--completion", "x", "--rewards", "mine.py:plain"], capsys)
    assert code == 0 and "why" not in out and "note" not in out
    code, _, err = run(["--completion", "x", "--rewards", "mine.py:plain", "--explain"], capsys)
    assert code == 2 and "explain was called" in err and "mine.py:6 in why" in err and "Traceback" not in err


# --- samples files: greedy and sampled apart, and the spread of each prompt's total rewards ---


def samples_rows(totals_per_prompt):
    """A samples file's rows: per prompt one greedy completion, then one sampled completion per total; each
    completion is its reward (`value` below) as text."""
    rows = []
    common = {"label": "final", "num_tokens": 5, "truncated": False, "rewards": {}, "reward_total": 0.0}
    common |= {"correct": False, "outcome": "failed", "answer": "1", "question": "q"}
    for index, totals in enumerate(totals_per_prompt):
        prompt = f"prompt {index}\n"
        rows.append({**common, "kind": "greedy", "index": index, "sample": 0, "prompt": prompt, "completion": "1"})
        for sample, total in enumerate(totals):
            rows.append(
                {
                    **common,
                    "kind": "sampled",
                    "index": index,
                    "sample": sample,
                    "prompt": prompt,
                    "completion": str(total),
                }
            )
    return rows


VALUE_REWARD = """
def value(completions, **kwargs):
    return [float(c) for c in completions]


def batch_size(completions, **kwargs):
    return [float(len(completions))] * len(completions)


def first(completions, **kwargs):
    return [float(c.split(",")[0]) for c in completions]


def second(completions, **kwargs):
    return [float(c.split(",")[1]) for c in completions]
"""


def test_a_samples_file_gives_a_table_per_kind_and_each_prompts_spread(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(VALUE_REWARD)
    path = write_jsonl(tmp_path / "final.jsonl", samples_rows([[1, 1, 1, 1], [1, 0, 0, 1], [0, 1, 1, 1]]))
    argv = [path, "--rewards", "mine.py:value"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "greedy: 3 completions;" in out and "sampled: 12 completions (3 prompts x 4);" in out
    assert "per reward: greedy" in out and "per reward: sampled" in out and "per prompt: sampled" in out
    assert "sampled: 1 of 3 prompts (33%) have all-equal total rewards in their group: zero advantage" in out
    assert "greedy: 0 of" not in out and "per prompt: greedy" not in out  # one greedy row per prompt: no groups

    result = run_json(argv, capsys)
    assert list(result["groups"]) == ["sampled"]
    groups = result["groups"]["sampled"]
    assert (groups["prompts"], groups["all_equal"]) == (3, 1)
    assert groups["fraction_all_equal"] == pytest.approx(1 / 3)
    # unbiased std of each group's totals: 0; sqrt((4 x 0.25) / 3); sqrt((0.5625 + 3 x 0.0625) / 3) = 0.5
    stds = [0.0, (1 / 3) ** 0.5, 0.5]
    assert [group["std"] for group in groups["per_prompt"]] == pytest.approx(stds)
    assert groups["mean_std"] == pytest.approx(sum(stds) / 3)
    assert [group["mean"] for group in groups["per_prompt"]] == pytest.approx([1.0, 0.5, 0.75])
    assert [(group["min"], group["max"], group["n"]) for group in groups["per_prompt"]] == [
        (1, 1, 4),
        (0, 1, 4),
        (0, 1, 4),
    ]
    assert [group["all_equal"] for group in groups["per_prompt"]] == [True, False, False]
    assert groups["per_prompt"][1]["lines"] == [7, 8, 9, 10]
    by_kind = result["summary_by_kind"]
    assert by_kind["greedy"][0]["mean"] == 1.0 and by_kind["sampled"][0]["mean"] == pytest.approx(9 / 12)


def test_each_evaluation_and_kind_is_scored_as_its_own_batch(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(VALUE_REWARD)
    final = samples_rows([[1, 1], [0, 1]])
    zero_shot = [{**row, "label": "zero_shot"} for row in samples_rows([[1, 1, 0], [0, 1, 1]])]
    path = write_jsonl(tmp_path / "both.jsonl", final + zero_shot)
    result = run_json([path, "--rewards", "mine.py:batch_size"], capsys)
    # final: 2 greedy and 4 sampled rows; zero_shot: 2 greedy and 6 sampled
    assert [row["rewards"]["batch_size"] for row in result["rows"]] == [2, 4, 4, 2, 4, 4, 2, 6, 6, 6, 2, 6, 6, 6]


def test_totals_that_differ_only_by_float_noise_count_as_equal(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(VALUE_REWARD)
    rows = [{"prompt": "p", "completion": "0.1,0.2"}, {"prompt": "p", "completion": "0.3,0"}]
    result = run_json([write_jsonl(tmp_path / "s.jsonl", rows), "--rewards", "mine.py:first,mine.py:second"], capsys)
    assert [row["total"] for row in result["rows"]] == [0.30000000000000004, 0.3]
    assert result["groups"]["all"]["all_equal"] == 1


def test_without_kinds_completions_group_by_prompt_and_rows_without_one_are_not_grouped(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(VALUE_REWARD)
    rows = [
        {"prompt": "a", "completion": "1"},
        {"prompt": "b", "completion": "0"},
        {"prompt": "a", "completion": "0"},
        {"prompt": "b", "completion": "0"},
        {"prompt": "c", "completion": "1"},  # alone: no group
        {"completion": "1"},  # no prompt: not grouped
        {"completion": "1"},
    ]
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    result = run_json([path, "--rewards", "mine.py:value"], capsys)
    groups = result["groups"]["all"]
    assert [(group["prompt"], group["lines"]) for group in groups["per_prompt"]] == [("a", [1, 3]), ("b", [2, 4])]
    assert (groups["prompts"], groups["all_equal"]) == (2, 1)
    code, out, _ = run([path, "--rewards", "mine.py:value"], capsys)
    assert "1 of 2 prompts (50%) have all-equal total rewards" in out and "per prompt" in out


def test_a_samples_files_own_fields_are_not_passed_to_rewards_as_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spy.py").write_text(
        "import json\n\n\ndef spy(completions, **kwargs):\n"
        "    with open('seen.json', 'w') as file:\n        json.dump(sorted(kwargs), file)\n"
        "    return [0.0] * len(completions)\n"
    )
    path = write_jsonl(tmp_path / "final.jsonl", samples_rows([[1, 0]]))
    run_json([path, "--rewards", "spy.py:spy"], capsys)
    assert json.loads((tmp_path / "seen.json").read_text()) == ["answer", "completion_ids", "prompts", "question"]


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


def test_unknown_reward_lists_the_valid_ones_and_quotes_the_flags_for_your_own(capsys):
    code, _, err = run(["--completion", "x", "--rewards", "mark_rewrd"], capsys)
    assert_error(code, err, "Unknown reward 'mark_rewrd'", "Did you mean mark_reward?", "countdown_reward")
    assert_error(code, err, "pass --rewards my_rewards.py:mark_rewrd (a file", "or --reward-file my_rewards.py.")
    assert "{" not in err and "path:" not in err  # the CLI form, not a config's YAML


def test_unknown_reward_names_the_users_own_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_file.py").write_text(REWARD_FILE)
    code, _, err = run(["--completion", "x", "--reward-file", "my_file.py", "--rewards", "foo"], capsys)
    assert_error(code, err, "Unknown reward 'foo'. Built-in rewards: hard_format_reward, mark_reward")
    assert_error(
        code,
        err,
        "For your own reward pass --rewards my_file.py:foo (a file and a function in it) or --reward-file my_file.py.",
    )
    assert str(tmp_path) not in err


def test_a_file_without_a_function_in_rewards_says_how_to_name_one(capsys):
    code, _, err = run(["--completion", "x", "--rewards", "mine.py"], capsys)
    assert_error(
        code, err, "--rewards item 'mine.py' is a file", "--rewards mine.py:my_reward", "--reward-file mine.py"
    )


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


def test_a_row_that_repeats_a_key_is_a_bad_line(tmp_path, capsys):
    """JSON kept the last "answer" without a word."""
    path = tmp_path / "s.jsonl"
    path.write_text('{"completion": "x", "answer": "1"}\n{"completion": "x", "answer": "1", "answer": "2"}\n')
    code, _, err = run([path, "--rewards", "mark_reward"], capsys)
    assert_error(code, err, "1 bad line(s)", "line 2: key 'answer' appears twice in one object", "--skip-bad")


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


def test_a_user_reward_that_raises_is_one_paragraph_naming_its_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "mine.py").write_text("def boom(completions, **kw):\n    raise KeyError('gold')\n")
    (tmp_path / "exp.yaml").write_text("rewards: [{name: boom, path: mine.py:boom}]\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["--completion", "x", "--config", "exp.yaml"], capsys)
    assert code == 2 and "Traceback" not in err
    assert "reward 'boom' (mine.py:boom) raised KeyError: 'gold'" in err and "mine.py:2 in boom" in err


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
