""" "Why isn't it learning?" answered from a run's own records: pure functions from records to findings.

A finding names what happened (`groups_without_signal`, `reward_hacking_or_collapse`, ...), its severity
(problem / watch / note), the evidence in this run's numbers (which steps, which reward, how much), what it means
in one or two plain sentences, and what to try (config keys). The verdict is one line: learning or not, and the
main why. docs/diagnosis.md lists every finding with an example from a real run.

    from train.diagnosis import diagnose, from_trainer_state
    result = diagnose(from_trainer_state("outputs/checkpoint-500"))   # any TRL or Unsloth GRPO run
    result.verdict.line, [finding.line() for finding in result.findings], result.skipped

The records are the run dir's (metrics.jsonl's step, epoch and eval records, samples/<label>.jsonl, config.yaml
as a dict: `from_records`) or a plain TRL run's trainer_state.json `log_history` (`from_trainer_state`), which has
no evaluations and no samples: the findings that need them are skipped and `skipped` says so.

- `base.py`: `Finding`, `RunRecords`, the severities, trends over steps;
- `noise.py`: the binomial standard error of a pass rate and of a difference of two (evaluations, compare arms);
- `signal.py`: groups without signal, a reward that never varies, layout without content, the zero loss, no baseline;
- `outcomes.py`: reward up / accuracy down, length and the token budget, no diversity, differences within noise;
- `policy.py`: the policy not moving, running away, entropy collapsing;
- `diagnose.py`: every check in order, the verdict, and the findings not shown yet (the console after each eval);
- `sources.py`: RunRecords from a run dir's records, or from a trainer_state.json / an output dir of checkpoints.

May import: the standard library, train.records' pure record helpers and train.errors (the one error a user sees);
never torch, never a model: a diagnosis runs on any machine, on a run that is over or still going. The reasons a
reward gives for a score (`--explain`) come in as a function (`RunRecords.explain`), built by the caller.
"""

from __future__ import annotations

from train.diagnosis.base import NOTE, PROBLEM, WATCH, Finding, Plot, RunRecords, Series
from train.diagnosis.diagnose import Diagnosis, NewFindings, Verdict, diagnose
from train.diagnosis.noise import Difference, compare_rates
from train.diagnosis.sources import find_trainer_state, from_records, from_trainer_state, read_samples_dir

__all__ = [
    "NOTE",
    "PROBLEM",
    "WATCH",
    "Diagnosis",
    "Difference",
    "Finding",
    "NewFindings",
    "Plot",
    "RunRecords",
    "Series",
    "Verdict",
    "compare_rates",
    "diagnose",
    "find_trainer_state",
    "from_records",
    "from_trainer_state",
    "read_samples_dir",
]
