"""The one error type a user sees.

Anything the user can fix (a config key, a file path, a task name, a data set that is not there) is raised as
`UserError` with one paragraph that names the problem and the fix. Entry points print it and exit with code 2,
without a traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from pydantic import ValidationError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem in the user's input, described in one paragraph with its fix."""


def user_errors() -> tuple[type[Exception], ...]:
    """The exception types that are the user's to fix: ours, the rewards module's configuration error, a user
    reward that returned something unusable, ran past its time limit, raised or called sys.exit (the message names
    the reward, its file and, for an exception, the line of that file it came from), and a JSONL file with a bad line
    (the message names the file and the line)."""
    from rewards.core import RewardConfigError, RewardResultError
    from rewards.jsonl import JsonlError

    return (UserError, RewardConfigError, RewardResultError, JsonlError)


def validation_problems(error: ValidationError, unknown_key: Callable[[tuple], str] | None = None) -> str:
    """A pydantic ValidationError as sentences, one a problem, each naming its dotted key: an unknown key as
    `unknown_key(location)` says it (the valid keys, a did-you-mean), a choice that is not allowed, a validator's own
    message, or the value and why it is invalid. The config, a task's options and a sweep file all say it so."""
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden" and unknown_key is not None:
            problems.append(unknown_key(item["loc"]))
        elif item["type"] in ("literal_error", "enum"):
            problems.append(f"{location} = {item['input']!r} is not allowed: {item['msg'].lower()}.")
        elif location == "(top level)" or item["type"] in ("value_error", "extra_forbidden"):
            message = item["msg"].removeprefix("Value error, ")
            where = "" if location == "(top level)" else f"{location}: "
            problems.append(f"{where}{message}.")
        else:
            problems.append(f"{location} = {item['input']!r} is invalid: {item['msg'].lower()}.")
    return " ".join(problems)


# Where the running entry point writes (its run dir), for the message when that disk fills up.
_OUTPUT_DIR: list[Path] = []


def note_output_dir(path: Path) -> None:
    """Name the directory the run writes to, so a full disk is reported with its path and free space."""
    _OUTPUT_DIR[:] = [Path(path)]


def is_disk_full(error: BaseException) -> bool:
    """A write that failed because the disk is full: ENOSPC, and the libraries that say it otherwise: torch's zip
    writer ("unexpected pos ...", "PytorchStreamWriter failed") and safetensors' SafetensorError ("No space left
    on device (os error 28)", not an OSError)."""
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    if isinstance(error, RuntimeError):
        return "unexpected pos" in str(error) or "PytorchStreamWriter failed" in str(error)
    return type(error).__name__ == "SafetensorError" and (
        "No space left on device" in str(error) or "os error 28" in str(error)
    )


def _safetensors_path(error: BaseException) -> str | None:
    # 'Error while serializing: I/O error: No space left on device (os error 28) at path "/run/x/.tmpAbC"': the
    # temporary file it writes beside the destination, so its directory is where.
    match = re.search(r'at path "([^"]+)"', str(error))
    return str(Path(match.group(1)).parent) if match else None


