"""A user's own reward: a function in their file, adapted into a `Reward` so that it runs the built-ins' code path.

    get_reward("my_reward", path="my_rewards.py:my_reward", call_timeout_seconds=120)

The function is called TRL's way, `my_reward(completions=[str, ...], prompts=..., completion_ids=..., **columns,
**trainer_extras, **params)` (only the arguments its signature names, unless it takes **kwargs), with completions
already turned into text. Optional attributes `my_reward.value_range` and `my_reward.required_columns` declare its
metadata; without them the range is (-inf, inf) and the required columns are its parameters that have no default.
A row whose required column is None is not applicable and is not passed to it, as for the built-ins.

Reasons (score_rewards.py --explain): give the function an `explain` attribute, a function called exactly as the
reward is (same arguments, same time limit) that returns one short string per completion saying why:

    def my_reward(completions, answer, **kwargs): ...
    def why_my_reward(completions, answer, **kwargs): return ["no digits" if ... else "ok" for ...]
    my_reward.explain = why_my_reward

Training never calls it.

A function that raises, or calls sys.exit, gives a UserRewardRaised naming its file, its function, the exception
and the line of its own file it came from (no traceback); what a training run then does is RewardFunction's
(rewards/registry.py): on the first call it stops the run before the run dir exists, later it counts and goes on.

Each call runs under a time limit (`call_timeout_seconds`, default USER_REWARD_TIMEOUT_SECONDS; None: none). At
the limit the call is interrupted and a RewardResultError names the reward. How, and what it cannot stop:
- in the main thread (where TRL calls rewards) a watchdog thread sends SIGUSR2 to it, whose handler raises: this
  stops a Python loop and a blocking system call (sleep, a socket read without timeout);
- in any other thread the watchdog raises the exception asynchronously in that thread (CPython's
  PyThreadState_SetAsyncExc): this stops a Python loop, not a blocking system call;
- neither stops C code that never returns to Python (a huge integer power, a catastrophic regex). A reward that
  catches the exception and goes on is reported as over the limit when it returns.
The interruption is repeated every RETRY_SECONDS. A call still running `hard_stop_after(limit)` seconds past its
limit (it catches every interruption, `except BaseException:` or a bare `except:`, or is stuck in C code) cannot be
stopped inside the process: the watchdog names the reward on the run's stderr and ends the process with exit code
2, as a kill would (a run keeps what it logged and continues with --resume). Without this the call, and the run,
would hang for good.
Nothing is abandoned: no thread keeps running a reward after its call has ended. SIGUSR2's own handler is set
for the duration of a call in the main thread and restored after it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import inspect
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from rewards import guard
from rewards.core import Completion, Reward, RewardConfigError, RewardResultError, UserRewardRaised

USER_REWARD_TIMEOUT_SECONDS = 60.0
TIMEOUT_PARAM = "call_timeout_seconds"
CALL_ARGUMENTS = ("prompts", "completions", "completion_ids")
# Keyword arguments TRL adds to every reward call that are not dataset columns. Built-in rewards ignore them; a
# user's reward receives those its signature names.
TRL_EXTRAS = ("trainer_state", "log_metric", "log_extra", "environments")


@dataclass(frozen=True)
class UserFunction:
    """A user's reward function with what a call needs: its name and source for messages, params, time limit."""

    name: str
    source: str
    function: Callable[..., Any]
    params: dict[str, Any]
    timeout_seconds: float | None


def user_reward(name: str, path: str, params: dict[str, Any], timeout_seconds: float | None) -> Reward:
    """The `Reward` of the function at `path` ("file.py:function"), called with `params` under the time limit."""
    function = load_user_function(path, timeout_seconds)
    _check_params(name, function, params)
    low, high = _value_range(name, path, function)
    user = UserFunction(name, path, function, params, timeout_seconds)
    explain = getattr(function, "explain", None)
    if explain is not None and not callable(explain):
        raise RewardConfigError(
            f"Reward '{name}' ({path}): its `explain` attribute must be a function returning one reason per "
            f"completion, got {type(explain).__name__}."
        )
    why = None if explain is None else partial(_call_user, UserFunction(name, path, explain, params, timeout_seconds))
    return Reward(
        partial(_call_user, user), (float(low), float(high)), _required_columns(function, params), explain=why
    )


