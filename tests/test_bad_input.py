"""Bad input at the entry points: one paragraph on stderr, exit code 2, no traceback (docs/bad_input.md lists them)."""

from __future__ import annotations

import json

import pytest
from conftest import entry_point, write_tiny_config

pytestmark = pytest.mark.usefixtures("offline")


def fails_cleanly(capsys, main, argv: list[str], *expected: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in message
    for text in expected:
        assert text in message, message
    return message


def test_evaluate_with_an_adapter_dir_that_holds_no_adapter(tmp_path, capsys):
    not_an_adapter = tmp_path / "notes"
    not_an_adapter.mkdir()
    (not_an_adapter / "readme.txt").write_text("hello")
    config = write_tiny_config(tmp_path)
    fails_cleanly(
        capsys, entry_point("evaluate"), [str(config), "--adapter", str(not_an_adapter)], "not a saved adapter"
    )


def test_a_countdown_data_file_with_a_target_that_is_not_a_number(tmp_path, capsys):
    rows = [{"target": 8, "nums": [3, 5]}, {"target": "abc", "nums": [3, 5]}, {"target": 9, "nums": [4, 5]}]
    source = tmp_path / "countdown.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    data = {"source": str(source), "train_samples": None, "test_samples": 1}
    config = write_tiny_config(tmp_path, data=data, output={"dir": str(tmp_path / "runs")})
    fails_cleanly(capsys, entry_point("run_eval_test"), [str(config)], "'abc'", "whole number")
    assert not (tmp_path / "runs").exists()
