"""What every reward is made of: the completion it scores, the `Reward` a factory returns, and the error types.

A reward factory (`correctness_reward(value=2.0)`) returns a `Reward`: a `score` function over one batch of
`Completion`s plus the metadata the trainer and the CLI read (value range, gold columns needed). A user's own
function becomes a `Reward` too (rewards/user.py). `get_reward` (rewards/registry.py) wraps either into the
callable TRL calls. Scorers are module-level functions bound with
functools.partial, never closures, so a reward stays picklable (TRL's async rollout worker pickles them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

# Without token ids (the CLI scores bare text) token counts are estimated at this many characters per token: the
# usual rule of thumb for English BPE vocabularies. Qwen-style tokenizers split digits, so math runs nearer 3.
CHARS_PER_TOKEN = 4


class RewardConfigError(ValueError):
    """A reward asked for by a name, parameter, path or column that does not work; the message says the fix."""


class RewardError(RuntimeError):
    """A reward raised, overran its time limit or returned something unusable; the message names the reward."""


class RewardResultError(RewardError):
    """A reward returned something unusable or overran its time limit: the user's to fix from the message alone."""


class UserRewardRaised(RewardResultError):
    """A user's reward function raised (or called sys.exit): the message names its file, its function, the
    exception and the line of the user's file it came from, so no traceback is needed. A training run counts these
    after the reward's first call (RewardFunction.error_count) instead of stopping."""


class UnusableScores(UserRewardRaised):
    """A reward returned something that is not one number (or None) per completion: counted as a failure of the
    reward, exactly as if it had raised (a training run goes on after its first call, and stops after three)."""


# Reward params are a few knobs: far fewer values than this, however nested.
MAX_PARAM_VALUES = 10_000


def check_params_tree(name: str, params: Mapping[str, Any]) -> None:
    """Refuse params that contain themselves (a YAML alias *x inside its own anchor &x) or hold more than
    MAX_PARAM_VALUES values once YAML's aliases are expanded (nested anchors multiply: 2 KB of YAML can expand to
    gigabytes when written out to config.yaml). Both failed only once the run dir existed."""
    count, stack = 0, [(params, "params", ())]
    while stack:
        value, where, ancestors = stack.pop()
        count += 1
        if count > MAX_PARAM_VALUES:
            raise RewardConfigError(
                f"Reward '{name}': its params hold more than {MAX_PARAM_VALUES} values once YAML's aliases are "
                "expanded (anchors that repeat anchors multiply). Write them out plainly; a large table belongs in a "
                "file your reward reads."
            )
        if isinstance(value, dict | list):
            if id(value) in ancestors:
                raise RewardConfigError(
                    f"Reward '{name}': its params hold a value that holds itself (at {where}: a YAML alias *x inside "
                    "its own anchor &x), so it has no end. Write that value out plainly."
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((item, f"{where}.{key}", (*ancestors, id(value))) for key, item in items)


@dataclass(slots=True)  # not frozen: a frozen __init__ costs three times as much, paid for every completion
class Completion:
    """One completion as a reward sees it (read-only by convention).

    text: the completion text ('' for None; for a chat completion, the last message's content).
    tokens: its length in tokens, from `completion_ids` when TRL gives them, else `approximate_tokens(text)`.
    columns: every dataset column of its row (`answer`, or `target` and `numbers`, and any other).
    prompt: the prompt it answers (what groups completions), None when the caller gave no prompts.
    ids: its token ids when TRL gives them, else None.
    extras: the trainer's keyword arguments of this call (`trainer_state`, `log_metric`, ...), shared by the batch;
        None when there are none.
    """

    text: str
    tokens: int
    columns: Mapping[str, Any]
    prompt: Any = None
    ids: Sequence[int] | None = None
    extras: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Reward:
    """What a reward factory returns.

    score: maps the completions of one batch to one reward each (None = not applicable).
    value_range: the (min, max) every score lies in.
    required_columns: dataset columns the reward reads; an item whose column is None is not applicable.
    gold_problem: for a row's columns, why its gold cannot be scored (a NaN target), or None when it can; such an
        item is not applicable, and counted (RewardFunction.invalid_gold_count).
    explain: maps the same batch to one short reason per completion ("8 used twice"), for people reading scores
        (score_rewards.py --explain). Training never calls it: scoring pays nothing for it. None: no reasons.
    """

    score: Callable[[Sequence[Completion]], list[float | None]]
    value_range: tuple[float, float]
    required_columns: tuple[str, ...] = ()
    gold_problem: Callable[[Mapping[str, Any]], str | None] | None = None
    explain: Callable[[Sequence[Completion]], list[str]] | None = None


def per_completion(
    score_one: Callable[..., float | None],
    value_range: tuple[float, float],
    required_columns: tuple[str, ...] = (),
    gold_problem: Callable[[Mapping[str, Any]], str | None] | None = None,
    explain_one: Callable[..., str] | None = None,
    **params: Any,
) -> Reward:
    """A `Reward` that scores each completion on its own with `score_one(completion, **params)`, and explains each
    score with `explain_one(completion, **params)` when given."""
    explain = None if explain_one is None else partial(_score_each, explain_one, params)
    return Reward(partial(_score_each, score_one, params), value_range, required_columns, gold_problem, explain)


def _score_each(score_one: Callable[..., Any], params: dict[str, Any], completions: Sequence[Completion]) -> list[Any]:
    return [score_one(completion, **params) for completion in completions]


def approximate_tokens(text: str) -> int:
    """Token count estimated from characters: ceil(len(text) / CHARS_PER_TOKEN)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def completion_text(completion: Any) -> str:
    """The text of a completion as TRL passes it: a string, or a chat list whose last message holds the text.

    Anything else (None, a malformed message) reads as ''. Multimodal content parts are joined by their text.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return ""


def group_indices(completions: Sequence[Completion]) -> list[list[int]]:
    """Indices of the completions that share a prompt, one list per prompt, in order of first appearance.

    Without prompts (every prompt None) the whole batch is one group.
    """
    groups: dict[str, list[int]] = {}
    for index, completion in enumerate(completions):
        # repr, not hash: chat prompts are lists of dicts.
        key = completion.prompt if isinstance(completion.prompt, str) else repr(completion.prompt)
        groups.setdefault(key, []).append(index)
    return list(groups.values())
