"""rewards.jsonl.read_jsonl: the one JSONL reader, and every kind of bad line it names."""

import pytest
from conftest import write_jsonl

from rewards.jsonl import JsonlError, read_jsonl


def test_rows_keep_their_file_line_numbers_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2.5}\n')
    read = read_jsonl(path)
    assert read.rows == [{"a": 1}, {"a": 2.5}]
    assert read.line_numbers == [1, 4]
    assert read.skipped == []


def test_a_missing_file_names_the_path(tmp_path):
    with pytest.raises(JsonlError, match=r"nope\.jsonl not found \(resolved to "):
        read_jsonl(tmp_path / "nope.jsonl")


def test_every_bad_line_is_named_with_its_number_and_why(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        b'{"completion": "ok"}\n'
        b"not json\n"
        b"[1, 2]\n"
        b'{"answer": "1"}\n'
        b'{"completion": "x", "target": NaN}\n'
        b'{"completion": "x", "target": -Infinity}\n'
        b'{"completion": "x", "target": 1e999}\n'
        b'{"completion": "\xff"}\n'
    )
    with pytest.raises(JsonlError) as caught:
        read_jsonl(path, required=("completion",))
    message = str(caught.value)
    for fragment in [
        "7 bad line(s)",
        "line 2: not JSON (Expecting value)",
        "line 3: not a JSON object (a list)",
        "line 4: no 'completion' field",
        "line 5: NaN is not a JSON number",
        "line 6: -Infinity is not a JSON number",
        "line 7: 1e999 is too large for a float",
        "line 8: not UTF-8 (byte 16)",
        "with 'completion'",
    ]:
        assert fragment in message, message


def test_skip_bad_returns_the_good_rows_and_lists_the_bad_lines(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"completion": "a"}, {"completion": float("nan")}, {"completion": "b"}])
    read = read_jsonl(path, required=("completion",), skip_bad=True)
    assert read.rows == [{"completion": "a"}, {"completion": "b"}]
    assert read.line_numbers == [1, 3]
    assert read.skipped == ["line 2: NaN is not a JSON number"]


def test_the_message_lists_ten_bad_lines_and_counts_the_rest(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("x\n" * 13)
    with pytest.raises(JsonlError, match=r"line 10: not JSON \(Expecting value\); and 3 more"):
        read_jsonl(path)


def test_torn_last_line_leaves_out_only_a_last_line_cut_off_mid_write(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"ste')
    with pytest.raises(JsonlError, match="line 3: not JSON"):
        read_jsonl(path)
    read = read_jsonl(path, torn_last_line=True)
    assert read.rows == [{"step": 1}, {"step": 2}] and read.torn_line == 3
    path.write_text('{"step": 1}\n{"ste\n{"step": 3}')  # a bad line that is not the last: still an error
    with pytest.raises(JsonlError, match="line 2: not JSON"):
        read_jsonl(path, torn_last_line=True)


def test_check_names_what_is_wrong_with_a_parsed_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"step": 1}\n{"step": "one"}\n')
    with pytest.raises(JsonlError, match="line 2: a step that is not a number") as caught:
        read_jsonl(path, check=lambda row: None if isinstance(row["step"], int) else "a step that is not a number")
    assert caught.value.bad[0].text == '{"step": "one"}'


def test_unique_keys_names_a_repeated_key_at_any_depth_and_only_when_asked(tmp_path):
    """Data files ask for it (a repeated key loses a value silently); metrics.jsonl, whose writer never repeats a
    key, does not pay for the check."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n{"a": 1, "b": 2, "a": 3}\n{"n": {"x": 1, "x": 2}}\n')
    assert read_jsonl(path).rows[1] == {"a": 3, "b": 2}
    with pytest.raises(JsonlError) as caught:
        read_jsonl(path, unique_keys=True)
    assert "line 2: key 'a' appears twice in one object" in str(caught.value)
    assert "line 3: key 'x' appears twice" in str(caught.value)
