"""The experiment schema (train/config.py): defaults, the seed-study keys, --set overrides, every error a user can
make, the config reference, the shipped configs, and the entry point's exit code 2 with no run dir on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from train.config import ExperimentConfig, apply_override, describe_schema, load_config, validate_config
from train.errors import UserError

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted((REPO / "experiment_configs").glob("*.yaml"))


def write(tmp_path: Path, content: dict | str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def load(tmp_path: Path, content: dict | str, *overrides: str) -> ExperimentConfig:
    return load_config(write(tmp_path, content), list(overrides))


def load_error(tmp_path: Path, content: dict | str, *overrides: str) -> str:
    with pytest.raises(UserError) as raised:
        load(tmp_path, content, *overrides)
    message = str(raised.value)
    assert "\n" not in message  # one paragraph
    return message


# -- defaults ------------------------------------------------------------------------------------------------------


def test_defaults_are_stated_not_left_to_trl():
    cfg = ExperimentConfig()
    # TRL's own defaults differ (beta 0.0, loss_type dapo): ours are written in the schema.
    assert cfg.train.beta == 0.04
    assert cfg.train.loss_type == "grpo"
    assert cfg.train.scale_rewards == "group"
    assert cfg.train.baseline == "mean"
    assert cfg.train.clip_eps == 0.2
    assert cfg.train.clip_eps_high is None
    assert cfg.train.num_generations == 8
    assert cfg.train.per_device_train_batch_size == 8
    assert cfg.train.learning_rate == 5e-6
    assert cfg.train.num_epochs == 1
    assert cfg.train.max_steps == -1
    assert cfg.train.temperature == 0.9
    assert cfg.train.max_completion_length == 256
    assert cfg.eval.eval_temperature == 0.8
    assert cfg.eval.pass_k == [1, 5, 10]
    assert cfg.eval.samples_per_prompt == 10  # num_samples None -> max k
    assert cfg.eval.when == "epoch"
    assert cfg.logging.logging_steps == 1
    assert cfg.model.name == "builtin:tiny"
    assert cfg.model.max_seq_length == 1024
    assert cfg.data.task == "gsm8k"
    assert cfg.data.train_samples is None and cfg.data.test_samples is None
    assert cfg.rewards == []


def test_a_config_is_named_after_its_file(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  beta: 0.04\n", name="my_run.yaml"))
    assert cfg.name == "my_run"
    assert cfg.model_dump(exclude={"name"}) == ExperimentConfig().model_dump(exclude={"name"})


def test_a_name_in_the_yaml_wins_over_the_file_name(tmp_path):
    assert load(tmp_path, {"name": "kept"}).name == "kept"


def test_reward_names_are_shorthand_for_specs(tmp_path):
    cfg = load(tmp_path, {"rewards": ["mark_reward", {"name": "int_reward", "weight": 0.5}]})
    assert [(r.name, r.weight, r.params, r.path) for r in cfg.rewards] == [
        ("mark_reward", 1.0, {}, None),
        ("int_reward", 0.5, {}, None),
    ]


# -- the seed study's keys -----------------------------------------------------------------------------------------

SEED_STUDY = {
    # key: (a value to set, words of its help text)
    "data.train_samples": (200, "training prompts"),
    "data.test_samples": (50, "evaluation prompts"),
    "train.learning_rate": (5e-5, "learning rate"),
    "train.num_epochs": (10, "passes over the training prompts"),
    "train.beta": (0.05, "kl coefficient"),
    "train.temperature": (0.7, "temperature of training rollouts"),
    "eval.eval_temperature": (0.6, "temperature for pass@k"),
    "train.clip_eps": (0.3, "clip range"),
}


@pytest.mark.parametrize("key", SEED_STUDY)
def test_seed_study_key_exists_with_its_meaning(tmp_path, key):
    value, meaning = SEED_STUDY[key]
    section, name = key.split(".")
    cfg = load(tmp_path, {}, f"{key}={value}")
    assert getattr(getattr(cfg, section), name) == value
    help_text = {row[0]: row[2] for row in describe_schema()}[key]
    assert meaning in help_text.lower()


def test_seed_study_train_keys_reach_trls_grpo_config(tmp_path):
    from train.grpo.arguments import resolve

    cfg = load(
        tmp_path,
        {"train": {"learning_rate": 5e-5, "num_epochs": 10, "beta": 0.05, "temperature": 0.7, "clip_eps": 0.3}},
    )
    args = resolve(cfg, "hf", output_dir=tmp_path / "out", reward_weights=[1.0]).grpo_config()
    assert (args.learning_rate, args.num_train_epochs, args.beta, args.temperature) == (5e-5, 10, 0.05, 0.7)
    assert (args.epsilon, args.epsilon_high) == (0.3, 0.3)  # clip_eps_high None: symmetric clip
    assert (args.loss_type, args.scale_rewards) == ("grpo", "group")


def test_seed_study_sample_counts_are_the_split_sizes(tmp_path):
    from train.tasks import get_task

    options = {"min_numbers": 2, "max_numbers": 2, "max_number": 9, "operations": ["+"]}
    cfg = load(tmp_path, {"data": {"task": "countdown", "train_samples": 7, "test_samples": 3, "options": options}})
    task = get_task(cfg.data)
    assert len(task.load_split("train", cfg.data.train_samples)) == 7
    assert len(task.load_split("test", cfg.data.test_samples)) == 3


def test_seed_study_config_writes_every_seed_study_key(tmp_path):
    raw = yaml.safe_load((REPO / "experiment_configs" / "eval_test_improved.yaml").read_text())
    missing = [key for key in SEED_STUDY if key.split(".")[1] not in raw.get(key.split(".")[0], {})]
    assert missing == []  # no default decides the study silently


# -- --set overrides -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("train.beta=0.0", "train.beta", 0.0),
        ("train.learning_rate=1e-5", "train.learning_rate", 1e-5),  # YAML reads 1e-5 as text; the schema makes a float
        ("train.num_epochs=3", "train.num_epochs", 3),
        ("eval.pass_k=[1, 4]", "eval.pass_k", [1, 4]),
        ("model.target_modules=[q_proj,v_proj]", "model.target_modules", ["q_proj", "v_proj"]),
        ("model.load_in_4bit=false", "model.load_in_4bit", False),
        ("model.name=001", "model.name", "001"),  # a str key keeps the text: not the int 1
        ("name=true", "name", "true"),
        ("data.prompt_template={question}", "data.prompt_template", "{question}"),  # not the mapping {question: None}
        ("data.system_prompt=a=b: c", "data.system_prompt", "a=b: c"),  # split at the first '='
        ("train.scale_rewards=false", "train.scale_rewards", "none"),
        ("train.scale_rewards=true", "train.scale_rewards", "group"),
        ("data.test_samples=null", "data.test_samples", None),
        ("model.lora_rank=0", "model.lora_rank", 0),
    ],
)
def test_override_is_typed_by_the_schema(tmp_path, override, key, expected):
    cfg = load(tmp_path, {}, override)
    value = cfg
    for part in key.split("."):
        value = getattr(value, part)
    assert value == expected
    assert type(value) is type(expected)


def test_override_creates_nested_sections_the_yaml_does_not_have(tmp_path):
    cfg = load(tmp_path, {}, "model.builtin.hidden_size=64", "model.builtin.num_heads=8", "data.options.test_size=5")
    assert (cfg.model.builtin.hidden_size, cfg.model.builtin.num_heads) == (64, 8)
    assert cfg.model.builtin.num_layers == 3  # the rest of the new section keeps its defaults
    assert cfg.data.options == {"test_size": 5}


def test_override_replaces_the_yaml_value_and_the_last_override_wins(tmp_path):
    content = {"train": {"beta": 0.1, "num_epochs": 2}}
    cfg = load(tmp_path, content, "train.beta=0.0", "train.beta=0.02")
    assert (cfg.train.beta, cfg.train.num_epochs) == (0.02, 2)


def test_override_of_the_whole_rewards_list(tmp_path):
    cfg = load(tmp_path, {"rewards": ["mark_reward"]}, "rewards=[int_reward, {name: len_reward, weight: 2}]")
    assert [(r.name, r.weight) for r in cfg.rewards] == [("int_reward", 1.0), ("len_reward", 2.0)]


def test_apply_override_edits_the_raw_mapping_in_place():
    raw: dict = {"train": {"beta": 0.1}}
    apply_override(raw, "train.beta=0")
    apply_override(raw, "eval.pass_k=[1]")
    assert raw == {"train": {"beta": 0}, "eval": {"pass_k": [1]}}


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("train.beta", ["'train.beta'", "key.path=value"]),
        ("=0.1", ["key.path=value"]),
        ("train.beta=[1", ["'train.beta=[1'", "not valid YAML"]),
    ],
)
def test_malformed_override_is_a_user_error(tmp_path, override, words):
    message = load_error(tmp_path, {}, override)
    for word in words:
        assert word in message


def test_override_below_a_plain_value_says_it_is_not_a_section(tmp_path):
    message = load_error(tmp_path, {"model": {"name": "foo"}}, "model.name.sub=1")
    assert "model.name is not a section" in message


# -- unknown keys ----------------------------------------------------------------------------------------------------

TRAIN_KEYS_NEAR_LR = "num_epochs, max_steps, learning_rate, lr_scheduler_type"


def test_unknown_key_in_yaml_suggests_the_close_match_and_lists_the_section(tmp_path):
    message = load_error(tmp_path, {"train": {"lerning_rate": 1e-5}})
    assert "unknown config key 'train.lerning_rate'" in message
    assert "Did you mean 'learning_rate'?" in message
    assert TRAIN_KEYS_NEAR_LR in message
    assert "exp.yaml" in message  # names the file


def test_unknown_top_level_section_in_yaml(tmp_path):
    message = load_error(tmp_path, {"trainer": {"beta": 0.0}})
    assert "unknown config key 'trainer'" in message
    assert "Did you mean 'train'?" in message
    assert "name, model, data, rewards, train, eval, logging, output" in message


def test_unknown_key_in_set_suggests_the_close_match(tmp_path):
    message = load_error(tmp_path, {}, "train.lerning_rate=1e-5")
    assert "unknown config key 'train.lerning_rate'" in message
    assert "Did you mean 'learning_rate'?" in message
    assert TRAIN_KEYS_NEAR_LR in message


def test_unknown_section_in_set(tmp_path):
    message = load_error(tmp_path, {}, "trian.beta=0")
    assert "unknown config key 'trian'" in message
    assert "Did you mean 'train'?" in message


def test_unknown_key_with_no_close_match_still_lists_the_valid_keys(tmp_path):
    message = load_error(tmp_path, {}, "eval.zzz=1")
    assert "unknown config key 'eval.zzz'" in message
    assert "Did you mean" not in message
    assert "zero_shot, when, every_steps" in message


def test_unknown_key_in_a_reward_names_the_reward_keys(tmp_path):
    message = load_error(tmp_path, {"rewards": [{"name": "mark_reward", "wieght": 2}]})
    assert "unknown config key 'rewards.0.wieght'" in message
    assert "Did you mean 'weight'?" in message
    assert "name, weight, params, path" in message


# -- wrong values ------------------------------------------------------------------------------------------------------


def test_wrong_type_names_key_value_and_expected_type(tmp_path):
    message = load_error(tmp_path, {"train": {"beta": "abc"}})
    assert "train.beta = 'abc' is invalid" in message
    assert "valid number" in message


def test_wrong_type_from_set(tmp_path):
    message = load_error(tmp_path, {}, "train.num_epochs=1.5")
    assert "train.num_epochs = 1.5 is invalid" in message
    assert "integer" in message


def test_section_that_is_not_a_mapping(tmp_path):
    assert "train = [1, 2] is invalid" in load_error(tmp_path, {"train": [1, 2]})


def test_value_out_of_range(tmp_path):
    message = load_error(tmp_path, {"data": {"train_samples": 0}})
    assert "data.train_samples = 0 is invalid" in message
    assert "greater than or equal to 1" in message


@pytest.mark.parametrize(
    ("content", "override"),
    [({"train": {"loss_type": "ppo"}}, None), ({}, "train.loss_type=ppo")],
    ids=["yaml", "set"],
)
def test_invalid_literal_lists_the_allowed_values(tmp_path, content, override):
    message = load_error(tmp_path, content, *([override] if override else []))
    assert "train.loss_type = 'ppo' is not allowed" in message
    assert "'grpo', 'dr_grpo', 'bnpo', 'dapo' or 'hybrid'" in message


def test_invalid_scale_rewards_literal(tmp_path):
    message = load_error(tmp_path, {}, "train.scale_rewards=token")
    assert "train.scale_rewards = 'token' is not allowed" in message
    assert "'group', 'batch' or 'none'" in message


# -- file errors -------------------------------------------------------------------------------------------------------


def test_missing_config_file_names_the_configs_nearby(tmp_path):
    write(tmp_path, {}, name="alpha.yaml")
    write(tmp_path, {}, name="beta.yaml")
    with pytest.raises(UserError) as raised:
        load_config(tmp_path / "alpah.yaml")
    message = str(raised.value)
    assert f"config file not found: {tmp_path / 'alpah.yaml'}" in message
    assert "alpha.yaml, beta.yaml" in message


def test_missing_config_file_in_a_missing_directory(tmp_path):
    with pytest.raises(UserError, match="config file not found.*experiment_configs/quickstart.yaml"):
        load_config(tmp_path / "nowhere" / "exp.yaml")


def test_yaml_syntax_error_gives_line_and_column(tmp_path):
    # line 3 is indented by one space: a mapping key where the parser expects the end of `train`'s block
    message = load_error(tmp_path, "train:\n  beta: 0.1\n bad: 1\n")
    assert "is not valid YAML at line 3, column 2" in message
    assert "exp.yaml" in message


def test_unclosed_bracket_is_a_syntax_error(tmp_path):
    assert "is not valid YAML at line" in load_error(tmp_path, "eval:\n  pass_k: [1, 5\n")


def test_a_list_at_top_level_is_refused(tmp_path):
    message = load_error(tmp_path, "- train\n- eval\n")
    assert "must hold a mapping of sections" in message
    assert "not a list" in message


# -- cross-key rules -------------------------------------------------------------------------------------------------


def test_batch_must_hold_whole_groups(tmp_path):
    message = load_error(tmp_path, {"train": {"num_generations": 4, "per_device_train_batch_size": 6}})
    assert "(6) must be a multiple of num_generations (4)" in message


def test_gradient_accumulation_counts_toward_whole_groups(tmp_path):
    # 6 x 2 = 12 completions = 3 groups of 4: valid
    train = {"num_generations": 4, "per_device_train_batch_size": 6, "gradient_accumulation_steps": 2}
    assert load(tmp_path, {"train": train}).train.per_device_train_batch_size == 6


def test_num_samples_must_reach_the_largest_k(tmp_path):
    message = load_error(tmp_path, {"eval": {"pass_k": [1, 5], "num_samples": 4}})
    assert "num_samples (4) is smaller than the largest k in pass_k (5)" in message
    assert load(tmp_path, {"eval": {"pass_k": [1, 5], "num_samples": 5}}).eval.samples_per_prompt == 5


def test_pass_k_is_sorted_deduplicated_and_positive(tmp_path):
    assert load(tmp_path, {"eval": {"pass_k": [5, 1, 5]}}).eval.pass_k == [1, 5]
    assert "every k in pass_k must be >= 1" in load_error(tmp_path, {"eval": {"pass_k": [0, 1]}})


def test_no_pass_k_draws_no_samples(tmp_path):
    assert load(tmp_path, {"eval": {"pass_k": [], "num_samples": 3}}).eval.samples_per_prompt == 0


def test_when_steps_needs_every_steps(tmp_path):
    assert "when: steps needs every_steps" in load_error(tmp_path, {"eval": {"when": "steps"}})
    assert load(tmp_path, {"eval": {"when": "steps", "every_steps": 5}}).eval.every_steps == 5


@pytest.mark.parametrize(
    ("content", "budget"),
    [
        ({"model": {"max_seq_length": 256}, "train": {"max_completion_length": 256}}, 256),
        (
            {"model": {"max_seq_length": 256}, "train": {"max_completion_length": 64}, "eval": {"max_new_tokens": 300}},
            300,
        ),
    ],
    ids=["train-budget-equal", "eval-budget-larger"],
)
def test_completion_budget_must_leave_room_for_the_prompt(tmp_path, content, budget):
    message = load_error(tmp_path, content)
    assert f"the completion budget ({budget} tokens) leaves no room for the prompt" in message
    assert "model.max_seq_length (256)" in message


def test_completion_budget_one_below_max_seq_length_is_valid(tmp_path):
    cfg = load(tmp_path, {"model": {"max_seq_length": 256}, "train": {"max_completion_length": 255}})
    assert cfg.train.max_completion_length == 255


def test_builtin_width_must_divide_by_heads(tmp_path):
    message = load_error(tmp_path, {}, "model.builtin.hidden_size=100", "model.builtin.num_heads=3")
    assert "hidden_size (100) must be divisible by num_heads (3)" in message


def test_every_problem_is_reported_at_once(tmp_path):
    message = load_error(tmp_path, {"train": {"beta": "x", "loss_type": "ppo"}})
    assert "train.beta" in message and "train.loss_type" in message


def test_validate_config_names_its_source():
    with pytest.raises(UserError, match="^from the notebook does not validate: train.beta"):
        validate_config({"train": {"beta": -1}}, source="from the notebook")


# -- the config reference --------------------------------------------------------------------------------------------


def leaf_keys(instance: BaseModel, prefix: str = "") -> list[str]:
    keys = []
    for name in type(instance).model_fields:
        value = getattr(instance, name)
        if isinstance(value, BaseModel):
            keys.extend(leaf_keys(value, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_describe_schema_covers_every_leaf_key():
    described = [row[0] for row in describe_schema()]
    assert sorted(described) == sorted(leaf_keys(ExperimentConfig()))
    assert len(described) == len(set(described))
    assert "model.builtin.hidden_size" in described and "rewards" in described


def test_describe_schema_gives_defaults_and_help():
    rows = {key: (default, help_text) for key, default, help_text in describe_schema()}
    assert rows["train.beta"][0] == "0.04"
    assert "DeepSeekMath GRPO: 0.04" in rows["train.beta"][1]
    assert rows["train.loss_type"][0] == "'grpo'"
    assert rows["eval.pass_k"][0] == "[1, 5, 10]"
    assert rows["data.train_samples"][0] == "None"


# -- the shipped configs ---------------------------------------------------------------------------------------------


def test_there_are_configs_to_check():
    assert CONFIGS, "experiment_configs/*.yaml is empty"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.name  # a name from the YAML or its file


# -- the entry point: exit code 2, one paragraph, no run dir -------------------------------------------------------

# A config that gets as far as the data: countdown, tiny, no GPU, no wandb, and a warm start too short to matter if a
# case ever got past its error.
CLI_BASE = {
    "model": {"name": "builtin:tiny", "max_seq_length": 128, "builtin": {"sft_steps": 1, "sft_examples": 10}},
    "data": {
        "task": "countdown",
        "prompt_template": "{question}\n",
        "train_samples": 8,
        "test_samples": 4,
        "options": {"min_numbers": 2, "max_numbers": 2, "max_number": 9, "operations": ["+"]},
    },
    "train": {"num_generations": 4, "per_device_train_batch_size": 8, "max_completion_length": 16},
    "eval": {"pass_k": [1]},
    "logging": {"wandb": "disabled"},
}
JSONL = {"task": "jsonl", "options": {}, "train_samples": None, "test_samples": None}

# case: (config file contents or None for a missing file, --set overrides, words the message must hold)
CLI_CASES = {
    "missing-config": (None, [], ["config file not found", "absent.yaml", "base.yaml"]),
    "yaml-syntax": ("train:\n  beta: 0.1\n bad: 1\n", [], ["not valid YAML at line 3, column 2"]),
    "unknown-key": (CLI_BASE, ["train.lerning_rate=1e-5"], ["unknown config key", "Did you mean 'learning_rate'"]),
    "wrong-type": (CLI_BASE, ["train.beta=abc"], ["train.beta = 'abc' is invalid", "valid number"]),
    "unknown-reward": (CLI_BASE, ["rewards=[no_such_reward]"], ["no_such_reward", "Valid rewards", "mark_reward"]),
    "unknown-task": (CLI_BASE, ["data.task=nope"], ["unknown task 'nope'", "countdown"]),
    "too-few-test-rows": (  # generated countdown: a test split of 5 problems
        CLI_BASE,
        ["data.options.test_size=5", "data.test_samples=10"],
        ["data.test_samples is 10", "has only 5 rows"],
    ),
    "empty-data": (
        {**CLI_BASE, "data": {**JSONL, "source": "{tmp}/empty.jsonl"}},
        [],
        ["train split", "empty.jsonl", "has no rows"],
    ),
}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """Run every case's entry point at once (each pays seconds of imports; two cores share them), then collect."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
        "GRPO_LAB_CACHE": str(tmp_path_factory.mktemp("cache")),
        "COLUMNS": "400",  # one paragraph on one line, so words are not split by wrapping
    }
    started = {}
    for case, (content, overrides, _) in CLI_CASES.items():
        tmp = tmp_path_factory.mktemp(case)
        (tmp / "empty.jsonl").write_text("")
        if content is None:
            write(tmp, CLI_BASE, name="base.yaml")  # a neighbour the message should name
            config = tmp / "absent.yaml"
        else:
            text = content if isinstance(content, str) else yaml.safe_dump(content)
            config = write(tmp, text.replace("{tmp}", str(tmp)))
        command = [sys.executable, "experiments/run_eval_test.py", str(config), "--output-dir", str(tmp / "run")]
        for override in overrides:
            command += ["--set", override]
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started[case] = (process, tmp / "run")
    results = {}
    for case, (process, run_dir) in started.items():
        try:
            stdout, stderr = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results[case] = (process.returncode, stdout, stderr, run_dir)
    return results


