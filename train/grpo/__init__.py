"""GRPO itself: TRL's GRPOTrainer with our algorithm changes, the config translated into its arguments once, the
group-relative advantages, the epoch reward ledger and the trainer callbacks.

- `trainer.py`: `GRPOLabTrainer`, the algorithm changes only (no-baseline arm, hybrid loss, token-budget curriculum,
  the reward ledger's hook);
- `workarounds.py`: every place we work around a library's behaviour (TRL, vLLM, unsloth), each with the version
  it works around and how to tell it is no longer needed;
- `arguments.py`: `resolve(cfg, backend)`, the one translation of the config into GRPOConfig and the trainer's
  own arguments;
- `advantages.py`: the advantage formula and its ablations (baseline, scale);
- `ledger.py`: the epoch reward accumulation (epoch/accumulated_reward, epoch/mean_reward);
- `callbacks.py`: per-step records, the epoch summary with its evaluation, evaluations on a schedule.

May import: trl, transformers, torch, train.config, train.records (the run's records), train.evaluation.
"""