def _call_user(user: UserFunction, completions: Sequence[Completion]) -> Any:
    """The user function's raw output on one batch (RewardFunction checks it); UserRewardRaised if it raises or
    exits, RewardResultError if it overruns its time limit."""
    if not completions:
        return []
    first = completions[0]
    prompts = [c.prompt for c in completions]
    arguments = {
        "prompts": None if all(prompt is None for prompt in prompts) else prompts,
        "completions": [c.text for c in completions],
        "completion_ids": None if first.ids is None else [c.ids for c in completions],
        **{column: [c.columns[column] for c in completions] for column in first.columns},
        **(first.extras or {}),
        **user.params,
    }
    if not _takes_var_keyword(user.function):
        accepted = inspect.signature(user.function).parameters
        arguments = {key: value for key, value in arguments.items() if key in accepted}
    where = f"reward '{user.name}' ({user.source})"
    try:
        with _ctrl_c_watched() as ctrl_c:
            return call_with_time_limit(user.function, arguments, user.timeout_seconds, where)
    except KeyboardInterrupt as error:
        if ctrl_c.pressed:  # a real Ctrl-C: the run's to handle (exit 130 and the resume command)
            raise
        raise UserRewardRaised(
            f"{where} raised KeyboardInterrupt{_user_line(error, user.function)}, with no Ctrl-C pressed. A reward "
            "must return its scores (None for 'not applicable'), never interrupt the run."
        ) from None
    except TimeLimitExceeded:
        raise RewardResultError(
            f"{where} did not return within {user.timeout_seconds:g} s (its {TIMEOUT_PARAM}), on a batch of "
            f"{len(completions)} completions. Make it faster, or raise {TIMEOUT_PARAM} in its params."
        ) from None
    except SystemExit as error:  # a reward must not end the run, whatever its exit code
        raise UserRewardRaised(
            f"{where} called sys.exit({error.code!r}){_user_line(error, user.function)}. A reward must return its "
            "scores (None for 'not applicable'), never exit."
        ) from None
    except Exception as error:
        raise UserRewardRaised(
            f"{where} raised {type(error).__name__}: {error}{_user_line(error, user.function)}."
        ) from None
    except BaseException as error:  # GeneratorExit or a BaseException of its own: still the reward's
        if isinstance(error, _TimeUp):
            raise
        raise UserRewardRaised(
            f"{where} raised {type(error).__name__}: {error}{_user_line(error, user.function)}."
        ) from None


class _CtrlC:
    pressed = False


@contextlib.contextmanager
def _ctrl_c_watched() -> Iterator[_CtrlC]:
    """Tell a Ctrl-C (SIGINT, which Python turns into KeyboardInterrupt) from a KeyboardInterrupt that user code
    raises itself: in the main thread, SIGINT's handler is wrapped for the duration to note that it came. In any
    other thread no signal arrives, so a KeyboardInterrupt there is always the code's own."""
    state = _CtrlC()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.getsignal(signal.SIGINT)

    def noted(signum: int, frame: Any) -> None:
        state.pressed = True
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, noted)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def _value_range(name: str, path: str, function: Callable[..., Any]) -> tuple[float, float]:
    """The function's `value_range` attribute: two numbers, low <= high (inf allowed), or (-inf, inf) without one."""
    declared = getattr(function, "value_range", (-math.inf, math.inf))
    try:
        low, high = (float(bound) for bound in declared)
        if not low <= high:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise RewardConfigError(
            f"Reward '{name}' ({path}): its value_range attribute must be two numbers (low, high) with low <= high, "
            f"as in {function.__name__}.value_range = (0.0, 1.0); got {declared!r}."
        ) from None
    return low, high


