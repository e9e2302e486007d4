"""The diagnosis (train/diagnosis): each finding fires on hand-built records where it must and stays quiet where it
must not; the binomial noise by hand; the verdict; the new findings after each evaluation; and the Countdown study's
Dr. GRPO 1,024-token row rebuilt as records. Records are built as metrics.jsonl holds them (our step / eval records)
or as a TRL trainer_state.json's log_history holds them (the same step keys, no evaluations, no samples)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from train.diagnosis import NOTE, PROBLEM, WATCH, NewFindings, RunRecords, compare_rates, diagnose, from_records
from train.diagnosis.diagnose import verdict


def step_rows(count: int, **columns: Any) -> list[dict[str, Any]]:
    """`count` step records, one per step, epoch = step / steps_per_epoch; each column a constant or f(step)."""
    per_epoch = columns.pop("steps_per_epoch", count)
    rows = []
    for step in range(1, count + 1):
        row: dict[str, Any] = {"type": "step", "step": step, "epoch": step / per_epoch}
        for key, value in columns.items():
            row[key.replace("__", "/")] = value(step) if callable(value) else value
        rows.append(row)
    return rows


def eval_row(label: str, step: int, prompts: int = 50, **metrics: float) -> dict[str, Any]:
    return {"type": "eval", "label": label, "step": step, "epoch": 0.0, "eval/num_prompts": float(prompts)} | {
        f"eval/{key.replace('pass__', 'pass@').replace('__', '/')}": value for key, value in metrics.items()
    }


def names(run: RunRecords, severity: str | None = None) -> list[str]:
    return [f.name for f in diagnose(run).findings if severity is None or f.severity == severity]


def finding(run: RunRecords, name: str):
    found = [f for f in diagnose(run).findings if f.name == name]
    assert found, f"{name} did not fire; findings: {[f.line() for f in diagnose(run).findings]}"
    return found[0]


# ---------------------------------------------------------------------------------------------------------------
# 1. groups without signal


def test_groups_without_signal_is_a_problem_when_most_groups_score_alike_and_says_each_epoch():
    run = from_records(step_rows(20, steps_per_epoch=10, frac_reward_zero_std=lambda s: 0.8 if s <= 10 else 1.0))
    found = finding(run, "groups_without_signal")
    assert found.severity == PROBLEM
    assert "90% of prompt groups" in found.evidence  # (10 x 0.8 + 10 x 1.0) / 20
    assert "80% in epoch 1 (steps 1-10)" in found.evidence and "100% in epoch 2 (steps 11-20)" in found.evidence
    assert "train.num_generations" in found.to_try


def test_groups_without_signal_is_watched_at_half_and_quiet_below():
    assert finding(from_records(step_rows(10, frac_reward_zero_std=0.6)), "groups_without_signal").severity == WATCH
    assert "groups_without_signal" not in names(from_records(step_rows(10, frac_reward_zero_std=0.3)))


# ---------------------------------------------------------------------------------------------------------------
# 2. a reward that never varies


def test_a_reward_with_std_0_at_every_step_of_an_epoch_never_varies_in_trl_shape():
    # TRL's log_history: rewards/<f>/mean and /std per logged step, no samples.
    rows = step_rows(
        6,
        steps_per_epoch=3,
        rewards__xmlcount_reward__mean=0.0,
        rewards__xmlcount_reward__std=0.0,
        rewards__accuracy_reward__mean=lambda s: 0.1 * s,
        rewards__accuracy_reward__std=0.3,
    )
    run = RunRecords(steps=rows, samples=None)
    found = finding(run, "constant_reward")
    assert found.subject == "xmlcount_reward" and found.severity == WATCH
    assert "scored 0 on every training completion of epoch 1 (steps 1-3), epoch 2 (steps 4-6)" in found.evidence
    assert "no samples in these records" in found.evidence
    assert [f.subject for f in diagnose(run).findings if f.name == "constant_reward"] == ["xmlcount_reward"]


def test_a_reward_that_varies_at_one_step_is_not_constant():
    rows = step_rows(4, rewards__mark_reward__mean=0.5, rewards__mark_reward__std=lambda s: 0.1 if s == 3 else 0.0)
    assert "constant_reward" not in names(from_records(rows))


def samples(label: str, count: int, score: Any, name: str = "strict_mark_reward") -> list[dict[str, Any]]:
    return [
        {
            "label": label,
            "kind": "greedy" if i % 2 == 0 else "sampled",
            "index": i // 2,
            "completion": f"<think>{i}</think><answer>{i}</answer>",
            "rewards": {name: score(i) if callable(score) else score},
            "answer": "7",
        }
        for i in range(count)
    ]


def test_a_reward_the_same_on_every_sample_of_an_evaluation_quotes_a_sample_and_its_reason():
    records = [eval_row("zero_shot", 0, pass__1=0.1), eval_row("final", 10, pass__1=0.3)]
    seen = []

    def explain(name, sample):
        seen.append((name, sample["index"]))
        return "no <reasoning> block"

    run = from_records(records, samples={"final": samples("final", 12, 0.0)}, explain=explain)
    found = finding(run, "constant_reward")
    assert "gave every sample of the final evaluation (12 samples) 0" in found.evidence
    assert 'greedy completion of test prompt 0 "<think>0</think><answer>0</answer>" scored 0: no <reasoning>' in (
        found.evidence
    )
    assert seen == [("strict_mark_reward", 0)]
    varied = from_records(records, samples={"final": samples("final", 12, lambda i: float(i == 5))})
    assert "constant_reward" not in names(varied)
    too_few = from_records(records, samples={"final": samples("final", 4, 0.0)})
    assert "constant_reward" not in names(too_few)


# ---------------------------------------------------------------------------------------------------------------
# 3. layout without content


def test_format_rewards_rising_while_pass1_stays_at_0_is_layout_without_content():
    # The real-model quickstart's shape: lenient format 0 -> 0.25 on every greedy reply, pass@1 0 -> 0 on 20 prompts.
    rows = step_rows(
        24, rewards__hard_format_reward__mean=lambda s: min(0.25, 0.02 * s), rewards__mark_reward__mean=0.1
    )
    records = [eval_row("zero_shot", 0, 20, pass__1=0.0), *rows, eval_row("final", 24, 20, pass__1=0.0)]
    found = finding(from_records(records), "layout_without_content")
    assert found.severity == PROBLEM
    assert "hard_format_reward 0.06 -> 0.25 (steps 1-5 vs 20-24)"  # mean of 0.02 ... 0.10 in found.evidence
    assert "greedy pass@1 (zero-shot -> final) 0.000 -> 0.000" in found.evidence
    assert "mark_reward" not in found.evidence.split(" while ")[0]  # flat: not a rising format reward


def test_format_rewards_rising_with_accuracy_is_no_layout_finding():
    rows = step_rows(24, rewards__hard_format_reward__mean=lambda s: min(0.25, 0.02 * s))
    records = [eval_row("zero_shot", 0, pass__1=0.04), *rows, eval_row("final", 24, pass__1=0.30)]
    assert "layout_without_content" not in names(from_records(records))
    # A TRL run: no evaluation, a correctness reward that rose.
    trl = step_rows(
        24,
        rewards__format_reward__mean=lambda s: min(1.0, 0.05 * s),
        rewards__accuracy_reward__mean=lambda s: 0.01 * s,
    )
    assert "layout_without_content" not in names(RunRecords(steps=trl))
    flat = step_rows(24, rewards__format_reward__mean=lambda s: min(1.0, 0.05 * s), rewards__accuracy_reward__mean=0.0)
    assert (
        "accuracy_reward went 0 -> 0 (no held-out evaluation"
        in finding(RunRecords(steps=flat), "layout_without_content").evidence
    )


# ---------------------------------------------------------------------------------------------------------------
# 4. reward up, held-out accuracy down


def countdown_dr_grpo_1024() -> RunRecords:
    """The Countdown study's Dr. GRPO row at 1,024 tokens, from the seed's published table: zero-shot 32.5%, trained
    4.9%, 971 of 1,024 answers partial, budget use 21% (no training records: the table has none)."""
    zero = eval_row("zero_shot", 0, 1024, pass__1=333 / 1024)
    final = eval_row(
        "final",
        80,
        1024,
        pass__1=50 / 1024,
        correct=50.0,
        partial=971.0,
        failed=3.0,
        partial_frac=971 / 1024,
        budget_utilization=0.21,
    )
    return from_records([zero, final])


def test_the_countdown_dr_grpo_1024_row_is_named_reward_hacking_or_collapse_with_its_figures():
    result = diagnose(countdown_dr_grpo_1024())
    found = result.findings[0]
    assert found.name == "reward_hacking_or_collapse" and found.severity == PROBLEM
    assert "reward hacking or collapse" in found.title
    for figure in ("32.5% (zero_shot)", "4.9% (final)", "1,024 prompts", "50/971/3 (partial 94.8%)", "budget use 21%"):
        assert figure in found.evidence
    assert "partial credit" in found.meaning
    assert result.verdict.learning is False
    assert result.verdict.line.startswith("not learning: greedy pass@1 (zero-shot -> final) 0.325 -> 0.049")
    assert "main why: held-out accuracy down: reward hacking or collapse" in result.verdict.line


def test_reward_up_accuracy_down_names_the_reward_rise_and_a_rise_in_accuracy_is_not_hacking():
    rows = step_rows(20, reward=lambda s: 1.0 + 0.05 * s)
    fell = [eval_row("zero_shot", 0, pass__1=0.40), *rows, eval_row("final", 20, pass__1=0.10)]
    found = finding(from_records(fell), "reward_hacking_or_collapse")
    assert found.title.startswith("reward up, held-out accuracy down")
    assert "40% (zero_shot) -> 10% (final) on 50 prompts, 30 points down, beyond its noise" in found.evidence
    assert "the training reward went 1.12 -> 1.93 (steps 1-4 vs 17-20)"  # 1.05..1.20, 1.85..2.00 in found.evidence
    rose = [eval_row("zero_shot", 0, pass__1=0.10), *rows, eval_row("final", 20, pass__1=0.40)]
    assert "reward_hacking_or_collapse" not in names(from_records(rose))


def test_a_fall_from_the_best_evaluation_above_zero_shot_is_watched():
    records = [
        eval_row("zero_shot", 0, 200, pass__1=0.05),
        eval_row("epoch_1", 10, 200, pass__1=0.50),
        eval_row("final", 20, 200, pass__1=0.25),
    ]
    found = finding(from_records(records), "reward_hacking_or_collapse")
    assert found.severity == WATCH and "50% (epoch_1) -> 25% (final)" in found.evidence


# ---------------------------------------------------------------------------------------------------------------
# 5. length collapse, budget hits


def test_length_collapsing_while_partial_answers_grow_is_a_problem():
    records = [
        eval_row("zero_shot", 0, mean_output_tokens=400.0, partial_frac=0.30),
        *step_rows(10, completions__mean_length=lambda s: 400.0 - 35 * s),
        eval_row("final", 10, mean_output_tokens=90.0, partial_frac=0.90),
    ]
    found = finding(from_records(records), "length_collapse")
    assert found.severity == PROBLEM
    assert "400 -> 90 tokens" in found.evidence and "partial answers went 30% -> 90%" in found.evidence
    steady = [
        eval_row("zero_shot", 0, mean_output_tokens=400.0, partial_frac=0.30),
        eval_row("final", 10, mean_output_tokens=380.0, partial_frac=0.90),
    ]
    assert "length_collapse" not in names(from_records(steady))


def test_most_completions_cut_off_at_the_budget_is_a_problem_from_trl_clipped_ratio_or_our_evals():
    trl = RunRecords(steps=step_rows(10, completions__clipped_ratio=0.7))
    assert (
        "70% of training completions hit the budget (completions/clipped_ratio" in finding(trl, "budget_hits").evidence
    )
    assert finding(trl, "budget_hits").severity == PROBLEM
    ours = from_records(
        [
            eval_row("zero_shot", 0, truncated_frac=0.94, failed_frac=0.9),
            *step_rows(10, completions__clipped_ratio=1.0, completions__budget_hit_ratio=0.0),
        ]
    )
    found = finding(ours, "budget_hits")
    assert "94% of zero_shot greedy completions were cut off, 90% ended without an answer" in found.evidence
    assert "clipped_ratio" not in found.evidence  # ours counts the budget hits; TRL's also counts stop strings
    assert "budget_hits" not in names(RunRecords(steps=step_rows(10, completions__clipped_ratio=0.05)))


# ---------------------------------------------------------------------------------------------------------------
# 6. no diversity


def test_sampled_pass_at_k_no_higher_than_pass1_of_the_same_samples_is_no_diversity():
    records = [eval_row("final", 10, **{"pass__1": 0.5, "pass__1_sampled": 0.5, "pass__5": 0.5})]
    found = finding(from_records(records, config={"eval": {"eval_temperature": 0.1}}), "no_diversity")
    assert "sampled pass@5 0.500 against pass@1 0.500 of the same samples" in found.evidence
    assert "eval.eval_temperature 0.1" in found.evidence
    diverse = [eval_row("final", 10, **{"pass__1": 0.5, "pass__1_sampled": 0.45, "pass__5": 0.7})]
    assert "no_diversity" not in names(from_records(diverse))
    nothing_solved = [eval_row("final", 10, **{"pass__1": 0.0, "pass__1_sampled": 0.0, "pass__5": 0.0})]
    assert "no_diversity" not in names(from_records(nothing_solved))  # no samples solve anything: not diversity


# ---------------------------------------------------------------------------------------------------------------
# 7. the policy not moving, running away; 8. entropy


def test_kl_near_0_with_a_flat_reward_is_a_policy_not_moving():
    rows = step_rows(30, kl=1e-6, reward=lambda s: 0.5 + 0.001 * (s % 2), reward_std=0.3)
    found = finding(RunRecords(steps=rows, config={"train": {"learning_rate": 1e-6}}), "policy_not_moving")
    assert found.severity == PROBLEM and "train.learning_rate 1e-06" in found.evidence
    moving = step_rows(30, kl=lambda s: 0.001 * s, reward=0.5, reward_std=0.3)
    assert "policy_not_moving" not in names(RunRecords(steps=moving))
    learning = step_rows(30, kl=1e-6, reward=lambda s: 0.1 * s, reward_std=0.3)
    assert "policy_not_moving" not in names(RunRecords(steps=learning))


def test_kl_growing_while_accuracy_falls_is_a_runaway_and_while_it_rises_is_not():
    rows = step_rows(30, kl=lambda s: 0.001 * 1.3**s)  # 0.0013 ... 2.6
    fell = [eval_row("zero_shot", 0, pass__1=0.4), *rows, eval_row("final", 30, pass__1=0.1)]
    found = finding(from_records(fell), "policy_running_away")
    assert found.severity == PROBLEM and "greedy pass@1 0.400 -> 0.100 (final)" in found.evidence
    rose = [eval_row("zero_shot", 0, pass__1=0.1), *rows, eval_row("final", 30, pass__1=0.4)]
    assert "policy_running_away" not in names(from_records(rose))
    assert finding(RunRecords(steps=rows), "policy_running_away").severity == PROBLEM  # above a nat a token
    moderate = step_rows(30, kl=lambda s: min(0.5, 0.001 * 1.3**s))
    assert finding(RunRecords(steps=moderate), "policy_running_away").severity == WATCH  # no evaluation to tell
    floor = [eval_row("zero_shot", 0, pass__1=0.04), *moderate, eval_row("final", 30, pass__1=0.02)]
    found = finding(from_records(floor), "policy_running_away")  # at the floor, a fall cannot be beyond noise
    assert found.severity == WATCH and "0.040 -> 0.020 (final), not up beyond its noise" in found.evidence
    trl_learning = step_rows(30, kl=lambda s: 0.001 * 1.3**s, reward=lambda s: 0.1 * s, reward_std=0.5)
    assert "policy_running_away" not in names(RunRecords(steps=trl_learning))


def test_entropy_falling_to_a_fifth_in_the_first_third_is_watched():
    collapsed = step_rows(30, entropy=lambda s: 1.0 if s <= 2 else 0.1)
    found = finding(RunRecords(steps=collapsed), "entropy_collapse")
    assert found.severity == WATCH and "1 nats at the start -> 0.1 by step 4 (mean of 2 steps" in found.evidence
    slow = step_rows(30, entropy=lambda s: 1.0 - 0.02 * s)
    assert "entropy_collapse" not in names(RunRecords(steps=slow))


# ---------------------------------------------------------------------------------------------------------------
# 9. within noise


def test_the_binomial_standard_error_of_a_difference_by_hand():
    # Agresti-Caffo: p~ = (1 + 1) / 6 and (3 + 1) / 6; SE = sqrt(2 * (1/3 * 2/3) / 6) = 0.27217.
    difference = compare_rates(0.25, 4, 0.75, 4)
    assert difference.se == pytest.approx(math.sqrt(2 * (1 / 3) * (2 / 3) / 6))
    assert difference.margin == pytest.approx(1.96 * 0.272166, abs=1e-5)
    assert not difference.beyond_noise
    assert difference.prompts_to_resolve == math.ceil(1.96**2 * (2 * 2 / 9) / 0.25)  # 7
    assert compare_rates(0.04, 50, 0.30, 50).beyond_noise
    assert compare_rates(0.0, 20, 0.0, 20).prompts_to_resolve is None


def test_a_change_within_noise_says_how_many_prompts_would_resolve_it():
    records = [eval_row("zero_shot", 0, 50, pass__1=0.10), eval_row("final", 10, 50, pass__1=0.16)]
    found = finding(from_records(records), "within_noise")
    needed = compare_rates(0.10, 50, 0.16, 50).prompts_to_resolve
    assert f"about {needed:,} prompts would resolve" in found.evidence and needed > 50
    assert "within_noise" not in names(from_records([records[0], eval_row("final", 10, 50, pass__1=0.34)]))


def test_compare_arms_within_noise_are_named_under_the_table(tmp_path):
    import json
    import shutil
    from pathlib import Path

    from train.lab.reports import compare_runs, load_run

    fixture = Path(__file__).resolve().parent / "fixtures" / "report_run"
    runs = []
    for name, final in (("a", 0.30), ("b", 0.26), ("c", 0.04)):
        shutil.copytree(fixture, tmp_path / name)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        summary["final"].update({"pass@1": final, "num_prompts": 50.0})
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
        runs.append(load_run(tmp_path / name))
    note = compare_runs(runs).noise_note()
    needed = compare_rates(0.30, 50, 0.26, 50).prompts_to_resolve
    assert note.startswith("Within sampling noise of a's final pass@1 0.300 (50 prompts")
    assert f"b (0.260 on 50 prompts; about {needed:,} prompts each would resolve it)" in note
    assert "c (" not in note  # 0.04 against 0.30 on 50 prompts is beyond noise


# ---------------------------------------------------------------------------------------------------------------
# 10. the zero loss, no baseline


def test_the_zero_loss_at_the_start_is_a_note_and_a_nonzero_one_is_not():
    found = finding(RunRecords(steps=step_rows(5, loss=lambda s: 0.0 if s <= 3 else 0.02)), "zero_loss_at_start")
    assert found.severity == NOTE and "steps 1-3" in found.evidence and "train.beta 0" in found.meaning
    assert "zero_loss_at_start" not in names(RunRecords(steps=step_rows(5, loss=0.3)))


def test_no_baseline_with_rewards_never_negative_is_watched():
    rows = step_rows(10, reward=lambda s: 1.0 + 0.01 * s, rewards__hard_format_reward__mean=0.5)
    found = finding(from_records(rows, config={"train": {"baseline": "none"}}), "no_baseline")
    assert found.severity == WATCH and "hard_format_reward" in found.meaning and "0.04 -> 0.02" in found.meaning
    negative = step_rows(10, reward=lambda s: -1.0 + 0.01 * s)
    assert finding(from_records(negative, config={"train": {"baseline": "none"}}), "no_baseline").severity == NOTE
    assert "no_baseline" not in names(from_records(rows, config={"train": {"baseline": "mean"}}))


# ---------------------------------------------------------------------------------------------------------------
# The verdict, and what the console shows after each evaluation


def test_the_verdict_is_learning_beyond_noise_and_not_learning_within_it():
    up = from_records([eval_row("zero_shot", 0, pass__1=0.04), eval_row("final", 10, pass__1=0.30)])
    assert verdict(up, []).learning is True and verdict(up, []).line.startswith("learning: greedy pass@1")
    flat = from_records([eval_row("zero_shot", 0, pass__1=0.04), eval_row("final", 10, pass__1=0.06)])
    assert verdict(flat, []).line.startswith("not learning measurably")
    trl_up = RunRecords(steps=step_rows(20, reward=lambda s: 0.1 * s, reward_std=0.5))
    assert verdict(trl_up, []).line.startswith("learning on the training reward: the mean training reward went")
    trl_flat = RunRecords(steps=step_rows(20, reward=0.5, reward_std=0.5))
    assert verdict(trl_flat, []).learning is False
    assert verdict(RunRecords(), []).learning is None


def test_new_findings_are_at_most_three_most_severe_first_and_never_repeated():
    records: list[dict[str, Any]] = [eval_row("zero_shot", 0, pass__1=0.4)]
    records += step_rows(
        30,
        frac_reward_zero_std=0.9,
        loss=0.0,
        kl=lambda s: 0.001 * 1.3**s,
        entropy=lambda s: 1.0 if s <= 2 else 0.1,
        completions__clipped_ratio=0.3,
    )
    records.append(eval_row("final", 30, pass__1=0.1))
    new = NewFindings(lambda: from_records(records))
    first = new()
    assert len(first) == 3 and [f.severity for f in first] == [PROBLEM, PROBLEM, PROBLEM]
    second = new()
    assert second and not {f.key for f in first} & {f.key for f in second}
    assert [f.severity for f in second][-1] == NOTE or len(second) == 3


def test_the_diagnosis_imports_no_torch_no_model_library():
    import subprocess
    import sys

    code = (
        "import sys, train.diagnosis; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'matplotlib', 'rewards') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
