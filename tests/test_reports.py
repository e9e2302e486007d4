"""Reports from a recorded run: tests/fixtures/report_run is a hand-made run dir (2 epochs of 3 steps, 8 completions
a step; epoch reward sums 30 and 45, means 1.25 and 1.875; greedy pass@1 0.25 zero-shot, 0.5 after epoch 1, 0.75
after epoch 2 = final), so every figure the report shows can be checked against the records by hand.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
from pathlib import Path

import pytest

from train.errors import UserError
from train.lab.reports import build_run_report, compare_runs, load_run, write_run_report
from train.lab.reports.plots import RUN_PLOTS, ema
from train.lab.reports.run_report import pick_samples
from train.lab.reports.tables import Row, comparison_table

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "report_run"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    shutil.copytree(FIXTURE, path)
    return path


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (a valid PNG starts with the signature, then IHDR)."""
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_md_shows_the_recorded_figures(run_dir):
    build_run_report(run_dir)
    text = (run_dir / "report.md").read_text()

    # Epoch table: accumulated and mean reward of each epoch record, and the pass@1 after it.
    assert re.search(r"\| 1 \| 3 \| 30\.0 \| 1\.250 \| 24 \| 0\.750 \| 0\.500 \| 0\.500 \|", text)
    assert re.search(r"\| 2 \| 6 \| 45\.0 \| 1\.875 \| 24 \| 1\.000 \| 0\.875 \| 0\.750 \|", text)
    # Result: greedy pass@1 zero-shot -> final and the change; the outcome counts.
    assert "| pass@1 (greedy) | 0.250 | 0.750 | +0.500 |" in text
    assert "| pass@2 | 0.250 | 0.750 | +0.500 |" in text
    assert "| correct | 1 | 3 | +2 |" in text
    assert "| failed | 1 | 0 | -1 |" in text
    # Every evaluation, the final marked as the epoch_2 one it reuses.
    assert "| epoch_1 | 3 | 1 | 0.500 | 0.375 | 0.500 |" in text
    assert "| final (= epoch_2) | 6 | 2 | 0.750 |" in text
    # Reward time: 6 steps x 1.0 ms and 6 x 0.2 ms.
    assert "| countdown_reward | 0.006 | 1.00 | 83% |" in text
    assert "| hard_format_reward | 0.001 | 0.20 | 17% |" in text
    assert "Finished in 12 s" in text


def test_every_plot_is_a_valid_png_linked_from_report_md(run_dir):
    build_run_report(run_dir)
    text = (run_dir / "report.md").read_text()
    for name in RUN_PLOTS:
        path = run_dir / "plots" / f"{name}.png"
        width, height = png_size(path.read_bytes())
        assert width > 100 and height > 100
        assert f"](plots/{name}.png)" in text


def test_report_html_is_one_file_with_inline_plots_and_escaped_model_text(run_dir):
    html = build_run_report(run_dir).read_text()

    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == len(RUN_PLOTS)
    for data in images:
        png_size(base64.b64decode(data))
    # Self-contained: nothing fetched, no script of ours.
    assert not re.search(r"(src|href)=\"?(https?:)?//", html)
    assert "<script" not in html.lower()
    # The completion that holds a script tag is shown as text.
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html
    # Samples: the greedy rows only, zero-shot beside final, each reward's score and the outcome.
    assert "SAMPLED-ROW-NOT-SHOWN" not in html
    assert html.count("<div class=sample>") == 4
    prompt_1 = html[html.index("Test prompt 1") :]
    prompt_1 = prompt_1[: prompt_1.index("</div></div></div>")]
    assert "&lt;answer&gt;9+4&lt;/answer&gt;" in prompt_1 and "&lt;answer&gt;9-4&lt;/answer&gt;" in prompt_1
    assert "badge partial" in prompt_1 and "badge correct" in prompt_1
    assert "<td>countdown_reward</td><td class=num>0.100</td>" in prompt_1
    assert "<td>countdown_reward</td><td class=num>1.000</td>" in prompt_1


