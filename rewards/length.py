"""Length and repetition rewards, and the length penalty any reward can take.

Lengths: `cosine_scaled_reward` and `len_reward` measure L in characters, as open-r1 does;
`soft_overlong_punishment` and the length penalty count tokens (`Completion.tokens`: from TRL's completion_ids,
or estimated from characters when scoring bare text, see rewards.core.approximate_tokens).
"Correct" is the decision of `correctness_reward` (checker "answer") or of `math_accuracy_reward` (checker "math").
With the math checker, a gold math-verify cannot parse counts as correct for `len_reward` and earns
max_value_correct from `cosine_scaled_reward`, as in open-r1; a comparison past math-verify's bounds is None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Literal

from rewards.accuracy import Checker, explain_verdict, verdicts
from rewards.answers import Verdict, extract_answer
from rewards.core import Completion, Reward, RewardConfigError, group_indices, per_completion

# Repetition is measured over at most this many words: a 16k-token completion has about 12k. Bounds the work on a
# hostile 1 MB completion without changing the score of a real one.
REPETITION_MAX_WORDS = 20_000


def cosine_scaled_reward(
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    max_len: int = 1000,
    checker: Checker = "answer",
) -> Reward:
    """reward = lo + 0.5 (hi - lo)(1 + cos(pi x L / max_len)), L the completion's length in characters;
    correct: lo = min_value_correct, hi = max_value_correct; wrong: lo = max_value_wrong, hi = min_value_wrong.

    Correct answers earn more when short, wrong answers lose less when long. L is capped at max_len (open-r1
    does not cap it, so its cosine climbs back up past max_len and a correct answer of 2 x max_len scores as
    much as an empty one). With checker "math": a gold math-verify cannot parse earns max_value_correct (open-r1
    gives 1.0, the default max_value_correct, so as not to punish the completion), and a comparison past
    math-verify's bounds is None. Dataset column `answer`. Range [min of the four values, max of the four
    values]. Source: Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning in LLMs"; open-r1
    `get_cosine_scaled_reward`.
    """
    if max_len <= 0:
        raise RewardConfigError(
            f"cosine_scaled_reward: max_len must be a positive number of characters, got {max_len}."
        )
    values = (min_value_wrong, max_value_wrong, min_value_correct, max_value_correct)
    scores = partial(
        _cosine_scores,
        correct_range=(min_value_correct, max_value_correct),
        wrong_range=(max_value_wrong, min_value_wrong),
        max_len=max_len,
        checker=checker,
    )
    explain = partial(_explain_cosine, max_len=max_len, checker=checker)
    return Reward(scores, (min(values), max(values)), ("answer",), explain=explain)


def _cosine_scores(
    completions: Sequence[Completion],
    correct_range: tuple[float, float],
    wrong_range: tuple[float, float],
    max_len: int,
    checker: Checker,
) -> list[float | None]:
    scores: list[float | None] = []
    for completion, verdict in zip(completions, verdicts(completions, checker), strict=True):
        if verdict is Verdict.UNDECIDED:
            scores.append(None)
        elif verdict is Verdict.GOLD_UNPARSEABLE:
            scores.append(correct_range[1])
        else:
            lo, hi = correct_range if verdict is Verdict.EQUAL else wrong_range
            cosine = math.cos(math.pi * min(len(completion.text), max_len) / max_len)
            scores.append(lo + 0.5 * (hi - lo) * (1.0 + cosine))
    return scores


def _explain_cosine(completions: Sequence[Completion], max_len: int, checker: Checker) -> list[str]:
    return [
        f"{_judged(c, verdict, checker)}; {len(c.text)} characters of max_len {max_len}"
        for c, verdict in zip(completions, verdicts(completions, checker), strict=True)
    ]


def _judged(completion: Completion, verdict: Verdict, checker: Checker) -> str:
    """ "correct", "wrong", or why the checker could not say, for the length rewards' reasons."""
    if verdict is Verdict.EQUAL:
        return "correct"
    if verdict is Verdict.DIFFERENT:
        return f"wrong ({explain_verdict(extract_answer(completion.text), str(completion.columns['answer']), verdict)})"
    return explain_verdict(None, str(completion.columns["answer"]), verdict, checker)


