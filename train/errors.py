"""The one error type a user sees.

Anything the user can fix (a config key, a file path, a task name, a data set that is not there) is raised as
`UserError` with one paragraph that names the problem and the fix. Entry points print it and exit with code 2,
without a traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem in the user's input, described in one paragraph with its fix."""


def user_errors() -> tuple[type[Exception], ...]:
    """The exception types that are the user's to fix: ours, and the rewards module's configuration error."""
    from rewards import RewardConfigError

    return (UserError, RewardConfigError)


def exit_on_user_error(main: Callable[P, R]) -> Callable[P, R]:
    """Run an entry point; a user error becomes one paragraph on stderr and exit code 2."""

    @wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return main(*args, **kwargs)
        except user_errors() as error:
            from rich.console import Console

            Console(stderr=True).print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_USER_ERROR)

    return run
