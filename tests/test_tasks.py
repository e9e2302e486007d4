"""Tasks: registry, options, prompt templates, GSM8K/MATH gold parsing, subsets, data errors, default rewards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewards import REWARDS
from train.config import DataConfig, RewardSpec
from train.errors import UserError
from train.tasks import TASKS, build_rewards, get_task
from train.tasks.templates import CHAT_SYSTEM_PROMPT, XML_REASONING_SYSTEM_PROMPT

FIXTURES = Path(__file__).parent / "fixtures"
GSM8K = str(FIXTURES / "gsm8k_fixture_{split}.jsonl")
MATH = str(FIXTURES / "math_test.jsonl")


def gsm8k(**data) -> object:
    return get_task(DataConfig(task="gsm8k", source=GSM8K, **data))


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


# -- registry and options ----------------------------------------------------------------------------------------------


def test_unknown_task_lists_valid_names():
    with pytest.raises(UserError, match="unknown task 'gsm9k'.*Did you mean 'gsm8k'.*gsm8k, math, countdown"):
        get_task(DataConfig(task="gsm9k"))


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(UserError, match="unknown option 'num_numbers'.*Valid options of countdown: min_numbers"):
        get_task(DataConfig(task="countdown", options={"num_numbers": 3}))


def test_task_without_options_rejects_any():
    with pytest.raises(UserError, match="unknown option 'shots'.*Valid options of gsm8k: none"):
        gsm8k(options={"shots": 3})


def test_option_of_the_wrong_type_is_named():
    with pytest.raises(UserError, match="max_number"):
        get_task(DataConfig(task="countdown", options={"max_number": "many"}))


# -- prompt templates --------------------------------------------------------------------------------------------------


def test_r1_zero_prompt_ends_where_the_completion_opens_its_think_tag():
    row = gsm8k(prompt_template="r1_zero").load_split("test", None)[0]
    assert row["prompt"].startswith("A conversation between User and Assistant.")
    assert row["prompt"].endswith(f"User: {row['question']}\nAssistant:")


def test_xml_reasoning_prompt_is_the_gsm8k_demo_chat():
    row = gsm8k(prompt_template="xml_reasoning").load_split("test", None)[0]
    assert row["prompt"] == [
        {"role": "system", "content": XML_REASONING_SYSTEM_PROMPT},
        {"role": "user", "content": row["question"]},
    ]


def test_chat_prompt_uses_the_configured_system_prompt_or_the_default():
    assert gsm8k(prompt_template="chat").load_split("test", None)[0]["prompt"][0]["content"] == CHAT_SYSTEM_PROMPT
    custom = gsm8k(prompt_template="chat", system_prompt="Be brief.").load_split("test", None)[0]["prompt"]
    assert custom[0] == {"role": "system", "content": "Be brief."}


def test_custom_template_keeps_its_other_braces():
    row = gsm8k(prompt_template="Q: {question}\nPut it in \\boxed{}.\n").load_split("test", None)[0]
    assert row["prompt"] == f"Q: {row['question']}\nPut it in \\boxed{{}}.\n"


def test_template_without_question_placeholder_is_a_user_error():
    with pytest.raises(UserError, match="neither a template name.*r1_zero, xml_reasoning, chat"):
        gsm8k(prompt_template="r1-zero")


def test_system_prompt_with_a_text_template_is_a_user_error():
    with pytest.raises(UserError, match="data.system_prompt is set"):
        gsm8k(prompt_template="r1_zero", system_prompt="Be brief.")


# -- GSM8K -------------------------------------------------------------------------------------------------------------


def test_gsm8k_gold_is_the_number_after_hashes_without_commas():
    rows = gsm8k().load_split("test", None)
    assert rows["answer"] == ["1250", "8", "120", "7"]
    assert rows.column_names == ["prompt", "question", "answer", "solution"]
    assert rows[0]["solution"].endswith("#### 1,250")


def test_gsm8k_split_placeholder_picks_each_split_file():
    assert len(gsm8k().load_split("train", None)) == 3
    assert len(gsm8k().load_split("test", None)) == 4


def test_gsm8k_reference_completion_solves_its_row_without_calculator_marks():
    task = gsm8k(prompt_template="r1_zero")
    row = task.load_split("test", None)[1]
    reference = task.reference_completion(row)
    assert reference == (
        "<think>The notebooks cost 3 * 4 = 12 dollars.\nHer change is 20 - 12 = 8 dollars.</think><answer>8</answer>"
    )
    assert task.is_correct(reference, row)


def test_gsm8k_reference_completion_in_the_xml_layout():
    task = gsm8k(prompt_template="xml_reasoning")
    row = task.load_split("test", None)[3]
    assert task.reference_completion(row) == (
        "<reasoning>\nHe has 10 - 3 = 7 apples left.\n</reasoning>\n<answer>\n7\n</answer>\n"
    )


def test_gsm8k_row_without_hashes_is_a_user_error(tmp_path):
    source = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "the answer is 3"}])
    with pytest.raises(UserError, match="row 0 of .*bad.jsonl has no '#### N'"):
        get_task(DataConfig(task="gsm8k", source=source)).load_split("test", None)


@pytest.mark.parametrize(
    ("completion", "outcome"),
    [
        ("<think>3 * 4 = 12, 20 - 12 = 8</think><answer>8</answer>", "correct"),
        ("<think>...</think><answer>$8.00</answer>", "correct"),  # numbers compared as numbers
        ("<think>...</think><answer>12</answer>", "partial"),  # an answer block, the wrong answer
        ("<think>3 * 4 = 12</think> so the change is 8", "failed"),  # no answer block
        ("", "failed"),
    ],
)
def test_outcome_of_hand_made_completions(completion, outcome):
    task = gsm8k()
    row = task.load_split("test", None)[1]
    assert task.outcome(completion, row) == outcome
    assert task.is_correct(completion, row) == (outcome == "correct")


# -- MATH --------------------------------------------------------------------------------------------------------------


def math_task(**data) -> object:
    return get_task(DataConfig(task="math", source=MATH, **data))


def test_math_gold_is_the_answer_field_else_the_last_boxed():
    rows = math_task().load_split("test", None)
    assert rows["answer"] == ["\\frac{1}{2}", "4", "11"]  # the third row has no answer field
    assert rows["subject"] == ["Prealgebra", "Algebra", "Prealgebra"]  # extra fields kept


def test_math_is_graded_by_math_verify():
    task = math_task()
    row = task.load_split("test", None)[0]
    assert task.is_correct("<think>1/4 + 1/4</think><answer>0.5</answer>", row)
    assert task.is_correct("so it is \\boxed{\\dfrac{1}{2}}", row)
    assert task.outcome("<think>...</think><answer>\\frac{1}{3}</answer>", row) == "partial"
    assert task.is_correct(task.reference_completion(row), row)


def test_math_row_without_any_gold_is_a_user_error(tmp_path):
    source = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "no box here"}])
    with pytest.raises(UserError, match="no gold answer"):
        get_task(DataConfig(task="math", source=source)).load_split("test", None)


# -- subsets and data errors -------------------------------------------------------------------------------------------


def test_subset_is_deterministic_for_a_seed_and_keeps_file_order():
    picks = {seed: gsm8k(seed=seed).load_split("test", 2)["answer"] for seed in range(8)}
    assert gsm8k(seed=3).load_split("test", 2)["answer"] == picks[3]
    assert len({tuple(pick) for pick in picks.values()}) > 1
    order = ["1250", "8", "120", "7"]
    assert all(order.index(a) < order.index(b) for a, b in picks.values())


def test_asking_for_more_rows_than_exist_names_both_counts():
    with pytest.raises(UserError, match="data.test_samples is 5 but the test split .* has only 4 rows"):
        gsm8k().load_split("test", 5)


def test_empty_split_is_a_user_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match="has no rows"):
        get_task(DataConfig(task="gsm8k", source=str(tmp_path / "empty.jsonl"))).load_split("test", None)


def test_missing_columns_are_named_with_the_mapping_options(tmp_path):
    source = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "What is 2+2?", "label": "4"}])
    with pytest.raises(UserError, match="no column 'question', 'answer' .*columns: prompt, label.*question_column"):
        get_task(DataConfig(task="jsonl", source=source)).load_split("test", None)
    with pytest.raises(UserError, match="no column 'question', 'answer'.*task: jsonl"):
        get_task(DataConfig(task="gsm8k", source=source)).load_split("test", None)


def test_missing_file_and_bad_json_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="data file not found"):
        get_task(DataConfig(task="gsm8k", source=str(tmp_path / "nope.jsonl"))).load_split("test", None)
    (tmp_path / "bad.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{"question": \n')
    with pytest.raises(UserError, match="line 2: not JSON"):
        get_task(DataConfig(task="gsm8k", source=str(tmp_path / "bad.jsonl"))).load_split("test", None)


def test_unreachable_hub_data_set_fails_fast_naming_the_local_alternative(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(UserError, match=r"openai/gsm8k.*data\.source: path/to/file\.jsonl"):
        get_task(DataConfig(task="gsm8k")).load_split("test", 5)


# -- jsonl and hf tasks ------------------------------------------------------------------------------------------------


def test_jsonl_task_maps_columns_and_passes_extra_columns(tmp_path):
    source = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"q": "2+2?", "a": "4", "difficulty": 1, "unused": "x"},
            {"q": "3+3?", "a": "6", "difficulty": 2, "unused": "y"},
        ],
    )
    options = {"question_column": "q", "answer_column": "a", "extra_columns": ["difficulty"]}
    task = get_task(DataConfig(task="jsonl", source=source, options=options, prompt_template="{question}="))
    rows = task.load_split("train", None)
    assert rows.column_names == ["prompt", "question", "answer", "difficulty"]
    assert rows[1] == {"prompt": "3+3?=", "question": "3+3?", "answer": "6", "difficulty": 2}
    assert task.is_correct("<answer>6.0</answer>", rows[1])
    assert task.is_correct(task.reference_completion(rows[1]), rows[1])


@pytest.mark.parametrize(
    ("answer_format", "field", "gold"),
    [
        ("plain", " 42 ", "42"),
        ("gsm8k", "so 4,200 #### 4,200", "4200"),
        ("boxed", "it is \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ],
)
def test_jsonl_answer_formats(tmp_path, answer_format, field, gold):
    source = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": field}])
    task = get_task(DataConfig(task="jsonl", source=source, options={"answer_format": answer_format}))
    assert task.load_split("test", None)["answer"] == [gold]


def test_jsonl_math_grading_uses_math_verify(tmp_path):
    source = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "\\frac{1}{2}"}])
    task = get_task(DataConfig(task="jsonl", source=source, options={"grading": "math"}))
    row = task.load_split("test", None)[0]
    assert task.is_correct("<answer>0.5</answer>", row)
    assert [spec.name for spec in task.answer_rewards()] == ["math_accuracy_reward"]


@pytest.mark.parametrize("name", ["jsonl", "hf"])
def test_jsonl_and_hf_tasks_need_a_source(name):
    with pytest.raises(UserError, match=f"task {name} needs data.source"):
        get_task(DataConfig(task=name))


# -- default rewards ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "template", "names"),
    [
        ("gsm8k", "r1_zero", ["hard_format_reward", "mark_reward", "correctness_reward", "int_reward"]),
        (
            "gsm8k",
            "xml_reasoning",
            ["xmlcount_reward", "soft_format_reward", "strict_format_reward", "int_reward", "correctness_reward"],
        ),
        ("countdown", "r1_zero", ["hard_format_reward", "mark_reward", "countdown_reward"]),
        ("math", "chat", ["hard_format_reward", "mark_reward", "math_accuracy_reward"]),
    ],
)
def test_default_rewards_follow_task_and_template(task, template, names):
    source = {"gsm8k": GSM8K, "math": MATH}.get(task)
    specs = get_task(DataConfig(task=task, source=source, prompt_template=template)).default_rewards()
    assert [spec.name for spec in specs] == names


def test_gsm8k_demo_set_pays_two_for_the_right_answer():
    specs = gsm8k(prompt_template="xml_reasoning").default_rewards()
    assert specs[-1] == RewardSpec(name="correctness_reward", params={"value": 2.0})


@pytest.mark.parametrize("name", list(TASKS))
@pytest.mark.parametrize("template", ["r1_zero", "xml_reasoning", "chat", "{question}\n"])
def test_every_default_reward_is_in_the_registry(name, template):
    source = {"gsm8k": GSM8K, "math": MATH, "jsonl": GSM8K, "hf": "someone/data"}.get(name)
    task = get_task(DataConfig(task=name, source=source, prompt_template=template))
    funcs, weights = build_rewards([], task)
    assert [spec.name for spec in task.default_rewards()] == [func.__name__ for func in funcs]
    assert all(spec.name in REWARDS for spec in task.default_rewards())
    assert weights == [1.0] * len(funcs)


def test_build_rewards_uses_the_config_when_it_lists_rewards():
    specs = [RewardSpec(name="correctness_reward", weight=2.0, params={"value": 3.0}), RewardSpec(name="mark_reward")]
    funcs, weights = build_rewards(specs, gsm8k())
    assert [func.__name__ for func in funcs] == ["correctness_reward", "mark_reward"]
    assert weights == [2.0, 1.0]
    assert funcs[0](prompts=["p"], completions=["<answer>8</answer>"], answer=["8"]) == [3.0]


def test_build_rewards_rejects_a_reward_reading_a_column_the_task_lacks():
    rows = gsm8k().load_split("test", None)
    with pytest.raises(UserError, match="countdown_reward reads the column.*target.*task gsm8k"):
        build_rewards([RewardSpec(name="countdown_reward")], gsm8k(), columns=rows.column_names)


@pytest.mark.parametrize(
    ("template", "stops"),
    [("r1_zero", ("</answer>",)), ("chat", ("</answer>",)), ("xml_reasoning", ("</answer>\n",)), ("{question}\n", ())],
)
def test_generation_stops_after_the_templates_closing_answer_tag(template, stops):
    from train.tasks import get_task

    task = get_task(DataConfig(task="countdown", prompt_template=template))
    assert task.stop_strings == stops


def test_data_stop_strings_override_the_template():
    from train.tasks import get_task

    assert get_task(DataConfig(task="countdown", prompt_template="r1_zero", stop_strings=[])).stop_strings == ()
    custom = DataConfig(task="countdown", prompt_template="{question}\n", stop_strings=["</answer>"])
    assert get_task(custom).stop_strings == ("</answer>",)


@pytest.mark.parametrize(
    ("content", "why"),
    [(b'{"question": "q", "answer": "1"}\n\xff\xfe not text\n', "line 2: not UTF-8"), (b'{"answer": NaN}\n', "NaN")],
)
def test_a_data_file_that_is_not_utf8_or_holds_nan_is_one_paragraph(tmp_path, content, why):
    source = tmp_path / "data.jsonl"
    source.write_bytes(content)
    with pytest.raises(UserError, match=why):
        get_task(DataConfig(task="jsonl", source=str(source))).load_split("train", None)