def len_reward(scope: Literal["group", "batch"] = "group", checker: Checker = "math") -> Reward:
    """lambda = 0.5 - (L - min L) / (max L - min L) over the completions of one prompt, L in characters; correct
    gets lambda, wrong gets min(0, lambda); all 0 when every length is equal.

    Kimi 1.5's length reward: shorter is better, and never a bonus for a wrong answer. "Correct" is open-r1's
    decision by default (checker "math": math-verify), and a gold math-verify cannot parse counts as correct, so
    open-r1's test_unparseable_solution gives [0.5, -0.5]; a comparison past math-verify's bounds is None (its
    length still counts for the others). checker "answer" decides with answers_match instead (no child process).
    scope "group" (default) compares the completions that share a prompt; "batch" compares the whole call
    (open-r1's choice; the same when the call has no prompts). Dataset column `answer`. Range [-0.5, 0.5].
    Source: Kimi Team 2025, "Kimi k1.5", section 2.3.3; open-r1 `len_reward`.
    """
    explain = partial(_explain_len, scope=scope, checker=checker)
    return Reward(partial(_len_scores, scope=scope, checker=checker), (-0.5, 0.5), ("answer",), explain=explain)


def _len_scores(completions: Sequence[Completion], scope: str, checker: Checker) -> list[float | None]:
    groups = group_indices(completions) if scope == "group" else [list(range(len(completions)))]
    decided = verdicts(completions, checker)
    scores: list[float | None] = [None] * len(completions)
    for group in groups:
        lengths = [len(completions[i].text) for i in group]
        shortest, longest = min(lengths), max(lengths)
        for i, length in zip(group, lengths, strict=True):
            if decided[i] is Verdict.UNDECIDED:
                continue
            if longest == shortest:
                scores[i] = 0.0
                continue
            lam = 0.5 - (length - shortest) / (longest - shortest)
            scores[i] = lam if decided[i] is not Verdict.DIFFERENT else min(0.0, lam)
    return scores


def _explain_len(completions: Sequence[Completion], scope: str, checker: Checker) -> list[str]:
    groups = group_indices(completions) if scope == "group" else [list(range(len(completions)))]
    decided = verdicts(completions, checker)
    reasons = [""] * len(completions)
    for group in groups:
        lengths = [len(completions[i].text) for i in group]
        span = f"{scope} lengths {min(lengths)}..{max(lengths)}" if len(group) > 1 else f"alone in its {scope}"
        for i, length in zip(group, lengths, strict=True):
            reasons[i] = f"{_judged(completions[i], decided[i], checker)}; {length} characters, {span}"
    return reasons


def repetition_penalty_reward(ngram_size: int = 3, max_penalty: float = -1.0) -> Reward:
    """(1 - unique n-grams / total n-grams) x max_penalty, over lower-cased whitespace-separated words; 0 when there
    are fewer words than ngram_size.

    Only the first REPETITION_MAX_WORDS words are read. max_penalty must be <= 0. Range [max_penalty, 0].
    Source: Yeo et al. 2025 (appendix on repetition); open-r1 `get_repetition_penalty_reward`.
    """
    if max_penalty > 0:
        raise RewardConfigError(
            f"repetition_penalty_reward: max_penalty must be <= 0 (it is a penalty), got {max_penalty}. "
            f"Use a negative value such as -1.0."
        )
    if ngram_size < 1:
        raise RewardConfigError(f"repetition_penalty_reward: ngram_size must be at least 1, got {ngram_size}.")
    return per_completion(
        _repetition,
        (max_penalty, 0.0),
        explain_one=_explain_repetition,
        ngram_size=ngram_size,
        max_penalty=max_penalty,
    )


