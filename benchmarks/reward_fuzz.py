"""Reward fuzzing: generated hostile completions through every registered reward, as TRL calls them.

Completions come in groups of 8 of one kind (TRL's groups: the samples of one prompt), drawn from a seeded mix:
well-formed answers in every layout the rewards know, partial and repeated tags, deep nesting, huge numbers,
power towers (LaTeX and Python), thousands of `\\boxed{`, 1 MB texts, Unicode (right-to-left marks, combining
marks, lone surrogates), NUL and control characters, code-injection strings, chat lists and non-strings; a share
of the rows has a hostile gold too (a LaTeX gold that does not parse, a NaN or 24.5 Countdown target). Every
reward in the registry runs over the same completions, and the three rewards that can use math-verify also run
with checker "math". Per reward it reports:
- exceptions and out-of-range scores (both must be 0; the exit code is 1 otherwise);
- the p99 and the max time per completion (a group's call time / 8) and how many scores were None;
- the peak resident memory of this process while that reward ran, and for math-verify the peak of its child;
  the math rewards must stay within math-verify's bounds (rewards/math_verify_check.py): per completion at
  most the comparison bound plus the caller's grace (a replaced child's start, the sympy import, is added to the
  completion after it), and this process's peak no more than 50 MB over its size before the reward.

    OMP_NUM_THREADS=1 uv run python benchmarks/reward_fuzz.py                  # 100,000 completions
    uv run python benchmarks/reward_fuzz.py --count 2000 --only mark_reward    # a quick look
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from rewards import REWARDS, clear_caches, get_reward
from rewards import math_verify_check as mvc

GROUP_SIZE = 8
MB = 1_000_000
# len_reward's default checker is math-verify (open-r1's); its plain row keeps measuring the answer checker, the
# math one has a row of its own (math_accuracy_reward's pace).
REQUIRED_PARAMS = {
    "soft_overlong_punishment": {"max_completion_len": 512, "soft_punish_cache": 128},
    "len_reward": {"checker": "answer"},
}
MATH_VARIANTS = {
    "math_accuracy_reward": {},
    "cosine_scaled_reward[checker=math]": {"checker": "math"},
    "len_reward[checker=math]": {"checker": "math"},
}
MAIN_GROWTH_BOUND = 50 * 2**20

# --- the generator ---

TAGS = ["<think>", "</think>", "<answer>", "</answer>", "<reasoning>", "</reasoning>", "\n", " ", "<ans", "wer>"]
TOWERS = [
    "9^{9^{9^{9}}}",
    "10^{10^{10^{10}}}",
    "2^{2^{31}}",
    "(10^{6})!",
    "10^{10^{8}}",
    "9**9**9**9",
    "\\frac{10^{10^{10}}}{3}",
    "e^{e^{e^{e^{10}}}}",
    "100!!!!",
    "\\sqrt[10^{10}]{10^{10^{10}}}",
]
INJECTIONS = [
    "__import__('os').system('touch /tmp/pwned')",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "'; DROP TABLE rewards; --",
    "\\input{/etc/passwd}",
    "exec(open('x').read())",
]
GOLD_ANSWERS = ["18", "-5", "1000", "\\frac{1}{2}", "x^2+1", "\\pi", "(3, \\frac{\\pi}{2})", "0.5", "\\sqrt{2}"]
HOSTILE_GOLDS = ["\\frac{", "unparseable_latex", "", "9" * 2000, "\\boxed{" * 50, "x^{", "\\$18.90"]


def text_of_kind(kind: str, rng: random.Random) -> object:
    """One completion of a kind (a string, except for the chat/non-string kinds)."""
    n = rng.randint(-10_000, 10_000)
    if kind == "well_formed":
        layout = rng.randrange(4)
        steps = "\n".join(f"Step {k}: {rng.randint(1, 99)} + {rng.randint(1, 99)}" for k in range(rng.randint(1, 6)))
        return [
            f"<think>\n{steps}\n</think>\n<answer>\n{n}\n</answer>",
            f"<reasoning>\n{steps}\n</reasoning>\n<answer>\n{n}\n</answer>\n",
            f"{steps}\nSo the answer is $\\boxed{{\\frac{{{abs(n)}}}{{{rng.randint(1, 9)}}}}}$.",
            f"<think>{steps}</think><answer>({rng.randint(1, 9)} + {rng.randint(1, 9)}) * {rng.randint(1, 9)}</answer>",
        ][layout]
    if kind == "partial_tags":
        return "".join(rng.choice(TAGS) + rng.choice(["", "1", "x", "{"]) for _ in range(rng.randint(1, 400)))
    if kind == "repeated_answers":
        return "<answer>1</answer>" * rng.randint(100, 20_000)
    if kind == "deep_nesting":
        depth = rng.choice([100, 1000, 10_000, 100_000])
        opener, closer = rng.choice([("(", ")"), ("{", "}"), ("\\left(", "\\right)"), ("\\sqrt{", "}")])
        return f"<answer>{opener * depth}1{closer * depth}</answer>"
    if kind == "huge_number":
        return rng.choice(
            [
                "<answer>" + "9" * rng.randint(500, 100_000) + "</answer>",
                f"<answer>1e{rng.randint(300, 10**6)}</answer>",
                "<answer>" + ",".join(["999"] * rng.randint(10, 5000)) + "</answer>",
                f"\\boxed{{{'1' * rng.randint(900, 1100)}}}",
                f"<answer>10**{rng.randint(10, 10**6)}</answer>",
            ]
        )
    if kind == "power_tower":
        return f"<answer>{rng.choice(TOWERS)}</answer>" if rng.random() < 0.8 else f"\\boxed{{{rng.choice(TOWERS)}}}"
    if kind == "boxed_flood":
        count = rng.choice([100, 1000, 10_000, 50_000])
        return rng.choice(["\\boxed{" * count, "\\boxed{1}" * count, "\\boxed{" * count + "1" + "}" * count])
    if kind == "megabyte":
        return rng.choice(
            [
                "a" * MB,
                "1" * MB,
                "\n" * MB,
                "{" * MB,
                "\\boxed{" * (MB // 7),
                "<think>\n\n</think>\n<answer>\n" * (MB // 26),
                "<reasoning> </reasoning> <answer>" * (MB // 33),
                "<answer>" + "1" * MB + "</answer>",
                "word " * (MB // 5),
                "<reasoning>" + "</reasoning><answer>" * (MB // 20),
                "1. step\n" * (MB // 8),
            ]
        )
    if kind == "unicode":
        alphabet = "ünïcødé🤖\u202e\u200f\u0301\u0663\u00b2\u2212\u00d7\u00f7\ufeff\ud800\U0001f600"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 2000))) + f"<answer>{n}\u00b2</answer>"
    if kind == "control_characters":
        return "".join(chr(rng.randrange(32)) for _ in range(rng.randint(1, 500))) + f"<answer>\x00{n}\x00</answer>"
    if kind == "injection":
        return f"<answer>{rng.choice(INJECTIONS)}</answer>"
    if kind == "random_bytes":
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000))).decode("latin-1")
    if kind == "numbers_edge":
        return (
            "<answer>"
            + rng.choice(["--5", "+-5", "1/0", "0/0", "NaN", "inf", "-0", "1,0000", "2²", "x^2"])
            + "</answer>"
        )
    if kind == "not_a_string":
        return rng.choice([None, 12345, 3.5, [], [{"role": "assistant"}], [{"content": ["x", 1]}], {"content": "x"}])
    if kind == "chat":
        return [{"role": "assistant", "content": f"<think>ok</think><answer>{n}</answer>"}]
    raise ValueError(kind)


KINDS = {  # relative frequency of each kind of group
    "well_formed": 30,
    "partial_tags": 10,
    "repeated_answers": 3,
    "deep_nesting": 5,
    "huge_number": 5,
    "power_tower": 4,
    "boxed_flood": 4,
    "megabyte": 1,
    "unicode": 8,
    "control_characters": 5,
    "injection": 4,
    "random_bytes": 6,
    "numbers_edge": 6,
    "not_a_string": 4,
    "chat": 5,
}


def gold_row(rng: random.Random) -> dict[str, object]:
    """The gold columns of one group; one group in twenty has a hostile gold (a power tower one in 2,000: each of
    its comparisons runs math-verify to its 3 s bound)."""
    if rng.random() < 0.0005:
        return {"answer": rng.choice(TOWERS), "target": 24, "numbers": [3, 8]}
    if rng.random() < 0.05:
        return {
            "answer": rng.choice(HOSTILE_GOLDS),
            "target": rng.choice([float("nan"), float("inf"), 24.5, "24", True, 10**400]),
            "numbers": rng.choice([[3, float("nan")], "3,5,8", [3, 8.5], [10**400, 2]]),
        }
    numbers = [rng.randint(1, 20) for _ in range(rng.randint(2, 4))]
    return {"answer": rng.choice(GOLD_ANSWERS), "target": rng.randint(1, 200), "numbers": numbers}


def groups(count: int, seed: int) -> Iterator[tuple[str, list[object], dict[str, list[object]]]]:
    """(kind, completions, columns) per group of GROUP_SIZE, `count` completions in all, the same for a seed."""
    rng = random.Random(seed)
    kinds, weights = list(KINDS), list(KINDS.values())
    for index in range(math.ceil(count / GROUP_SIZE)):
        size = min(GROUP_SIZE, count - index * GROUP_SIZE)
        kind = rng.choices(kinds, weights)[0]
        completions = [text_of_kind(kind, rng) for _ in range(size)]
        gold = gold_row(rng)
        yield kind, completions, {key: [value] * size for key, value in gold.items()}


# --- measurements ---


@dataclass
class Result:
    name: str
    completions: int = 0
    none: int = 0
    exceptions: Counter = field(default_factory=Counter)
    first_exception: str = ""
    out_of_range: int = 0
    first_out_of_range: str = ""
    per_completion_ms: list[float] = field(default_factory=list)
    slowest_kind: str = ""
    over_bound: int = 0  # groups whose time per completion passed bound_ms with no child restart to explain it
    peak_rss_growth: int = 0
    child_peak_rss: int = 0

    def p99(self) -> float:
        return statistics.quantiles(self.per_completion_ms, n=100)[98] if len(self.per_completion_ms) > 1 else 0.0


def status_bytes(key: str, pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM, the peak resident set, to the current size.
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def run_reward(name: str, params: dict, count: int, seed: int, bound_ms: float | None) -> Result:
    base_name = name.split("[")[0]
    reward = get_reward(base_name, **{**REQUIRED_PARAMS.get(base_name, {}), **params})
    low, high = reward.value_range
    result = Result(name)
    gc.collect()
    reset_peak_rss()
    start_rss = status_bytes("VmRSS")
    worst = 0.0
    for index, (kind, completions, columns) in enumerate(groups(count, seed)):
        prompts = [f"prompt {index}"] * len(completions)
        starts = mvc._CHILD.starts
        start = time.perf_counter()
        try:
            scores = reward(prompts=prompts, completions=completions, **columns)
        except Exception as error:  # counted: the fuzz fails on any
            result.exceptions[type(error).__name__] += 1
            result.first_exception = result.first_exception or f"{kind}: {type(error).__name__}: {error}"[:300]
            scores = []
        per_completion = (time.perf_counter() - start) * 1000 / len(completions)
        result.per_completion_ms += [per_completion] * len(completions)
        if per_completion > worst:
            worst, result.slowest_kind = per_completion, kind
        if bound_ms is not None and per_completion > bound_ms and mvc._CHILD.starts == starts:
            result.over_bound += 1
        result.completions += len(completions)
        for score in scores:
            if score is None:
                result.none += 1
            elif not (isinstance(score, float) and low <= score <= high):
                result.out_of_range += 1
                result.first_out_of_range = result.first_out_of_range or f"{kind}: {score!r} not in [{low}, {high}]"
        if bound_ms is not None and mvc.child_pid() is not None:
            result.child_peak_rss = max(result.child_peak_rss, status_bytes("VmHWM", mvc.child_pid()))
    result.peak_rss_growth = status_bytes("VmHWM") - start_rss
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="Completions per reward (default 100,000).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="Comma-separated rewards to run (default: all, plus the math variants).")
    args = parser.parse_args(argv)

    names = {name: {} for name in REWARDS} | MATH_VARIANTS
    if args.only:
        names = {name: params for name, params in names.items() if name in args.only.split(",")}
    kinds = Counter(kind for kind, completions, _ in groups(args.count, args.seed) for _ in completions)
    print(f"python {sys.version.split()[0]}; {args.count:,} completions a reward, seed {args.seed}, groups of 8")
    print("kinds: " + ", ".join(f"{kind} {n:,}" for kind, n in kinds.most_common()))
    header = f"{'reward':38} {'exceptions':>10} {'out of range':>12} {'None':>7} {'p99 ms':>8} {'max ms':>9}"
    print(f"\n{header} {'peak RSS +MB':>12} {'child MB':>8}  slowest kind")
    failures = []
    math_bound_ms = (mvc.MATH_VERIFY_SECONDS + mvc.MATH_VERIFY_GRACE_SECONDS) * 1000
    clear_caches()  # once: the math rewards then share math-verify's verdicts, as they do in training
    for name, params in names.items():
        result = run_reward(name, params, args.count, args.seed, math_bound_ms if name in MATH_VARIANTS else None)
        max_ms = max(result.per_completion_ms, default=0.0)
        child = f"{result.child_peak_rss / 2**20:8.0f}" if result.child_peak_rss else f"{'':>8}"
        print(
            f"{name:38} {sum(result.exceptions.values()):>10} {result.out_of_range:>12} {result.none:>7} "
            f"{result.p99():>8.3f} {max_ms:>9.1f} {result.peak_rss_growth / 2**20:>12.1f} {child}  "
            f"{result.slowest_kind}",
            flush=True,
        )
        if result.exceptions:
            failures.append(f"{name}: exceptions {dict(result.exceptions)}, first: {result.first_exception}")
        if result.out_of_range:
            failures.append(f"{name}: {result.out_of_range} out of range, first: {result.first_out_of_range}")
        if result.over_bound:
            failures.append(f"{name}: {result.over_bound} group(s) over {math_bound_ms:.0f} ms a completion")
        if name in MATH_VARIANTS and result.peak_rss_growth > MAIN_GROWTH_BOUND:
            failures.append(f"{name}: this process grew {result.peak_rss_growth / 2**20:.0f} MB")
        if result.child_peak_rss > mvc.MATH_VERIFY_MEMORY_BYTES:
            failures.append(f"{name}: the child's peak {result.child_peak_rss / 2**20:.0f} MB is over its bound")
    print(f"\nmath-verify children started: {mvc._CHILD.starts}")
    for failure in failures:
        print("FAIL " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
