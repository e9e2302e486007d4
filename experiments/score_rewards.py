"""Score completions with the reward functions, no model needed: prototype a reward, or re-score a run's samples.

Reads a JSONL file (one object per line: `completion` (text or chat list), optional `prompt`, and the gold columns
the rewards need: `answer`, or `target` and `numbers` for Countdown), e.g. a run's samples/<label>.jsonl, or one
completion given on the command line. Scores it with a list of rewards (built-in names, your own functions from a
file, or an experiment config's `rewards:` list with weights and params), prints a table (an excerpt of each
completion, every reward, the weighted total) and a per-reward summary, or JSON with --json.

    uv run python experiments/score_rewards.py --completion "<answer>18</answer>" --answer 18
    uv run python experiments/score_rewards.py --completion "<answer>(8-5)*8</answer>" --target 24 --numbers 3,5,8
    uv run python experiments/score_rewards.py runs/X/samples/final.jsonl --rewards mark_reward,correctness_reward
    uv run python experiments/score_rewards.py samples.jsonl --config experiment_configs/gsm8k.yaml \\
        --param correctness_reward.value=2.0 --json
    # your own reward next to a built-in one: file.py:function in --rewards, or every reward function of a file
    uv run python experiments/score_rewards.py samples.jsonl --rewards countdown_reward,my_rewards.py:my_reward
    uv run python experiments/score_rewards.py samples.jsonl --rewards countdown_reward --reward-file my_rewards.py
    # why each reward gave its score (rewards that can say: a user's reward through its `.explain` attribute)
    uv run python experiments/score_rewards.py samples.jsonl --reward-file my_rewards.py --explain
    uv run python experiments/score_rewards.py --list

Without --rewards or --config, every built-in reward whose gold columns the input has is used (weight 1); with
only --reward-file, that file's rewards. A user's reward is named after its function, or `<file stem>.<function>`
when that name is a built-in reward's or taken (so `my_rewards.py:correctness_reward` is scored next to the
built-in one). --reward-file takes every function defined in the file (not imported into it, not starting with
`_`, not some reward's `.explain`) that has a parameter named `completions`, as TRL calls rewards.

A run's samples file holds greedy and sampled completions (`kind`): each kind gets its own table and summary, and
each evaluation's kind is scored as its own batch, since batch-level rewards (len_reward) compare the completions
of one prompt as training does. Per-prompt spread: completions that share a prompt (a samples file's label, kind
and index; otherwise the same `prompt` text) form a group; for every group of 2 or more the weighted totals' mean,
std (unbiased, n - 1, as train/grpo/advantages.py scales advantages), min and max are shown, and the share of groups
whose totals are all equal: GRPO's advantage (r - mean) / (std + eps) is 0 for every completion of such a group, so
they teach nothing; a reward that gives many of them is too coarse.

Token counts (soft_overlong_punishment, length_penalty_tokens) come from a row's `completion_ids` or
`num_tokens` when every row has one, else they are estimated at 4 characters a token (rewards.core).
Bad input (a missing file, an unknown reward or parameter, a file with no reward function, a missing gold column,
an unreadable line, NaN or Infinity in a line) is reported in one paragraph with exit code 2, and so is a user's own
reward that raises or calls sys.exit: the paragraph names its file, function, exception and the line of its file
the exception came from. What a user's reward prints is captured: its first 2 KB are shown once, on stderr. Golds
a reward cannot score (a Countdown target of 24.5) and inf/NaN scores are left out as not applicable, counted in the
summary (`invalid_gold`, `non_finite`) and named in a warning.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

from rewards.scoring import columns_in, score, scoring_warnings, split_by_kind
from train.errors import EXIT_USER_ERROR, user_errors
from train.lab.reports.reward_scores import Report, print_reward_list
from train.lab.score_inputs import REWARD_SIGNATURE, Choice, check_columns, choose_rewards, load_rewards, read_input
from train.records import voice


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("input", nargs="?", type=Path, help="JSONL file: completion, prompt and gold columns per line.")
    single = parser.add_argument_group("one completion instead of a file")
    single.add_argument("--completion", help="The completion text to score.")
    single.add_argument("--prompt", help="Its prompt (optional).")
    single.add_argument("--answer", help="Gold answer (GSM8K / MATH / generic).")
    single.add_argument("--target", help="Countdown target, e.g. 24.")
    single.add_argument("--numbers", help="Countdown numbers, comma-separated, e.g. 3,5,8.")
    choice = parser.add_argument_group("which rewards")
    choice.add_argument(
        "--rewards",
        dest="choices",
        action="append",
        type=partial(Choice, "--rewards"),
        metavar="NAMES",
        help="Comma-separated built-in reward names and file.py:function items (your own reward), each with "
        "weight 1, e.g. countdown_reward,my_rewards.py:my_reward. Repeatable.",
    )
    choice.add_argument(
        "--reward-file",
        dest="choices",
        action="append",
        type=partial(Choice, "--reward-file"),
        metavar="FILE.py",
        help=f"Score every reward function defined in this file ({REWARD_SIGNATURE}), each with weight 1. "
        "Repeatable; goes with --rewards or --config.",
    )
    choice.add_argument("--config", type=Path, help="Experiment YAML: use its `rewards:` list, weights and params.")
    choice.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="REWARD.KEY=VALUE",
        help="Set a reward parameter (value read as YAML), e.g. correctness_reward.value=2.0. Repeatable.",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="Print JSON (rows and summary) instead of tables.")
    out.add_argument(
        "--explain",
        action="store_true",
        help="Show why each reward gave its score (rewards that can say), with each row's prompt and gold; "
        "--json adds `reasons` per row.",
    )
    out.add_argument("--show", type=int, default=20, help="Rows shown per table (the summary covers all).")
    out.add_argument("--skip-bad", action="store_true", help="Skip unreadable JSONL lines instead of stopping.")
    out.add_argument("--list", action="store_true", help="List every built-in reward with its parameters and exit.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.list:
            print_reward_list()
            return 0
        rows, warnings = read_input(args)
        items = choose_rewards(args, columns_in(rows))
        functions = load_rewards(items)
        check_columns(functions, columns_in(rows), single=args.completion is not None)
        parts = split_by_kind(rows)
        scored = score(rows, functions, parts, explain=args.explain)
    except user_errors() as error:  # a user's reward that raised included: its paragraph names the line
        voice.error(str(error))
        return EXIT_USER_ERROR
    report = Report(rows, items, functions, parts, scored, warnings + scoring_warnings(functions), args.explain)
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        report.print_tables(args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