@pytest.mark.parametrize("case", CLI_CASES)
def test_entry_point_refuses_bad_input_with_exit_2_one_paragraph_and_no_run_dir(cli_runs, case):
    returncode, stdout, stderr, run_dir = cli_runs[case]
    assert returncode == 2, f"exit {returncode}\nstdout: {stdout[-2000:]}\nstderr: {stderr[-2000:]}"
    assert "Traceback" not in stderr
    paragraph = stderr.strip()
    assert paragraph.startswith("error: ")
    assert "\n" not in paragraph, paragraph  # one paragraph (COLUMNS is wide, so rich does not wrap it)
    for word in CLI_CASES[case][2]:
        assert word in paragraph
    assert not run_dir.exists()


def test_set_null_unsets_an_optional_text_key_but_other_text_stays_text():
    raw: dict = {"data": {"source": "data.jsonl"}}
    apply_override(raw, "data.source=null")
    apply_override(raw, "model.name=null")  # model.name is required text: kept as the text "null"
    assert raw["data"]["source"] is None and raw["model"]["name"] == "null"


def test_no_baseline_with_group_scaling_is_refused_with_the_fix():
    with pytest.raises(UserError, match="scale_rewards: none"):
        validate_config({"train": {"baseline": "none", "scale_rewards": "group"}})
    assert validate_config({"train": {"baseline": "none", "scale_rewards": "none"}}).train.baseline == "none"


def test_a_scalar_file_is_refused_naming_its_type(tmp_path):
    assert "not a str" in load_error(tmp_path, "just text\n")


def test_the_config_reference_page_is_the_schema():
    from train.config import config_reference_markdown

    page = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text()
    start = page.index("<!-- config-reference")
    table = page[page.index("\n", start) + 1 : page.index("<!-- end config-reference -->")]
    assert table == config_reference_markdown(), "paste train.config.config_reference_markdown() into docs/config.md"


def test_an_empty_config_is_refused_not_run_with_every_default(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(UserError, match="is empty"):
        load_config(path)


def test_a_config_that_is_not_utf8_is_a_user_error(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(UserError, match="UTF-8"):
        load_config(path)


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "a/b", "..", "nul\x00name"])
def test_a_name_that_is_not_a_plain_file_name_is_refused(tmp_path, name):
    with pytest.raises(UserError, match="plain file name"):
        validate_config({"name": name})