def disk_full_message(error: BaseException, where: Path | None = None, what: str = "") -> str | None:
    """One paragraph for a write that failed because the disk is full (`is_disk_full`), or None for any other error:
    the path (`where`, else the error's own, else the run dir), its free space and `what` was being written."""
    if not is_disk_full(error):
        return None
    run_dir = _OUTPUT_DIR[0] if _OUTPUT_DIR else "."
    where = Path(where or getattr(error, "filename", None) or _safetensors_path(error) or run_dir)
    probe = next((p for p in (where, *where.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free / 2**20
    what = f"{what}; " if what else ""
    if not _OUTPUT_DIR:  # not a training run: an export, a report, a table
        return (
            f"no space left on device while writing {where} ({what}{free:.0f} MB free). Free space on that disk, or "
            "choose a destination on another one, and run again."
        )
    checkpoints = sorted((_OUTPUT_DIR[0] / "checkpoints").glob("checkpoint-*"))
    size = sum(f.stat().st_size for f in checkpoints[-1].rglob("*") if f.is_file()) / 2**20 if checkpoints else None
    need = f"; a checkpoint of this run takes about {size:.0f} MB" if size else ""
    return (
        f"no space left on device while writing {where} ({what}{free:.0f} MB free{need}). What was logged is kept "
        "in metrics.jsonl, and nothing cut short is used: a resume sets an unfinished checkpoint aside and continues "
        "from the one before, and adapter/ keeps its last whole save. Free space on that disk (or lower "
        "train.save_total_limit), then continue the run with --resume."
    )


@contextlib.contextmanager
def writing(where: Path, what: str) -> Iterator[None]:
    """Name the path and what is written there when the disk fills up during the block (torch, safetensors and a
    write to an open file name neither): the full disk becomes a UserError with `disk_full_message`."""
    try:
        yield
    except Exception as error:
        message = disk_full_message(error, where, what)
        if message is None:
            raise
        raise UserError(message) from None


# Errors of a write that the destination refused: read-only file system, permissions, a disk quota.
_REFUSED_WRITES = (errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT)


def refused_write_message(error: BaseException) -> str | None:
    """One paragraph for a write that its destination refused (read-only, not permitted, over quota), naming the
    path, or None for any other error. Inputs are read (and their errors reported) before anything is written, so
    an entry point meets these on its outputs."""
    if not isinstance(error, OSError) or error.errno not in _REFUSED_WRITES or not error.filename:
        return None
    during_run = (
        f" What the run logged so far is kept in {_OUTPUT_DIR[0] / 'metrics.jsonl'}; continue it with --resume once "
        "its run dir can be written."
        if _OUTPUT_DIR
        else ""
    )
    return (
        f"cannot write {error.filename}: {error.strerror or errno.errorcode.get(error.errno, error.errno)}. Choose a "
        "destination that can be written (a read-only file system or the permissions forbid this one), or make it "
        f"writable, and run again.{during_run}"
    )


def check_writable(directory: Path, what: str, fix: str, *, keep: bool = False) -> None:
    """Refuse, before any work, a directory that cannot be written: `directory` (and missing parents) is created
    and a probe file written and removed in it; unless `keep`, what this call created is removed again. `what`
    names the directory in the message ("the run dir", "--merged"), `fix` says what to do."""
    directory = Path(directory)
    check_no_broken_link(directory, what)
    created = [] if keep else [p for p in (directory, *directory.parents) if not p.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UserError(
            f"cannot write {what} {directory}: {error.strerror or error}"
            f"{f' ({error.filename})' if error.filename and Path(error.filename) != directory else ''}. {fix}"
        ) from None
    finally:
        for path in created:  # innermost first
            with contextlib.suppress(OSError):
                path.rmdir()


def check_no_broken_link(path: Path, what: str) -> None:
    """Refuse a path that is, or lies under, a symbolic link to nothing (a dangling link, or one that loops back to
    itself): creating the directory there fails with "File exists", which reads like a permissions problem."""
    for link in (Path(path), *Path(path).parents):
        if not link.is_symlink() or link.exists():
            continue
        try:
            os.stat(link)
        except OSError as error:
            target = os.readlink(link)
            found = (
                f"a symbolic link that loops (through {target})"
                if error.errno == errno.ELOOP
                else f"a symbolic link to {target}, which does not exist"
            )
            raise UserError(
                f"cannot write {what} {path}: {link} is {found}. Point the link at an existing directory (or create "
                f"its target), remove it (rm {link}), or choose another path."
            ) from None


def exit_on_user_error(main: Callable[P, R]) -> Callable[P, R]:
    """Run an entry point; a user error, a full disk or a write its destination refused becomes one paragraph on
    stderr and exit code 2."""

    @wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        _OUTPUT_DIR.clear()  # a run dir is named by the run that opens it, not left from an earlier call
        try:
            return main(*args, **kwargs)
        except user_errors() as error:
            _report(str(error))
        except Exception as error:
            message = disk_full_message(error) or refused_write_message(error)
            if message is None:
                raise
            _report(message)

    return run


def _report(message: str) -> None:
    from train.records.voice import error

    error(message)
    sys.exit(EXIT_USER_ERROR)