def _user_line(error: BaseException, function: Callable[..., Any]) -> str:
    """' at FILE:LINE (`code`)' for the innermost frame of the traceback in the user's own file, or ''."""
    own_file = inspect.getsourcefile(function) or ""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == own_file] if own_file else []
    if not frames:
        return ""
    frame = frames[-1]
    code = f" (`{frame.line.strip()}`)" if frame.line else ""
    return f" at {frame.filename}:{frame.lineno} in {frame.name}{code}"


def check_timeout(name: str, timeout_seconds: Any) -> float | None:
    """`call_timeout_seconds` as given: a positive number of seconds, or None for no limit."""
    if timeout_seconds is None:
        return None
    if (
        isinstance(timeout_seconds, bool)
        or not isinstance(timeout_seconds, int | float)
        or not 0 < timeout_seconds < math.inf  # .inf: the watchdog could not wait that long, and the call ran unbounded
    ):
        raise RewardConfigError(
            f"Reward '{name}': {TIMEOUT_PARAM} must be a positive number of seconds, and finite (null for no "
            f"limit), got {timeout_seconds!r}."
        )
    return float(timeout_seconds)


# --- the time limit ---


class TimeLimitExceeded(Exception):
    """A call did not return within its time limit."""


class _TimeUp(BaseException):
    """Raised inside the call at its limit; a BaseException, so a reward's `except Exception` lets it through."""


_TIME_UP_SIGNAL = signal.SIGUSR2
_main_thread_watches: list[_Watch] = []


# After the limit the call is interrupted again every RETRY_SECONDS; HARD_STOP_GRACE bounds how long past the limit
# a call that will not stop may run before the process ends (`hard_stop_after`).
RETRY_SECONDS = 0.5
HARD_STOP_GRACE = (2.0, 30.0)


def hard_stop_after(seconds: float) -> float:
    """Seconds past its limit a call may go on, interrupted, before the process ends: as long as the limit itself,
    at least 2 s (time for a finally: block to tidy up) and at most 30 s."""
    low, high = HARD_STOP_GRACE
    return min(max(seconds, low), high)


def call_with_time_limit(
    function: Callable[..., Any], arguments: dict[str, Any], seconds: float | None, what: str = "the call"
) -> Any:
    """function(**arguments), interrupted after `seconds` (None: no limit) with TimeLimitExceeded; see the module
    docstring for what can be interrupted where, and for the hard stop (`what` names the call in its message)."""
    if seconds is None:
        return function(**arguments)
    watch = _Watch(seconds, what)
    try:
        try:
            result = function(**arguments)
        finally:
            watch.finish()
    except BaseException:
        if watch.fired:
            raise TimeLimitExceeded from None
        raise
    if watch.fired:  # the reward caught the interruption and went on
        raise TimeLimitExceeded
    return result


