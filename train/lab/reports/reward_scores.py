"""score_rewards' output: its tables (every completion, per reward, per prompt's group) and its JSON.

The figures are rewards/scoring.py's (weighted totals, summaries, the per-prompt spread); this module only lays
them out, with rich for the console (`Report.print_tables`) or as one JSON object (`Report.as_json`).
"""

from __future__ import annotations

import inspect
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

from rewards import REWARDS
from rewards.core import completion_text
from rewards.registry import LENGTH_PENALTY_PARAM, RewardFunction, describe_params
from rewards.scoring import Cost, Part, Scored, prompt_groups, spread, summarize, token_source, weighted_totals
from train.config import RewardSpec
from train.records.voice import console, warn

EXCERPT_CHARS = 60
PROMPT_CHARS = 30
GOLD_CHARS = 30
REASON_CHARS = 32  # the width of a reward's column under --explain: its reasons wrap there
# Printed under the tables as lines of their own: a table's caption wraps at the table's width.
SUMMARY_LEGEND = "zero: fraction of scores equal to 0; n/a: not applicable (None); s: seconds inside the reward"
PER_PROMPT_LEGEND = "the weighted total in each prompt's group; std: unbiased (n - 1), as GRPO's"


def spread_line(groups: dict[str, Any]) -> str:
    return (
        f"{groups['all_equal']} of {groups['prompts']} prompts ({groups['fraction_all_equal']:.0%}) have all-equal "
        "total rewards in their group: zero advantage, no learning signal from them."
    )


# --- output ---


def excerpt(text: Any, chars: int = EXCERPT_CHARS) -> str:
    """`text` on one line (newlines shown as ⏎), cut to `chars` characters."""
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    flat = text.replace("\n", "⏎")
    return flat if len(flat) <= chars else flat[: chars - 1] + "…"


def prompt_excerpt(prompt: Any) -> str:
    """A prompt shortened; of a chat prompt, its last message (the question)."""
    if prompt is None:
        return ""
    return excerpt(completion_text(prompt) if isinstance(prompt, list) else prompt, PROMPT_CHARS)


def gold_text(row: dict[str, Any], columns: list[str]) -> str:
    """The gold a row is scored against, as a person reads it: Countdown's "numbers 3,5,8 → 24", the answer, and
    any other column the scored rewards need as column=value."""
    shown = []
    if row.get("numbers") is not None and row.get("target") is not None:
        numbers = row["numbers"]
        listed = ",".join(map(str, numbers)) if isinstance(numbers, list) else str(numbers)
        shown.append(f"numbers {listed} → {row['target']}")
    if row.get("answer") is not None:
        shown.append(str(row["answer"]))
    shown += [
        f"{column}={row[column]}"
        for column in columns
        if column not in ("numbers", "target", "answer") and row.get(column) is not None
    ]
    return excerpt("; ".join(shown), GOLD_CHARS)


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if math.isfinite(value) else str(value)


def make_console():
    # Piped output has no width to respect: keep each row on one line instead of rich's default of 80 columns.
    return console(width=None if sys.stdout.isatty() else 200)


