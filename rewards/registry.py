"""The reward registry: `REWARDS` maps each name to its factory, `get_reward` builds the callable TRL calls.

    f = get_reward("correctness_reward", value=2.0)
    f(prompts=None, completions=["<answer>18</answer>"], answer=["18"])  # -> [2.0]

A user's own reward is a function in their own file, `get_reward("my_reward", path="my_rewards.py:my_reward")`.
It is called TRL's way, `my_reward(completions=[str, ...], prompts=..., completion_ids=..., **columns, **params)`
(only the arguments its signature names, unless it takes **kwargs), with completions already turned into text.
Optional attributes `my_reward.value_range` and `my_reward.required_columns` declare its metadata; without
them the range is (-inf, inf) and the required columns are its parameters that have no default.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import numbers
import sys
import time
import traceback
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from rewards import accuracy, countdown, formats, length
from rewards.core import Completion, Reward, RewardConfigError, RewardError, approximate_tokens, completion_text

REWARDS: dict[str, Callable[..., Reward]] = {
    # the lenient set (seed study) and its strict originals
    "hard_format_reward": formats.hard_format_reward,
    "mark_reward": formats.mark_reward,
    "strict_hard_format_reward": formats.strict_hard_format_reward,
    "strict_mark_reward": formats.strict_mark_reward,
    "correctness_reward": accuracy.correctness_reward,
    "math_accuracy_reward": accuracy.math_accuracy_reward,
    "int_reward": accuracy.int_reward,
    # Countdown
    "countdown_reward": countdown.countdown_reward,
    "countdown_binary_reward": countdown.countdown_binary_reward,
    # the GSM8K demo set (willccbb)
    "xmlcount_reward": formats.xmlcount_reward,
    "strict_format_reward": formats.strict_format_reward,
    "soft_format_reward": formats.soft_format_reward,
    "soft_format_anywhere_reward": formats.soft_format_anywhere_reward,
    # the open-r1 set
    "format_reward": formats.format_reward,
    "tag_count_reward": formats.tag_count_reward,
    "reasoning_steps_reward": formats.reasoning_steps_reward,
    "cosine_scaled_reward": length.cosine_scaled_reward,
    "len_reward": length.len_reward,
    "repetition_penalty_reward": length.repetition_penalty_reward,
    "soft_overlong_punishment": length.soft_overlong_punishment,
}

# Keyword arguments TRL adds to every reward call that are not dataset columns. Built-in rewards ignore them; a
# user's reward receives those its signature names.
TRL_EXTRAS = ("trainer_state", "log_metric", "log_extra", "environments")
LENGTH_PENALTY_PARAM = "length_penalty_tokens"
_NO_COLUMNS: dict[str, Any] = {}
_CALL_ARGUMENTS = ("prompts", "completions", "completion_ids")


class RewardFunction:
    """A reward as TRL calls it: `f(prompts=None, completions=..., completion_ids=None, **columns)`.

    Returns one float (or None: not applicable) per completion. Completions may be strings or chat lists (the
    last message's content is scored). Metadata: `__name__` (TRL logs rewards/<name>/mean), `required_columns`,
    `value_range`, and the cumulative `seconds_total` and `calls` spent inside the reward.
    """

    def __init__(
        self,
        name: str,
        reward: Reward | None = None,
        user_function: Callable[..., Any] | None = None,
        user_params: dict[str, Any] | None = None,
        source: str | None = None,
        length_penalty_tokens: int | None = None,
    ) -> None:
        self.__name__ = name
        self.reward = reward
        self.user_function = user_function
        self.user_params = user_params or {}
        self.source = source
        self.length_penalty_tokens = length_penalty_tokens
        if reward is not None:
            self.required_columns, low, high = reward.required_columns, *reward.value_range
        else:
            self.required_columns = _user_required_columns(user_function, self.user_params)
            low, high = getattr(user_function, "value_range", (-math.inf, math.inf))
        if length_penalty_tokens is not None:
            # The multiplier lies in [0.8, 1]: it can pull a positive bound down or a negative bound up.
            low, high = min(low, 0.8 * low), max(high, 0.8 * high)
        self.value_range = (float(low), float(high))
        self.seconds_total = 0.0
        self.calls = 0

    def __repr__(self) -> str:
        return f"<reward {self.__name__} range={self.value_range} columns={self.required_columns}>"

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        start = time.perf_counter()
        try:
            extras = {key: columns.pop(key) for key in TRL_EXTRAS if key in columns}
            texts = [completion_text(completion) for completion in completions or ()]
            self._check_columns(columns, len(texts))
            if self.user_function is not None:
                scores = self._score_user(texts, prompts, completion_ids, columns, extras)
            else:
                scores = self._score_builtin(texts, prompts, completion_ids, columns)
            if self.length_penalty_tokens is not None:
                tokens = _token_counts(texts, completion_ids)
                scores = [
                    None if score is None else score * length.length_penalty_factor(n, self.length_penalty_tokens)
                    for score, n in zip(scores, tokens, strict=True)
                ]
            return scores
        finally:
            self.seconds_total += time.perf_counter() - start
            self.calls += 1

    def _check_columns(self, columns: dict[str, Any], count: int) -> None:
        for column in self.required_columns:
            if column not in columns:
                raise RewardConfigError(
                    f"Reward '{self.__name__}' needs the dataset column '{column}', which this batch does not have "
                    f"(columns present: {', '.join(sorted(columns)) or 'none'}). Add '{column}' to the dataset "
                    f"(for the CLI: a JSONL field or --{column}), or remove '{self.__name__}' from the rewards."
                )
            if len(columns[column]) != count:
                raise RewardConfigError(
                    f"Reward '{self.__name__}': column '{column}' has {len(columns[column])} values for {count} "
                    f"completions; pass one value per completion."
                )

    def _score_builtin(self, texts, prompts, completion_ids, columns) -> list[float | None]:
        assert self.reward is not None
        tokens = _token_counts(texts, completion_ids)
        prompts = prompts if prompts is not None else [None] * len(texts)
        gold_rows = (
            [
                dict(zip(self.required_columns, values, strict=True))
                for values in zip(*(columns[c] for c in self.required_columns), strict=True)
            ]
            if self.required_columns
            else [_NO_COLUMNS] * len(texts)
        )
        # A row without gold (None in a column the reward reads) is not applicable: it is not scored.
        applicable = [i for i, gold in enumerate(gold_rows) if all(value is not None for value in gold.values())]
        batch = [Completion(texts[i], tokens[i], gold_rows[i], prompts[i]) for i in applicable]
        scores: list[float | None] = [None] * len(texts)
        for i, score in zip(applicable, self.reward.score(batch), strict=True):
            scores[i] = score
        return scores

    def _score_user(self, texts, prompts, completion_ids, columns, extras) -> list[float | None]:
        assert self.user_function is not None
        arguments = {
            "prompts": prompts,
            "completions": texts,
            "completion_ids": completion_ids,
            **columns,
            **extras,
            **self.user_params,
        }
        if not _takes_var_keyword(self.user_function):
            accepted = inspect.signature(self.user_function).parameters
            arguments = {key: value for key, value in arguments.items() if key in accepted}
        where = f"reward '{self.__name__}' ({self.source})"
        try:
            scores = self.user_function(**arguments)
        except Exception as error:
            raise RewardError(f"{where} raised {type(error).__name__}: {error}") from error
        if not isinstance(scores, Sequence) or isinstance(scores, str) or len(scores) != len(texts):
            raise RewardError(
                f"{where} must return a list with one float (or None) per completion: got {type(scores).__name__}"
                + (f" of length {len(scores)}" if isinstance(scores, Sequence) else "")
                + f" for {len(texts)} completions."
            )
        bad = [score for score in scores if score is not None and not isinstance(score, numbers.Real)]
        if bad:
            raise RewardError(f"{where} returned a value that is not a number or None: {bad[0]!r}.")
        return [None if score is None else float(score) for score in scores]


def _token_counts(texts: list[str], completion_ids: Sequence[Sequence[int]] | None) -> list[int]:
    if completion_ids is None:
        return [approximate_tokens(text) for text in texts]
    return [len(ids) for ids in completion_ids]


def get_reward(name: str, path: str | None = None, **params: Any) -> RewardFunction:
    """The TRL-compatible reward called `name`, built with `params`; with `path` ("file.py:function"), the user's
    own function from that file. Raises RewardConfigError naming the problem and the valid choices."""
    length_penalty_tokens = params.pop(LENGTH_PENALTY_PARAM, None)
    if length_penalty_tokens is not None and (
        not isinstance(length_penalty_tokens, int)
        or isinstance(length_penalty_tokens, bool)
        or length_penalty_tokens <= 0
    ):
        raise RewardConfigError(
            f"Reward '{name}': {LENGTH_PENALTY_PARAM} must be a positive whole number of tokens, got "
            f"{length_penalty_tokens!r}."
        )
    if path is not None:
        if name in REWARDS:
            raise RewardConfigError(
                f"Reward name '{name}' is a built-in reward, but a path ({path}) was given for it. Give your own "
                f"reward another name so the two are not logged under the same key."
            )
        function = load_user_function(path)
        _check_user_params(name, function, params)
        return RewardFunction(
            name, user_function=function, user_params=params, source=path, length_penalty_tokens=length_penalty_tokens
        )
    if name not in REWARDS:
        raise RewardConfigError(
            f"Unknown reward '{name}'. Valid rewards: {', '.join(REWARDS)}. For a reward of your own, give its file "
            f"and function as path: {{name: {name}, path: my_rewards.py:{name}}}."
        )
    factory = REWARDS[name]
    reward = factory(**_checked_params(name, factory, params))
    return RewardFunction(name, reward, length_penalty_tokens=length_penalty_tokens)


# --- parameters of built-in rewards: names, required ones and types, checked against the factory's signature ---


def describe_params(factory: Callable[..., Reward]) -> list[str]:
    """One "name (type, default)" entry per parameter of a factory, plus the length penalty every reward takes."""
    hints = typing.get_type_hints(factory)
    entries = []
    for key, parameter in inspect.signature(factory).parameters.items():
        default = "required" if parameter.default is inspect.Parameter.empty else f"default {parameter.default!r}"
        entries.append(f"{key} ({_type_name(hints[key])}, {default})")
    entries.append(f"{LENGTH_PENALTY_PARAM} (integer, default None)")
    return entries


def _checked_params(name: str, factory: Callable[..., Reward], params: dict[str, Any]) -> dict[str, Any]:
    parameters = inspect.signature(factory).parameters
    hints = typing.get_type_hints(factory)
    valid = f"Valid parameters of '{name}': {'; '.join(describe_params(factory))}."
    unknown = [key for key in params if key not in parameters]
    if unknown:
        raise RewardConfigError(f"Reward '{name}' has no parameter {', '.join(map(repr, unknown))}. {valid}")
    missing = [key for key, p in parameters.items() if p.default is inspect.Parameter.empty and key not in params]
    if missing:
        raise RewardConfigError(f"Reward '{name}' needs the parameter {', '.join(map(repr, missing))}. {valid}")
    checked = {}
    for key, value in params.items():
        ok, converted = _convert(value, hints[key])
        if not ok:
            raise RewardConfigError(
                f"Reward '{name}': parameter '{key}' must be {_type_name(hints[key])}, got {value!r}. {valid}"
            )
        checked[key] = converted
    return checked


def _convert(value: Any, hint: Any) -> tuple[bool, Any]:
    """(True, value in the hinted type) when `value` fits `hint`; (False, None) otherwise."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return (value in typing.get_args(hint), value)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            ok, converted = _convert(value, option)
            if ok:
                return ok, converted
        return False, None
    if hint is type(None):
        return (value is None, None)
    if isinstance(value, bool):
        return (hint is bool, value)
    if hint is float:
        return (isinstance(value, int | float), float(value) if isinstance(value, int | float) else None)
    if hint is int:
        return (isinstance(value, int), value)
    if hint is str:
        return (isinstance(value, str), value)
    return (isinstance(value, hint), value)


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(hint))
    if typing.get_args(hint):
        return " or ".join(_type_name(arg) for arg in typing.get_args(hint))
    return {float: "a number", int: "an integer", str: "text", bool: "true/false", type(None): "None"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


# --- a user's own reward ---


def load_user_function(path: str) -> Callable[..., Any]:
    """The function named by "file.py:function"; a relative file resolves against the current directory."""
    file_part, colon, function_name = path.rpartition(":")
    if not colon or not file_part or not function_name:
        raise RewardConfigError(
            f"Reward path '{path}' must name a Python file and a function in it, as in my_rewards.py:my_reward."
        )
    file = Path(file_part).expanduser()
    file = file if file.is_absolute() else Path.cwd() / file
    if not file.is_file():
        raise RewardConfigError(
            f"Reward file '{file_part}' not found (looked for {file}; relative paths resolve against the current "
            f"directory). Fix the path before the ':' in '{path}'."
        )
    # One module per file path, registered in sys.modules so dataclasses and pickling in the user's file work.
    module_name = "user_reward_" + hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        raise RewardConfigError(
            f"Reward file {file} has a syntax error at line {error.lineno}: {error.msg}."
        ) from error
    except Exception as error:
        line = traceback.extract_tb(error.__traceback__)[-1]
        raise RewardConfigError(
            f"Importing reward file {file} failed ({type(error).__name__}: {error}) at {line.filename}:{line.lineno}."
        ) from error
    function = getattr(module, function_name, None)
    if not callable(function):
        defined = sorted(
            key
            for key, value in vars(module).items()
            if callable(value) and getattr(value, "__module__", None) == module_name
        )
        raise RewardConfigError(
            f"Reward file {file} has no function '{function_name}'. Functions defined there: "
            f"{', '.join(defined) or 'none'}. Fix the name after the ':' in '{path}'."
        )
    return function


def _takes_var_keyword(function: Callable[..., Any]) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(function).parameters.values())


def _check_user_params(name: str, function: Callable[..., Any], params: dict[str, Any]) -> None:
    parameters = inspect.signature(function).parameters
    if "completions" not in parameters and not _takes_var_keyword(function):
        raise RewardConfigError(
            f"Reward '{name}' ({function.__name__}) must take a 'completions' argument (a list of completion texts), "
            f"as in def {function.__name__}(completions, **kwargs)."
        )
    if _takes_var_keyword(function):
        return
    unknown = [key for key in params if key not in parameters]
    if unknown:
        raise RewardConfigError(
            f"Reward '{name}' has no parameter {', '.join(map(repr, unknown))}. Parameters of {function.__name__}: "
            f"{', '.join(parameters)}; or add **kwargs to its signature."
        )


def _user_required_columns(function: Callable[..., Any] | None, params: dict[str, Any]) -> tuple[str, ...]:
    declared = getattr(function, "required_columns", None)
    if declared is not None:
        return tuple(declared)
    named = (*_CALL_ARGUMENTS, *TRL_EXTRAS, *params)
    return tuple(
        key
        for key, p in inspect.signature(function).parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and key not in named
    )
