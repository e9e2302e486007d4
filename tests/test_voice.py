"""train.records.voice: the one way the program speaks to the user."""

from __future__ import annotations

from train.records import voice


def test_a_warning_is_one_plain_line_on_stderr_whatever_brackets_it_holds(capsys):
    long = "the stop strings ['</answer>\\n'] are not single tokens " + "x" * 200
    voice.warn(long)
    voice.note("[bold]not markup[/]")
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"warning: {long}", "note: [bold]not markup[/]"]


def test_an_error_reads_error_and_say_is_the_bare_message(capsys):
    voice.error("config.yaml not found")
    voice.say("building builtin:tiny")
    assert capsys.readouterr().err == "error: config.yaml not found\nbuilding builtin:tiny\n"
