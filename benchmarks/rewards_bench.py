"""Reward throughput and worst cases, and the answer parsers checked against every row of the real data sets.

1. Completions per second for every built-in reward on a fixed synthetic corpus (seeded: 70% well-formed in the
   four layouts the rewards know, 20% malformed, 10% hostile at realistic size), called as TRL calls it (one
   batch, groups of 8 completions per prompt), median of --repeats runs, pinned to one core. Targets: 50,000/s
   for the format and answer-text rewards, 10,000/s for Countdown; math-verify is measured and reported. The
   answer-parsing caches are cleared before every run, so each run parses every answer afresh.
2. The worst time per completion on 1 MB hostile completions (the target: under 50 ms; math-verify runs in its
   child process under a 3 s bound per comparison).
3. The real data: parse_gsm8k_gold on every GSM8K test row, and math-verify on every MATH-500 answer against
   itself and against the last \\boxed{} of its own solution (read from --data-dir, never copied).

    uv run python benchmarks/rewards_bench.py                       # about a minute
    uv run python benchmarks/rewards_bench.py --repeats 3 --skip-data
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from pathlib import Path

from rewards import REWARDS, clear_caches, extract_answer, get_reward, math_answers_match, parse_gsm8k_gold
from rewards.answers import parse_number
from rewards.jsonl import read_jsonl

COUNTDOWN_TARGET, TEXT_TARGET = 10_000, 50_000
MATH_REWARDS = {"math_accuracy_reward"}
COUNTDOWN_REWARDS = {"countdown_reward", "countdown_binary_reward"}
# len_reward's default checker is math-verify (open-r1's); its plain row keeps measuring the answer checker, the
# math one has a row of its own (math_accuracy_reward's pace).
REQUIRED_PARAMS = {
    "soft_overlong_punishment": {"max_completion_len": 512, "soft_punish_cache": 128},
    "len_reward": {"checker": "answer"},
}
GROUP_SIZE = 8
MB = 1_000_000
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


# --- the synthetic corpus ---


def reasoning(rng: random.Random) -> str:
    steps = []
    for k in range(1, rng.randint(2, 12)):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        steps.append(rng.choice([f"Step {k}: {a} + {b} = {a + b}.", f"{k}. Multiply {a} by {b} to get {a * b}."]))
    return "\n".join(steps)


def well_formed(rng: random.Random) -> tuple[str, dict]:
    n = rng.randint(1, 5000)
    kind = rng.randrange(4)
    if kind == 0:
        return f"<think>\n{reasoning(rng)}\n</think>\n<answer>\n{n}\n</answer>", {"answer": str(n)}
    if kind == 1:
        return f"<reasoning>\n{reasoning(rng)}\n</reasoning>\n<answer>\n{n}\n</answer>\n", {"answer": str(n)}
    if kind == 2:
        a, b = rng.randint(1, 9), rng.randint(2, 9)
        return f"{reasoning(rng)}\nSo the answer is $\\boxed{{\\frac{{{a}}}{{{b}}}}}$.", {
            "answer": f"\\frac{{{a}}}{{{b}}}"
        }
    numbers = [rng.randint(1, 20) for _ in range(3)]
    a, b, c = numbers
    equation = rng.choice([f"({a} + {b}) * {c}", f"{a} * {b} - {c}", f"{a} + {b} / {c}"])
    target = rng.choice([(a + b) * c, a * b - c, 24])
    text = f"<think>\nTry {equation}.\n</think>\n<answer>{equation} = {target}</answer>"
    return text, {"answer": str(target), "target": target, "numbers": numbers}


def malformed(rng: random.Random) -> tuple[str, dict]:
    n = rng.randint(1, 5000)
    text = rng.choice(
        [
            f"<think>\n{reasoning(rng)}\n<answer>\n{n}",  # truncated
            f"{reasoning(rng)}\nThe answer is {n}.",  # no tags
            f"<answer>{n}</answer><think>{reasoning(rng)}</think>",  # wrong order
            f"<think>{reasoning(rng)}</think><answer>${n:,} dollars</answer>",
            f"<answer>1</answer>\n{reasoning(rng)}\n<answer>{n}</answer> trailing words",
            f"<reasoning>{reasoning(rng)}</reasoning>\n\n<answer>x = {n}</answer>",
        ]
    )
    return text, {"answer": str(n)}


def hostile(rng: random.Random) -> tuple[str | None, dict]:
    text = rng.choice(
        [
            None,
            "",
            "<answer>" + "(" * 2000 + "1" + ")" * 2000 + "</answer>",
            "<answer>__import__('os').system('touch /tmp/pwned')</answer>",
            "<answer>9**9**9**9</answer>",
            "<answer>" * 500,
            "\\boxed{" * 500,
            "ünïcødé 🤖 \u202e" * 100,
            "the same words again " * 200,
            "<think>\n</think>\n" * 200,
        ]
    )
    return text, {"answer": "18"}


def corpus(size: int, seed: int = 0) -> tuple[list, dict[str, list]]:
    """Completions and their gold columns (every row has answer, target and numbers)."""
    rng = random.Random(seed)
    texts, columns = [], {"answer": [], "target": [], "numbers": []}
    for _ in range(size):
        draw = rng.random()
        text, gold = well_formed(rng) if draw < 0.7 else malformed(rng) if draw < 0.9 else hostile(rng)
        texts.append(text)
        columns["answer"].append(gold["answer"])
        columns["target"].append(gold.get("target", 24))
        columns["numbers"].append(gold.get("numbers", [3, 5, 8]))
    return texts, columns


def hostile_megabyte() -> dict[str, str]:
    return {
        "1 MB of 'a'": "a" * MB,
        "1 MB of digits": "1" * MB,
        "1 MB of newlines": "\n" * MB,
        "1 MB of '{'": "{" * MB,
        "1 MB of \\boxed{": "\\boxed{" * (MB // 7),
        "1 MB of think/answer tags": "<think>\n\n</think>\n<answer>\n" * (MB // 26),
        "1 MB of reasoning tags": "<reasoning> </reasoning> <answer>" * (MB // 33),
        "1 MB answer block": "<answer>" + "1" * MB + "</answer>",
        "1 MB of words": "word " * (MB // 5),
    }


# --- measurements ---


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity here)"


def build(name: str):
    return get_reward(name, **REQUIRED_PARAMS.get(name, {}))


def throughput(name: str, texts: list, columns: dict[str, list], repeats: int) -> list[float]:
    """Completions per second of each run."""
    reward = build(name)
    prompts = [f"prompt {i // GROUP_SIZE}" for i in range(len(texts))]
    rates = []
    for _ in range(repeats):
        # Every run starts cold: no answer parsed yet, by math-verify or by the number parser.
        clear_caches()
        gc.collect()
        start = time.perf_counter()
        reward(prompts=prompts, completions=texts, **columns)
        rates.append(len(texts) / (time.perf_counter() - start))
    return rates


def worst_case_ms(name: str, inputs: dict[str, str]) -> tuple[float, str]:
    reward = build(name)
    worst = (0.0, "")
    for label, text in inputs.items():
        start = time.perf_counter()
        reward(completions=[text], answer=["18"], target=[24], numbers=[[3, 5, 8]])
        worst = max(worst, ((time.perf_counter() - start) * 1000, label))
    return worst


def check_gsm8k(path: Path) -> dict:
    rows = read_jsonl(path).rows
    parsed, numeric, failures = 0, 0, []
    for row in rows:
        try:
            gold = parse_gsm8k_gold(row["answer"])
        except ValueError as error:
            failures.append(str(error))
            continue
        parsed += 1
        numeric += parse_number(gold) is not None
    return {"rows": len(rows), "parsed": parsed, "numeric": numeric, "failures": failures[:5]}


def check_math500(path: Path) -> dict:
    rows = read_jsonl(path).rows
    start = time.perf_counter()
    itself = [math_answers_match(row["answer"], row["answer"]) for row in rows]
    boxed = [extract_answer(row["solution"]) for row in rows]
    solution = [math_answers_match(b, row["answer"]) for b, row in zip(boxed, rows, strict=True)]
    seconds = time.perf_counter() - start
    text_equal = sum(
        b is not None and " ".join(b.split()) == " ".join(row["answer"].split())
        for b, row in zip(boxed, rows, strict=True)
    )
    return {
        "rows": len(rows),
        "gold_parsed": sum(v is not None for v in itself),
        "equal_to_itself": sum(v is True for v in itself),
        "boxed_found": sum(b is not None for b in boxed),
        "boxed_text_equal": text_equal,
        "equal_to_its_boxed_solution": sum(v is True for v in solution),
        "not_equal": [row["unique_id"] for v, row in zip(solution, rows, strict=True) if v is False][:8],
        "seconds": seconds,
    }


# --- report ---


def target_of(name: str) -> int | None:
    if name in MATH_REWARDS:
        return None
    return COUNTDOWN_TARGET if name in COUNTDOWN_REWARDS else TEXT_TARGET


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="Runs per reward; the median is reported.")
    parser.add_argument("--corpus-size", type=int, default=4000, help="Completions in the synthetic corpus.")
    parser.add_argument("--math-corpus-size", type=int, default=200, help="Completions for math-verify (slow).")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="gsm8k_test.jsonl, MATH500_test.jsonl.")
    parser.add_argument("--skip-data", action="store_true", help="Skip the real-data checks.")
    parser.add_argument("--skip-hostile", action="store_true", help="Skip the 1 MB worst cases.")
    args = parser.parse_args(argv)

    print(f"python {sys.version.split()[0]}, {pin_to_one_core()}, median of {args.repeats} runs")
    texts, columns = corpus(args.corpus_size)
    print(f"corpus: {len(texts)} completions, mean {statistics.fmean(len(t or '') for t in texts):.0f} characters\n")
    print(f"{'reward':28} {'completions/s':>14} {'(min - max)':>22} {'target':>8}  status")
    failures = 0
    for name in REWARDS:
        size = args.math_corpus_size if name in MATH_REWARDS else len(texts)
        sub_columns = {key: values[:size] for key, values in columns.items()}
        rates = throughput(name, texts[:size], sub_columns, args.repeats)
        target = target_of(name)
        median = statistics.median(rates)
        status = "measured" if target is None else ("ok" if median >= target else "BELOW TARGET")
        failures += status == "BELOW TARGET"
        spread = f"({min(rates):,.0f} - {max(rates):,.0f})"
        print(f"{name:28} {median:>14,.0f} {spread:>22} {target or '':>8}  {status}")

    if not args.skip_hostile:
        print("\nworst time per completion on 1 MB hostile inputs (target < 50 ms; math-verify under its 3 s bound)")
        inputs = hostile_megabyte()
        for name in REWARDS:
            ms, label = worst_case_ms(name, inputs)
            print(f"{name:28} {ms:8.1f} ms  ({label})")

    if not args.skip_data:
        gsm8k, math500 = args.data_dir / "gsm8k_test.jsonl", args.data_dir / "MATH500_test.jsonl"
        print()
        if gsm8k.is_file():
            result = check_gsm8k(gsm8k)
            print(
                f"GSM8K test: parse_gsm8k_gold parsed {result['parsed']}/{result['rows']} golds, "
                f"{result['numeric']} of them single numbers; failures: {result['failures'] or 'none'}"
            )
        else:
            print(f"GSM8K test: {gsm8k} not found, skipped")
        if math500.is_file():
            r = check_math500(math500)
            print(
                f"MATH-500: math-verify parsed {r['gold_parsed']}/{r['rows']} gold answers, "
                f"{r['equal_to_itself']} equal to themselves; the last \\boxed{{}} of the solution found in "
                f"{r['boxed_found']} ({r['boxed_text_equal']} textually equal to the answer field), math-verify "
                f"equal to the answer in {r['equal_to_its_boxed_solution']}; {r['seconds']:.1f} s in all. "
                f"Not equal: {r['not_equal'] or 'none'}"
            )
        else:
            print(f"MATH-500: {math500} not found, skipped")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