class _Watch:
    """A watchdog thread that interrupts the calling thread once, at the limit, unless `finish` came first."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.target = threading.current_thread()
        self.on_main = self.target is threading.main_thread()
        self.lock = threading.Lock()
        self.done = self.fired = self.settled = False
        self.stop = threading.Event()
        if self.on_main:
            self.previous_handler = signal.signal(_TIME_UP_SIGNAL, _on_time_up_signal)
            _main_thread_watches.append(self)
        self.watchdog = threading.Thread(target=self._watch, name="reward time limit", daemon=True)
        self.watchdog.start()

    def _watch(self) -> None:
        if self.stop.wait(self.seconds):
            return
        give_up = time.monotonic() + hard_stop_after(self.seconds)
        while time.monotonic() < give_up:
            with self.lock:
                if self.done:
                    return
                self.fired = True
                if self.on_main:
                    signal.pthread_kill(self.target.ident, _TIME_UP_SIGNAL)
                else:
                    _set_async_exception(self.target.ident, _TimeUp)
            if self.stop.wait(RETRY_SECONDS):
                return
        with self.lock:
            if not self.done:
                self._end_the_process()

    def _end_the_process(self) -> None:
        """The hard stop (module docstring): one paragraph on the run's own stderr, then exit 2 at once."""
        waited = self.seconds + hard_stop_after(self.seconds)
        message = (
            f"error: {self.what} was still running {waited:g} s after it started, although it was interrupted at its "
            f"{self.seconds:g} s limit ({TIMEOUT_PARAM}) and every {RETRY_SECONDS:g} s after: it catches the "
            "interruption (an `except BaseException:` or a bare `except:` around its work) or is stuck in C code, "
            "and nothing else can stop it inside this process. The process ends here (exit 2), as a kill would: a "
            "training run keeps what it logged. Catch Exception, not BaseException, in the reward (or make it "
            "return sooner), then run again (--resume for a training run).\n"
        )
        console = guard.console_stderr()
        with contextlib.suppress(OSError):
            if os.isatty(console):  # a progress bar may have hidden the cursor and holds the line: give both back
                message = "\x1b[?25h\n" + message
            os.write(console, message.encode())
        os._exit(2)

    def finish(self) -> None:
        """Stop watching; consume an interruption that was sent but not yet raised. Runs in the watched thread,
        where the interruption may surface at any bytecode: each step is repeated until it completes."""
        while not self.settled:
            try:
                with self.lock:
                    self.done = True
                self.stop.set()
                if self.fired and self.on_main:
                    _let_signal_handlers_run()  # raises _TimeUp here if the handler has not run yet
                elif self.fired:
                    _set_async_exception(self.target.ident, None)  # drop it if it is still pending
                if self.on_main:
                    signal.signal(_TIME_UP_SIGNAL, self.previous_handler)
                    if self in _main_thread_watches:
                        _main_thread_watches.remove(self)
                self.settled = True
            except _TimeUp:
                continue
        self.watchdog.join()


def _on_time_up_signal(signum: int, frame: Any) -> None:
    watch = _main_thread_watches[-1] if _main_thread_watches else None
    if watch is not None and watch.fired:
        raise _TimeUp
    previous = watch.previous_handler if watch is not None else None
    if callable(previous):  # SIGUSR2 from elsewhere during a call goes where it went before
        previous(signum, frame)


def _let_signal_handlers_run() -> None:
    pass  # entering a Python function runs the pending signal handlers


def _set_async_exception(thread_id: int | None, exception: type[BaseException] | None) -> None:
    set_async = ctypes.pythonapi.PyThreadState_SetAsyncExc
    set_async.argtypes = (ctypes.c_ulong, ctypes.c_void_p)
    set_async(thread_id, None if exception is None else id(exception))  # NULL clears a pending one


# --- loading the function and reading its signature ---


def load_user_function(path: str, timeout_seconds: float | None = USER_REWARD_TIMEOUT_SECONDS) -> Callable[..., Any]:
    """The function named by "file.py:function"; a relative file resolves against the current directory. Importing
    the file may take `timeout_seconds` (None: no limit)."""
    file_part, colon, function_name = path.rpartition(":")
    if not colon or not file_part or not function_name:
        raise RewardConfigError(
            f"Reward path '{path}' must name a Python file and a function in it, as in my_rewards.py:my_reward."
        )
    file = user_file(file_part)
    if not file.is_file():
        raise RewardConfigError(
            f"Reward file '{file_part}' not found (looked for {file}; relative paths resolve against the current "
            f"directory). Fix the path before the ':' in '{path}'."
        )
    module = load_user_module(file, timeout_seconds)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise RewardConfigError(
            f"Reward file {file} has no function '{function_name}'. Functions defined there: "
            f"{', '.join(defined_functions(module)) or 'none'}. Fix the name after the ':' in '{path}'."
        )
    return function