def test_a_killed_run_with_a_torn_last_line_gets_a_report_of_its_latest_evaluation(run_dir):
    (run_dir / "summary.json").unlink()
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    first_epoch = [line for line in lines if json.loads(line)["step"] <= 3]
    (run_dir / "metrics.jsonl").write_text("\n".join(first_epoch) + '\n{"type": "step", "step": 4, "rew')

    run = load_run(run_dir)
    assert run.skipped_lines == 1 and len(run.steps) == 3 and not run.finished
    build_run_report(run_dir)
    text = (run_dir / "report.md").read_text()
    assert "In progress or stopped" in text and "1 unreadable line(s)" in text
    assert "| metric | zero-shot | latest (epoch_1) | change |" in text
    assert "| pass@1 (greedy) | 0.250 | 0.500 | +0.250 |" in text
    assert "| 2 | 6 | 45.0" not in text


def test_write_run_report_never_raises(tmp_path, capsys):
    assert write_run_report(tmp_path / "missing") is None
    said = capsys.readouterr().err
    assert said.startswith(f"warning: the run report for {tmp_path / 'missing'} could not be written")
    with pytest.raises(UserError, match="not a run dir"):
        build_run_report(tmp_path)


def test_a_run_without_records_yet_gets_a_short_report(tmp_path):
    (tmp_path / "config.yaml").write_text((FIXTURE / "config.yaml").read_text())
    build_run_report(tmp_path)
    assert "Not started" in (tmp_path / "report.md").read_text()


def test_ema_is_debiased():
    # w = 0.5: s1 = 0.5 * 0 + 0.5 * 0 = 0 -> 0 / 0.5 = 0; s2 = 0.5 * 0 + 0.5 * 10 = 5 -> 5 / 0.75
    assert ema([0.0, 10.0], weight=0.5) == pytest.approx([0.0, 5 / 0.75])
    assert ema([2.0, None, 2.0], weight=0.9) == pytest.approx([2.0, None, 2.0])


def test_samples_shown_take_fixed_broken_unchanged_in_turn():
    before = {i: {"correct": c} for i, c in enumerate([False, True, False, True, False])}
    after = {i: {"correct": c} for i, c in enumerate([True, False, False, True, True])}
    # fixed: 0, 4; broken: 1; still wrong: 2; still right: 3
    assert pick_samples(before, after, 4) == [0, 1, 2, 3]
    assert pick_samples(before, after, 10) == [0, 1, 2, 3, 4]


def test_compare_shows_the_config_differences_and_the_summary_figures(run_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(FIXTURE, other)
    config = (other / "config.yaml").read_text().replace("beta: 0.04", "beta: 0.0")
    (other / "config.yaml").write_text(config)
    summary = json.loads((other / "summary.json").read_text())
    summary["final"]["pass@1"] = 0.5
    (other / "summary.json").write_text(json.dumps(summary))

    table = compare_runs([load_run(run_dir), load_run(other)])
    text = table.markdown()
    assert text.splitlines()[0].startswith("| run | beta | zero-shot pass@1 | final pass@1 | improvement |")
    assert "| **run (best)** | **0.04** | **0.250** | **0.750** | **+0.500** |" in text
    assert "| other | 0 | 0.250 | 0.500 | +0.250 |" in text
    rows = table.csv().splitlines()
    assert rows[0].startswith("run,beta,runs,zero-shot pass@1,final pass@1,improvement,final pass@1 (sampled)")
    assert rows[1].startswith("run,0.04,1,0.25,0.75,0.5,0.625,0.75,3,1,0,10,0.625,1.875,12.5,finished,true")


def test_a_row_of_repeats_shows_mean_and_spread(run_dir, tmp_path):
    other = tmp_path / "seed2"
    shutil.copytree(FIXTURE, other)
    summary = json.loads((other / "summary.json").read_text())
    summary["final"]["pass@1"] = 0.25
    (other / "summary.json").write_text(json.dumps(summary))
    row = Row(keys={"variant": "a"}, runs=[load_run(run_dir), load_run(other)])
    table = comparison_table([row], ["variant"], columns=["final_pass@1"])
    # mean (0.75 + 0.25) / 2 = 0.5; sample std sqrt(((0.25)^2 * 2) / 1) = 0.354
    assert "| a | 2 | 0.500 ± 0.354 |" in table.markdown()
    assert table.csv().splitlines()[1] == "a,2,0.5,0.353553,finished,false"


def test_report_script_rebuilds_a_run_report(run_dir, monkeypatch):
    from experiments import report

    report.main([str(run_dir)])
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()
    with pytest.raises(SystemExit) as stopped:
        report.main([str(run_dir / "samples")])
    assert stopped.value.code == 2
