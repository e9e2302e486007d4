"""The reward registry: `REWARDS` maps each name to its factory, `get_reward` builds the callable TRL calls.

    f = get_reward("correctness_reward", value=2.0)
    f(prompts=None, completions=["<answer>18</answer>"], answer=["18"])  # -> [2.0]

A user's own reward is a function in their own file, `get_reward("my_reward", path="my_rewards.py:my_reward")`:
rewards/user.py adapts it into a `Reward`, so built-in and user rewards take one code path in RewardFunction
(columns checked, rows without gold left out, every score checked and non-finite ones dropped, length penalty).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import numbers
import sys
import time
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from rewards import accuracy, countdown, formats, guard, length, user
from rewards.core import (
    Completion,
    Reward,
    RewardConfigError,
    RewardResultError,
    UnusableScores,
    UserRewardRaised,
    approximate_tokens,
    check_params_tree,
    completion_text,
)
from rewards.user import TIMEOUT_PARAM, TRL_EXTRAS, USER_REWARD_TIMEOUT_SECONDS

REWARDS: dict[str, Callable[..., Reward]] = {
    # the lenient set (seed study) and its strict originals
    "hard_format_reward": formats.hard_format_reward,
    "mark_reward": formats.mark_reward,
    "own_answer_reward": formats.own_answer_reward,
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

LENGTH_PENALTY_PARAM = "length_penalty_tokens"
# A user reward that fails on this many calls in a row (raising, or no finite score) stops a training run: with
# one call per generation batch, that is three batches of rollouts that trained on nothing from it.
MAX_FAILING_CALLS = 3
OUTPUT_SHOWN_CHARS = 2048  # of what a user reward prints, shown once
_NO_COLUMNS: dict[str, Any] = {}


class RewardFunction:
    """A reward as TRL calls it: `f(prompts=None, completions=..., completion_ids=None, **columns)`.

    Returns one float (or None: not applicable) per completion. Completions may be strings or chat lists (the
    last message's content is scored). Metadata: `__name__` (TRL logs rewards/<name>/mean), `source` ("built-in"
    or the user's file:function), `required_columns`, `value_range`, and running counts: `seconds_total` and
    `calls` spent inside the reward, `non_finite_count` (inf or NaN scores, dropped to None so that they never
    poison the summed reward) and `invalid_gold_count` (rows whose gold cannot be scored, e.g. a NaN target: None).
    With `first_call_strict` (a training run sets it), an inf or NaN score in the reward's first call is a
    RewardError naming the reward and the value: a reward that is broken from the start stops the run before it
    trains, while a rare non-finite score later is counted and dropped.

    A user's reward that raises or calls sys.exit (UserRewardRaised): without `first_call_strict`, or on the first
    call, the error propagates (one paragraph, exit code 2). After the first call of a training run the batch's
    scores become None and are counted in `error_count`, with one warning on stderr; a reward that fails on
    MAX_FAILING_CALLS calls in a row (each raising, or returning no finite score at all) stops the run with a
    RewardResultError, since nothing it gives can train. What a user's reward prints to sys.stdout / sys.stderr is
    captured: the first OUTPUT_SHOWN_CHARS characters are shown once, the rest counted in `printed_chars`.
    """

    def __init__(
        self, name: str, reward: Reward, source: str = "built-in", length_penalty_tokens: int | None = None
    ) -> None:
        self.__name__ = name
        self.reward = reward
        self.source = source
        self.length_penalty_tokens = length_penalty_tokens
        self.required_columns = reward.required_columns
        low, high = reward.value_range
        if length_penalty_tokens is not None:
            # The multiplier lies in [0.8, 1]: it can pull a positive bound down or a negative bound up.
            low, high = min(low, 0.8 * low), max(high, 0.8 * high)
        self.value_range = (float(low), float(high))
        self.seconds_total = 0.0
        self.calls = 0
        self.non_finite_count = 0
        self.first_call_strict = False
        self.invalid_gold_count = 0
        self.invalid_gold_examples: list[str] = []
        self.error_count = 0  # scores lost to a user reward that raised, after its first call
        self.failing_calls = 0  # calls in a row that raised or gave no finite score
        self.printed_chars = 0
        self._output_shown = False

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
            texts, extras = self._inputs(completions, columns)
            non_finite_before = self.non_finite_count
            try:
                scores = self._score(texts, prompts, completion_ids, columns, extras)
            except UserRewardRaised as error:
                scores = self._count_failure(error, len(texts))
            else:
                lost = self.non_finite_count - non_finite_before
                self._count_call(failed=bool(scores) and lost > 0 and all(score is None for score in scores))
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

    def _count_failure(self, error: UserRewardRaised, count: int) -> list[float | None]:
        """A user reward raised: on its first call (or outside training) that is the error; later its batch is
        scored None and counted, and the run stops once it has failed MAX_FAILING_CALLS calls in a row."""
        if not self.first_call_strict:
            raise error
        if self.calls == 0:
            raise UserRewardRaised(
                f"{error} This was its first call, made before anything trains. Fix the function and run again;"
                f" experiments/score_rewards.py --reward-file {self.source.rpartition(':')[0]} "
                "scores sample completions with it."
            ) from None
        self.error_count += count
        if not self.failing_calls:
            print(
                f"warning: {error} Its {count} scores of this batch are None (counted per step as "
                f"rewards/errors/{self.__name__}); {MAX_FAILING_CALLS} failing batches in a row stop the run.",
                file=sys.stderr,
            )
        self._count_call(failed=True, error=error)
        return [None] * count

    def _count_call(self, *, failed: bool, error: Exception | None = None) -> None:
        self.failing_calls = self.failing_calls + 1 if failed else 0
        if self.failing_calls >= MAX_FAILING_CALLS and self.first_call_strict:
            why = f"raised or gave no finite score (the last: {error})" if error else "gave no finite score"
            raise RewardResultError(
                f"reward '{self.__name__}' ({self.source}) failed on {self.failing_calls} batches in a row: every "
                f"call {why}, so it gives GRPO nothing to learn from. The run stops here; what was logged is kept in "
                "metrics.jsonl. Fix the reward, then continue the run with --resume."
            ) from None

    @contextlib.contextmanager
    def _captured_output(self) -> Iterator[None]:
        """A user reward's output (prints, and writes to file descriptors 1 and 2 from any thread) goes to a
        buffer, not the console: the first OUTPUT_SHOWN_CHARS are shown once (on stderr, after the call), and every
        character is counted in `printed_chars`. A call that moves the current directory or closes or replaces
        stdout/stderr is undone and fails as the reward's (rewards/guard.py)."""
        if self.source == "built-in":
            yield
            return
        buffer = _HeadOfOutput(OUTPUT_SHOWN_CHARS)
        try:
            where = f"reward '{self.__name__}' ({self.source})"
            metric = f"rewards/printed_chars/{self.__name__}"
            with guard.process_guarded(where, buffer, later=self._count_later_output, counted_as=metric):
                yield
        finally:
            self.printed_chars += buffer.chars
            if buffer.chars and not self._output_shown:
                self._output_shown = True
                shown = "".join(buffer.head)
                print(
                    f"reward '{self.__name__}' ({self.source}) printed {buffer.chars} characters in one call; the "
                    f"first {len(shown)} follow. What it prints from now on is counted (rewards/printed_chars/"
                    f"{self.__name__} per step), not shown.\n{shown.rstrip()}\n[end of the output of "
                    f"'{self.__name__}']",
                    file=sys.stderr,
                )

    def _count_later_output(self, text: str) -> None:
        """What a thread the reward left running prints after its call: counted with its output, never shown."""
        self.printed_chars += len(text)

    def _inputs(self, completions: Sequence[Any] | None, columns: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """The completions' texts, and TRL's extra keyword arguments (taken out of `columns`, which keeps the dataset
        columns, checked)."""
        extras = {key: columns.pop(key) for key in TRL_EXTRAS if key in columns}
        texts = [completion_text(completion) for completion in completions or ()]
        self._check_columns(columns, len(texts))
        return texts, extras

    def _check_columns(self, columns: dict[str, Any], count: int) -> None:
        for column in self.required_columns:
            if column not in columns:
                raise RewardConfigError(
                    f"Reward '{self.__name__}' needs the dataset column '{column}', which this batch does not have "
                    f"(columns present: {', '.join(sorted(columns)) or 'none'}). Add '{column}' to the dataset "
                    f"(for the CLI: a JSONL field or --{column}), or remove '{self.__name__}' from the rewards."
                )
        for column, values in columns.items():
            if len(values) != count:
                raise RewardConfigError(
                    f"Reward '{self.__name__}': column '{column}' has {len(values)} values for {count} "
                    f"completions; pass one value per completion."
                )

    def _score(self, texts, prompts, completion_ids, columns, extras) -> list[float | None]:
        rows = _rows(columns, len(texts))
        applicable = [i for i, row in enumerate(rows) if self._gold_issue(row, count_invalid=True) is None]
        batch = self._batch(texts, prompts, completion_ids, rows, applicable, extras)
        scores: list[float | None] = [None] * len(texts)
        with self._captured_output():
            given = self.reward.score(batch)
        for i, score in zip(applicable, self._checked(given, len(batch)), strict=True):
            scores[i] = score
        return scores

    @staticmethod
    def _batch(texts, prompts, completion_ids, rows, applicable: list[int], extras) -> list[Completion]:
        """The `Completion`s of the applicable rows, what the reward's score and explain functions read."""
        tokens = _token_counts(texts, completion_ids)
        prompts = prompts if prompts is not None else [None] * len(texts)
        ids = completion_ids if completion_ids is not None else [None] * len(texts)
        return [Completion(texts[i], tokens[i], rows[i], prompts[i], ids[i], extras) for i in applicable]

    def _gold_issue(self, row: dict[str, Any], count_invalid: bool = False) -> str | None:
        """Why a row is not scored (None in a column the reward reads, or a gold it cannot score), or None when it
        is; with `count_invalid`, a gold it cannot score is counted."""
        if any(row.get(column) is None for column in self.required_columns):
            return "no gold " + ", ".join(column for column in self.required_columns if row.get(column) is None)
        if self.reward.gold_problem is None:
            return None
        problem = self.reward.gold_problem(row)
        if problem is not None and count_invalid:
            self.invalid_gold_count += 1
            if len(self.invalid_gold_examples) < 3:
                self.invalid_gold_examples.append(problem)
        return problem

    @property
    def explains(self) -> bool:
        """Whether the reward can say why it gave each score (`explain`)."""
        return self.reward.explain is not None

    def explain(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Sequence[int]] | None = None,
        **columns: Any,
    ) -> list[str]:
        """One short reason per completion for the score that calling the reward with the same arguments gives:
        the reward's own reason ("8 used twice"), "not applicable: ..." for a row it does not score, and the
        length penalty's factor where it lowered the score. Only people read these (score_rewards.py --explain);
        the trainer never calls it. Raises RewardConfigError for a reward that gives no reasons (`explains`)."""
        if self.reward.explain is None:
            raise RewardConfigError(f"Reward '{self.__name__}' ({self.source}) gives no reasons for its scores.")
        texts, extras = self._inputs(completions, columns)
        rows = _rows(columns, len(texts))
        issues = [self._gold_issue(row) for row in rows]  # not counted: only scoring counts
        applicable = [i for i, issue in enumerate(issues) if issue is None]
        batch = self._batch(texts, prompts, completion_ids, rows, applicable, extras)
        reasons = ["" if issue is None else f"not applicable: {issue}" for issue in issues]
        with self._captured_output():
            given = self.reward.explain(batch)
        if not isinstance(given, Sequence) or isinstance(given, str | bytes) or len(given) != len(batch):
            raise RewardResultError(
                f"reward '{self.__name__}' ({self.source}): its explain function must return one reason (a string) "
                f"per completion, {len(batch)} in all."
            )
        for i, reason in zip(applicable, given, strict=True):
            reasons[i] = "" if reason is None else str(reason)
        if self.length_penalty_tokens is not None:
            tokens = _token_counts(texts, completion_ids)
            for i in applicable:
                factor = length.length_penalty_factor(tokens[i], self.length_penalty_tokens)
                if factor < 1:
                    reasons[i] += f"; x{factor:.2f} length penalty ({tokens[i]} tokens > {self.length_penalty_tokens})"
        return reasons

    def _checked(self, scores: Any, count: int) -> list[float | None]:
        """One float or None per completion: non-finite floats become None (counted); anything else is an error."""
        where = f"reward '{self.__name__}' ({self.source})"
        if not isinstance(scores, Sequence) or isinstance(scores, str | bytes) or len(scores) != count:
            got = type(scores).__name__ + (f" of length {len(scores)}" if isinstance(scores, Sequence) else "")
            raise UnusableScores(
                f"{where} must return a list with one float (or None) per completion: got {got} for {count} "
                f"completions."
            )
        checked: list[float | None] = []
        for score in scores:
            if score is None:
                checked.append(None)
                continue
            if type(score) is not float and not isinstance(score, numbers.Real):
                raise UnusableScores(
                    f"{where} returned {_short(score)} ({type(score).__name__}), which is not a number or None."
                )
            try:
                value = float(score)
            except OverflowError:  # an int or a Fraction past float's range (10**400): not a finite score
                value = math.inf
            except Exception as error:  # a Real whose float() fails: not a usable score either
                raise UnusableScores(
                    f"{where} returned {_short(score)} ({type(score).__name__}), which float() cannot read: {error}."
                ) from None
            if math.isfinite(value):
                checked.append(value)
            elif self.first_call_strict and self.calls == 0:
                raise RewardResultError(
                    f"{where} returned {_short(score)} on its first batch of completions: a non-finite reward cannot "
                    "be summed or normalized. Fix the reward to return a finite number (or None for 'not applicable')."
                )
            else:
                self.non_finite_count += 1
                checked.append(None)
        return checked


def _short(value: Any) -> str:
    """repr(value), cut to 60 characters (10**400 has 401 digits)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


class _HeadOfOutput(io.TextIOBase):
    """A text stream that keeps the first `limit` characters written to it and counts them all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head: list[str] = []
        self.kept = self.chars = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.kept < self.limit:
            self.head.append(text[: self.limit - self.kept])
            self.kept += len(self.head[-1])
        self.chars += len(text)
        return len(text)


def _token_counts(texts: list[str], completion_ids: Sequence[Sequence[int]] | None) -> list[int]:
    if completion_ids is None:
        return [approximate_tokens(text) for text in texts]
    return [len(ids) for ids in completion_ids]


def get_reward(name: str, path: str | None = None, **params: Any) -> RewardFunction:
    """The TRL-compatible reward called `name`, built with `params`; with `path` ("file.py:function"), the user's
    own function from that file. Every reward takes `length_penalty_tokens`; a user's reward also takes
    `call_timeout_seconds` (default USER_REWARD_TIMEOUT_SECONDS; None: no limit). Raises RewardConfigError naming
    the problem and the valid choices."""
    check_params_tree(name, params)
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
        timeout = user.check_timeout(name, params.pop(TIMEOUT_PARAM, USER_REWARD_TIMEOUT_SECONDS))
        return RewardFunction(name, user.user_reward(name, path, params, timeout), path, length_penalty_tokens)
    if name not in REWARDS:
        raise RewardConfigError(
            f"Unknown reward '{name}'. Valid rewards: {', '.join(REWARDS)}. For a reward of your own, give its file "
            f"and function as path: {{name: {name}, path: my_rewards.py:{name}}}."
        )
    if TIMEOUT_PARAM in params:
        raise RewardConfigError(
            f"Reward '{name}' is built in, and its work is bounded already: {TIMEOUT_PARAM} applies to your own "
            f"rewards (with path) only. Remove it from the params of '{name}'."
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
    if hint is float:  # finite: an inf or NaN parameter would make every score non-finite
        ok = isinstance(value, int | float) and math.isfinite(value)
        return (ok, float(value) if ok else None)
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
    return {float: "a finite number", int: "an integer", str: "text", bool: "true/false", type(None): "None"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _rows(columns: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The batch's columns as one dict per completion (a shared empty one when there are no columns)."""
    names = tuple(columns)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    return rows or [_NO_COLUMNS] * count