@dataclass
class Report:
    """What was scored, and its tables and JSON."""

    rows: list[dict[str, Any]]
    items: list[RewardSpec]
    functions: list[RewardFunction]
    parts: list[Part]
    scored: Scored
    warnings: list[str]
    explain: bool

    def __post_init__(self) -> None:
        self.names = [item.name for item in self.items]
        self.weights = [item.weight for item in self.items]
        self.totals = weighted_totals(self.scored.scores, self.weights)
        self.gold_columns = list(dict.fromkeys(c for f in self.functions for c in f.required_columns))

    def summary(self, part: Part) -> list[dict[str, Any]]:
        return summarize(self.names, self.weights, self.scored.scores, part.indices, self.scored.costs[part.kind])

    def groups(self, part: Part) -> dict[str, Any] | None:
        return spread(self.rows, part.indices, self.totals)

    def without_reasons(self) -> list[str]:
        return [function.__name__ for function in self.functions if not function.explains]

    def explain_note(self) -> str | None:
        silent = self.without_reasons()
        if not self.explain or not silent:
            return None
        have = "it has" if len(silent) == 1 else "they have"
        return f"note: no reasons from {', '.join(silent)}: {have} no explain function."

    # --- JSON ---

    def as_json(self) -> dict[str, Any]:
        every_row = Part(None, list(range(len(self.rows))))
        total_costs = [Cost.so_far(f) for f in self.functions]
        result: dict[str, Any] = {
            "rewards": [item.model_dump() for item in self.items],
            "token_counts": token_source(self.rows),
            "warnings": self.warnings,
            "rows": [self.row_json(i) for i in range(len(self.rows))],
            "summary": summarize(self.names, self.weights, self.scored.scores, every_row.indices, total_costs),
        }
        if self.parts[0].kind is not None:
            result["summary_by_kind"] = {part.kind: self.summary(part) for part in self.parts}
        result["groups"] = {
            part.kind or "all": groups for part in self.parts if (groups := self.groups(part)) is not None
        }
        if self.explain:
            result["without_reasons"] = self.without_reasons()
        return result

    def row_json(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        entry: dict[str, Any] = {"line": row.get("_line")}
        if "kind" in row:
            entry["kind"] = row["kind"]
        entry["completion"] = row["completion"]
        entry["rewards"] = {item.name: values[i] for item, values in zip(self.items, self.scored.scores, strict=True)}
        entry["total"] = self.totals[i]
        if self.scored.reasons is not None:
            entry["reasons"] = {
                item.name: reasons[i] for item, reasons in zip(self.items, self.scored.reasons, strict=True)
            }
        return entry

    # --- tables ---

    def print_tables(self, show: int) -> None:
        from rich.text import Text

        for warning in self.warnings:
            warn(warning)
        console = make_console()
        if len(self.rows) == 1:
            row = self.rows[0]
            console.print(Text(f"completion: {excerpt(row['completion'])}"))
            if self.explain and (gold := gold_text(row, self.gold_columns)):
                console.print(Text(f"gold: {gold}"))
            console.print(f"token counts: {token_source(self.rows)}")
            console.print(self.one_completion_table())
        else:
            for part in self.parts:
                rows = [self.rows[i] for i in part.indices]
                # A line of its own, not the table's title: a title wraps at the table's width.
                console.print(Text(f"{part_title(part, rows)}; token counts: {token_source(rows)}", style="bold"))
                console.print(self.completions_table(part, show))
                if len(part.indices) > show:
                    console.print(f"({len(part.indices) - show} more row(s) not shown; --show N shows more)")
                console.print(summary_table(self.summary(part), part.kind))
                console.print(Text(SUMMARY_LEGEND, style="dim"))
                groups = self.groups(part)
                if groups is not None:
                    console.print(per_prompt_table(groups, part.kind, show))
                    legend = PER_PROMPT_LEGEND
                    if len(groups["per_prompt"]) > show:
                        legend += f"; {len(groups['per_prompt']) - show} more prompt(s) not shown (--show N)"
                    console.print(Text(legend, style="dim"))
                    console.print(Text(f"{part.kind}: " if part.kind else "") + Text(spread_line(groups), style="bold"))
        if note := self.explain_note():
            console.print(Text(note))

    def one_completion_table(self):
        """One completion: the rewards as rows, easy to read at any width; with --explain, why each score."""
        from rich.table import Table
        from rich.text import Text

        table = Table()
        headings = ("reward", "weight", "score", "why") if self.explain else ("reward", "weight", "score")
        for heading in headings:
            table.add_column(heading, justify="right" if heading in ("weight", "score") else "left")
        for r, (item, values) in enumerate(zip(self.items, self.scored.scores, strict=True)):
            why = [Text(self.scored.reasons[r][0])] if self.scored.reasons is not None else []
            table.add_row(item.name, f"{item.weight:g}", fmt(values[0]), *why)
        table.add_section()
        table.add_row("weighted total", "", fmt(self.totals[0]), style="bold")
        return table

    def completions_table(self, part: Part, show: int):
        """A row per completion: its excerpt, each reward's score, the weighted total; with --explain also its prompt,
        gold, and each reward's reason under its score."""
        from rich.table import Table
        from rich.text import Text

        rows = [self.rows[i] for i in part.indices]
        table = Table()
        table.add_column("line", justify="right", no_wrap=True)
        show_prompts = self.explain and any(row.get("prompt") is not None for row in rows)
        show_golds = self.explain and any(gold_text(row, self.gold_columns) for row in rows)
        if show_prompts:
            table.add_column("prompt", no_wrap=True, max_width=PROMPT_CHARS)
        if show_golds:
            table.add_column("gold", no_wrap=True, max_width=GOLD_CHARS)
        table.add_column("completion", no_wrap=True, overflow="ellipsis", max_width=EXCERPT_CHARS)
        for item in self.items:
            header = item.name if item.weight == 1 else f"{item.name} x{item.weight:g}"
            width = {"max_width": REASON_CHARS} if self.explain else {}
            table.add_column(header, justify="right", overflow="fold", min_width=6, **width)
        table.add_column("total", justify="right", style="bold", no_wrap=True)
        for i in part.indices[:show]:
            row = self.rows[i]
            context = [Text(prompt_excerpt(row.get("prompt")))] if show_prompts else []
            context += [Text(gold_text(row, self.gold_columns))] if show_golds else []
            cells = []
            for r, values in enumerate(self.scored.scores):
                reason = self.scored.reasons[r][i] if self.scored.reasons is not None else ""
                cells.append(Text(fmt(values[i]) + (f"\n{reason}" if reason else "")))
            table.add_row(
                str(row.get("_line", i + 1)), *context, Text(excerpt(row["completion"])), *cells, fmt(self.totals[i])
            )
        return table


def part_title(part: Part, rows: list[dict[str, Any]]) -> str:
    """'sampled: 400 completions (50 prompts x 8)'; the count per prompt when some prompt has several."""
    title = f"{part.kind}: {len(rows)} completions" if part.kind else f"{len(rows)} completions"
    sizes = [len(group) for group in prompt_groups(rows, list(range(len(rows))))]
    if sizes and min(sizes) == max(sizes) > 1:
        title += f" ({len(sizes)} prompt{'s' * (len(sizes) > 1)} x {sizes[0]})"
    elif sizes and max(sizes) > 1:
        title += f" ({len(sizes)} prompts, {min(sizes)}-{max(sizes)} each)"
    return title


def summary_table(summary: list[dict[str, Any]], kind: str | None):
    from rich.table import Table

    table = Table(title=f"per reward: {kind}" if kind else "per reward")
    for heading in ("reward", "weight", "mean", "std", "min", "max", "zero", "n/a", "s"):
        table.add_column(heading, justify="left" if heading == "reward" else "right", no_wrap=True)
    for entry in summary:
        table.add_row(
            entry["name"],
            f"{entry['weight']:g}",
            *(fmt(entry[key]) for key in ("mean", "std", "min", "max", "fraction_zero")),
            str(entry["not_applicable"]),
            f"{entry['seconds']:.4f}",
        )
    return table


def per_prompt_table(groups: dict[str, Any], kind: str | None, show: int):
    """The weighted total's spread within each prompt's group."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"per prompt: {kind}" if kind else "per prompt")
    table.add_column("prompt", no_wrap=True, max_width=PROMPT_CHARS)
    for heading in ("n", "mean", "std", "min", "max", "all equal"):
        table.add_column(heading, justify="right", no_wrap=True)
    for group in groups["per_prompt"][:show]:
        table.add_row(
            Text(prompt_excerpt(group["prompt"])),
            str(group["n"]),
            *(fmt(group[key]) for key in ("mean", "std", "min", "max")),
            "yes" if group["all_equal"] else "",
        )
    return table


def print_reward_list() -> None:
    from rich.table import Table

    table = Table(
        title="built-in rewards: get_reward(name, **params)",
        caption=f"Every reward also takes {LENGTH_PENALTY_PARAM}: N (x 0.8 + 0.2 min(1, N / completion tokens)).",
        show_lines=True,
    )
    for heading in ("reward", "range", "columns", "parameters", "rule"):
        table.add_column(heading, no_wrap=heading != "rule")
    for name, factory in REWARDS.items():
        required = [p for p in inspect.signature(factory).parameters.values() if p.default is inspect.Parameter.empty]
        reward = None if required else factory()
        table.add_row(
            name,
            "" if reward is None else f"[{fmt(reward.value_range[0])}, {fmt(reward.value_range[1])}]",
            "" if reward is None else ", ".join(reward.required_columns),
            "\n".join(describe_params(factory)[:-1]),  # the last entry is the length penalty: in the caption
            (inspect.getdoc(factory) or "").split("\n\n")[0].replace("\n", " "),
        )
    make_console().print(table)
