"""The one way the program speaks to the user: two rich consoles and one line for each kind of message.

- `console()`: stdout, for what a command is for (its tables, the progress line, the run dir); quiet in every
  process of a multi-process launch but the main one, so one process speaks however many run.
- `err_console()`: stderr, for everything said on the side:
  `warn` (something the user should know, the run goes on), `note` (a fact about this machine or model),
  `error` (the one paragraph of a user error, before exit code 2), and `say` (a plain line: a model being built).

Messages are printed as text, not rich markup (a message may hold `[...]`), and never wrapped (soft_wrap), so a
paragraph stays one line in a log. Library warnings stay Python warnings (train/records/console.py filters them);
rewards/ prints its own few stderr lines, as it may not import train/.

Apart from console.py, which imports transformers: an error or a note can come before unsloth is imported.
"""

from __future__ import annotations

from functools import cache

from rich.console import Console
from rich.text import Text

from train.records.distributed import is_main_process


@cache
def console(width: int | None = None) -> Console:
    """The stdout console (`width`: a fixed width, e.g. for piped tables that should not wrap; None: the terminal's)."""
    return Console(width=width, quiet=not is_main_process())


@cache
def err_console() -> Console:
    return Console(stderr=True)


def warn(message: str) -> None:
    _said("warning: ", "yellow", message)


def note(message: str) -> None:
    _said("note: ", "yellow", message)


def error(message: str) -> None:
    _said("error: ", "bold red", message)


def say(message: str) -> None:
    err_console().print(Text(message), highlight=False, soft_wrap=True)


def _said(label: str, style: str, message: str) -> None:
    err_console().print(Text.assemble((label, style), message), highlight=False, soft_wrap=True)
