"""The run's records and bookkeeping: the run dir, the metrics records and their one path to disk and wandb, the
summary, the console, and who writes them when several processes run.

- `rundir.py`: naming, creating, locking and resuming a run dir;
- `resume.py`: what a resume checks so it is exact (config.yaml as started, metrics.jsonl against the checkpoint,
  the checkpoint's files, read without unpickling);
- `format.py`: what a step, epoch, eval and train record of metrics.jsonl holds, and summary.json built from them;
- `tracking.py`: `MetricsLog` (metrics.jsonl, then the wandb mirror) and summary.json's writer;
- `console.py`: everything a run prints (the progress line, the tables), and what it keeps off the screen;
- `distributed.py`: one run in several processes, the main process owning the run dir;
- `adapter.py`: the run's adapter/, saved at every epoch end and replaced whole;
- `files.py`: the one atomic write of a file (`write_atomic`) and of a directory (`replace_dir`);
- `voice.py`: the one way to speak to the user: the two consoles, and `warn`, `note`, `error`, `say`.

May import: the standard library, train.config, train.errors, rewards.jsonl (the one JSONL reader), rich, wandb;
never torch at import time, never a model: reports and the diagnosis read these records with no model.
"""
