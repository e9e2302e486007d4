"""Evaluation: generate for the test prompts, score and grade every completion, write the samples, and compute the
figures from the samples.

- `evaluate.py`: `evaluate(...)` and the `Evaluator` the run calls (zero-shot, after each epoch, final);
- `metrics.py`: the metrics of an evaluation as a pure function of its samples (pass@1, pass@k, outcomes, lengths);
- `passk.py`: the unbiased pass@k estimator (Chen et al. 2021);
- `samples.py`: the samples file, samples/<label>.jsonl.

May import: rewards, train.config, train.tasks, train.models (the generators), train.records. Never the trainer:
the evaluator does not know how the trainer works.
"""
