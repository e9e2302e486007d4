"""GRPO with evaluation around it: zero-shot eval, num_epochs of GRPO each followed by eval, final eval, summary.

    uv run python experiments/run_eval_test.py experiment_configs/quickstart.yaml            # CPU, offline
    uv run python experiments/run_eval_test.py experiment_configs/eval_test_improved.yaml    # one 24 GB GPU
    ... --set train.beta=0.0 --set train.loss_type=dr_grpo    # override any key, typed by the schema
    ... --output-dir runs/my-run --resume                      # continue a killed run from its last checkpoint
    ... --force                                                # run even if the VRAM plan says it is far over the card
    ... --strict-memory                                        # stop whenever the VRAM plan does not fit the card
    ... --verbose                                              # also what TRL and the libraries print
    ... --help-config                                          # every config key, its default and meaning

The flow reads top to bottom like Unsloth's GRPO notebooks: config, backend (unsloth first, before trl), task and
rewards, model, a zero-shot baseline, GRPO with an evaluation after every epoch, a final evaluation, and the run
dir (<output.dir>/<name>-<overrides>-<timestamp>): config.yaml, metrics.jsonl (every step, epoch and eval
record), summary.json, samples/, adapter/. The run is assembled in the library, train/run.py (`build`, `run`;
`python -m train.run` takes these same arguments, as the sweep's subprocesses do), one numbered step at a time.
Design choices: the trainer is TRL's GRPOTrainer (train/grpo/trainer.py adds the no-baseline arm and the epoch reward
ledger; train/grpo/arguments.py translates the config into its arguments once); every figure goes through
metrics.jsonl first, and the console shows a live progress line, each evaluation's table with a few samples, and
nothing of TRL's per-step dicts (train/records/console.py); bad input stops before a run dir exists (exit code 2); a
Ctrl-C prints the command that resumes the run and exits 130.
"""

from train.run import main

if __name__ == "__main__":
    main()
