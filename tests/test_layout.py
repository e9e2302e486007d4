"""The house plan holds: train/ grouped in its rooms, no oversized module, one way to import the library, and the
top-level names users import still there (docs/design.md)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOMS = {"grpo", "evaluation", "records", "lab", "models", "tasks", "diagnosis"}
TOP_LEVEL_MODULES = {"__init__.py", "run.py", "config.py", "errors.py"}
MAX_LINES = 700


def test_train_holds_only_its_rooms_and_four_top_level_modules():
    strays = [
        path.name
        for path in (ROOT / "train").iterdir()
        if (path.is_file() and path.suffix == ".py" and path.name not in TOP_LEVEL_MODULES)
        or (path.is_dir() and path.name != "__pycache__" and path.name not in ROOMS)
    ]
    assert not strays, f"train/ holds {strays}: put each in its room (docs/design.md)"


def test_each_room_says_what_it_owns():
    for room in ROOMS:
        init = ROOT / "train" / room / "__init__.py"
        if init.exists():
            assert init.read_text().lstrip().startswith('"""'), f"{init} has no docstring"


def test_no_module_of_train_or_rewards_is_over_700_lines():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in [*(ROOT / "train").rglob("*.py"), *(ROOT / "rewards").rglob("*.py")]
        if (lines := path.read_text().count("\n")) > MAX_LINES
    }
    assert not long, f"split these: {long}"


def test_every_script_and_test_imports_the_library_the_same_way():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in [*(ROOT / "tests").glob("*.py"), *(ROOT / "experiments").glob("*.py")]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"sys\.path\.insert|\brunpy\b", line)
    ]
    assert not offenders, offenders


def test_no_test_fixture_ships_in_the_library():
    names = {path.stem for path in (ROOT / "train").rglob("*.py")}
    assert not {"testing", "fixtures", "conftest"} & names


def test_the_top_level_names_still_import():
    import rewards
    import train

    for module in (train, rewards):
        for name in module.__all__:
            assert getattr(importlib.import_module(module.__name__), name) is not None
    from train import group_advantages, pass_at_k

    assert pass_at_k(10, 10, 1) == 1.0 and callable(group_advantages)