def user_file(file: str) -> Path:
    """The path of a user's reward file as given: `~` expanded, a relative path read from the current directory."""
    path = Path(file).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def defined_functions(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The functions a user's file defines (not those it imports), by name in file order; a function bound to two
    names (`b = a`) under its first."""
    defined: dict[str, Callable[..., Any]] = {}
    for name, value in vars(module).items():
        if inspect.isfunction(value) and value.__module__ == module.__name__ and value not in defined.values():
            defined[name] = value
    return defined


def load_user_module(file: Path, timeout_seconds: float | None = USER_REWARD_TIMEOUT_SECONDS) -> ModuleType:
    """The user's file, an existing path, imported (run) as a module within `timeout_seconds` (None: no limit);
    RewardConfigError if importing it fails, runs past the limit, calls sys.exit or raises KeyboardInterrupt."""
    # One module per file path, registered in sys.modules so dataclasses and pickling in the user's file work.
    module_name = "user_reward_" + hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with _ctrl_c_watched() as ctrl_c:
            call_with_time_limit(
                spec.loader.exec_module, {"module": module}, timeout_seconds, f"importing reward file {file}"
            )
    except SyntaxError as error:
        raise RewardConfigError(
            f"Reward file {file} has a syntax error at line {error.lineno}: {error.msg}."
        ) from error
    except TimeLimitExceeded:
        raise RewardConfigError(
            f"Importing reward file {file} did not finish within {timeout_seconds:g} s (the reward's "
            f"{TIMEOUT_PARAM}): a reward file should define functions, not do its work at import. Move slow "
            f"set-up into the function (cached), or raise {TIMEOUT_PARAM}."
        ) from None
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt) and ctrl_c.pressed:
            raise
        line = traceback.extract_tb(error.__traceback__)[-1]
        what = f"called sys.exit({error.code!r})" if isinstance(error, SystemExit) else type(error).__name__
        raise RewardConfigError(
            f"Importing reward file {file} failed ({what}{'' if isinstance(error, SystemExit) else f': {error}'}) "
            f"at {line.filename}:{line.lineno}. A reward file must define its functions, never exit or stop."
        ) from None
    return module


def _takes_var_keyword(function: Callable[..., Any]) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(function).parameters.values())


def _check_params(name: str, function: Callable[..., Any], params: dict[str, Any]) -> None:
    parameters = inspect.signature(function).parameters
    if "completions" not in parameters and not _takes_var_keyword(function):
        raise RewardConfigError(
            f"Reward '{name}' ({function.__name__}) must take a 'completions' argument (a list of completion texts), "
            f"as in def {function.__name__}(completions, **kwargs)."
        )
    if _takes_var_keyword(function):
        return
    unknown = [key for key in params if key not in parameters]
    if unknown:
        raise RewardConfigError(
            f"Reward '{name}' has no parameter {', '.join(map(repr, unknown))}. Parameters of {function.__name__}: "
            f"{', '.join(parameters)}; or add **kwargs to its signature."
        )


def _required_columns(function: Callable[..., Any], params: dict[str, Any]) -> tuple[str, ...]:
    declared = getattr(function, "required_columns", None)
    if declared is not None:
        if (
            isinstance(declared, str)
            or not isinstance(declared, list | tuple)
            or not all(isinstance(column, str) for column in declared)
        ):
            raise RewardConfigError(
                f"Reward {function.__name__}: its required_columns attribute must be a list of column names, as in "
                f"{function.__name__}.required_columns = ['answer']; got {declared!r}."
            )
        return tuple(declared)
    named = (*CALL_ARGUMENTS, *TRL_EXTRAS, *params)
    return tuple(
        key
        for key, p in inspect.signature(function).parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and key not in named
    )