def _repetition(completion: Completion, ngram_size: int, max_penalty: float) -> float:
    unique, total = _ngrams(completion.text, ngram_size)
    if total <= 0 or unique == total:
        return 0.0
    return (1.0 - unique / total) * max_penalty


def _ngrams(text: str, ngram_size: int) -> tuple[int, int]:
    """(distinct, total) word n-grams of the lower-cased text's first REPETITION_MAX_WORDS words; total <= 0 when
    there are fewer words than ngram_size."""
    words = text.lower().split(None, REPETITION_MAX_WORDS)
    del words[REPETITION_MAX_WORDS:]  # the unsplit rest of a longer text
    total = len(words) - ngram_size + 1
    if total <= 0:
        return 0, total
    return len(set(zip(*(words[i:] for i in range(ngram_size)), strict=False))), total  # shorter shifts end them


def _explain_repetition(completion: Completion, ngram_size: int, max_penalty: float) -> str:
    unique, total = _ngrams(completion.text, ngram_size)
    if total <= 0:
        return f"fewer than {ngram_size} words"
    return f"{total - unique} of {total} {ngram_size}-grams repeat"


def soft_overlong_punishment(max_completion_len: int, soft_punish_cache: int) -> Reward:
    """On the completion's length L in tokens: 0 when L <= max_completion_len - soft_punish_cache;
    (max_completion_len - soft_punish_cache - L) / soft_punish_cache up to max_completion_len; -1 beyond.

    DAPO's soft overlong punishment. soft_punish_cache = 0 is a hard cutoff: 0 up to max_completion_len, -1
    beyond (as open-r1 reads it). Range [-1, 0]. Source: Yu et al. 2025, "DAPO", section 3.4 (overlong reward
    shaping); open-r1 `get_soft_overlong_punishment`.
    """
    if max_completion_len <= 0 or not 0 <= soft_punish_cache <= max_completion_len:
        raise RewardConfigError(
            f"soft_overlong_punishment needs max_completion_len > 0 and 0 <= soft_punish_cache <= "
            f"max_completion_len, got max_completion_len={max_completion_len}, soft_punish_cache={soft_punish_cache}. "
            f"Typical: max_completion_len equal to the trainer's max_completion_length, soft_punish_cache a quarter "
            f"of it (0: a hard cutoff)."
        )
    return per_completion(
        _overlong,
        (-1.0, 0.0),
        explain_one=_explain_overlong,
        max_completion_len=max_completion_len,
        soft_punish_cache=soft_punish_cache,
    )


def _overlong(completion: Completion, max_completion_len: int, soft_punish_cache: int) -> float:
    free_length = max_completion_len - soft_punish_cache
    if completion.tokens <= free_length:
        return 0.0
    if completion.tokens <= max_completion_len:
        return (free_length - completion.tokens) / soft_punish_cache
    return -1.0


def _explain_overlong(completion: Completion, max_completion_len: int, soft_punish_cache: int) -> str:
    tokens, free_length = completion.tokens, max_completion_len - soft_punish_cache
    if tokens <= free_length:
        return f"{tokens} tokens, within {free_length}"
    if tokens <= max_completion_len:
        return f"{tokens} tokens, {tokens - free_length} past {free_length} (max {max_completion_len})"
    return f"{tokens} tokens, over max {max_completion_len}"


def length_penalty_factor(tokens: int, length_penalty_tokens: int) -> float:
    """The multiplier of the `length_penalty_tokens: N` parameter any reward takes: 0.8 + 0.2 x min(1, N / tokens).

    1.0 up to N tokens, falling towards 0.8 as the completion grows (0.9 at 2N). An empty completion gets 1.0.
    A negative reward is multiplied too, so its magnitude shrinks: use the penalty on rewards that are >= 0.
    """
    if tokens <= 0:
        return 1.0
    return 0.8 + 0.2 * min(1.0, length_penalty_tokens / tokens)
