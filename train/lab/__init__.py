"""The lab tools around runs: sweeps, the GPU memory planner, export, reports, and the inputs of score_rewards.

- `sweep.py`: one base config over a grid or list of variants, each a run, with the comparison table;
- `memory_plan.py`: peak GPU memory planned from the config and the model's shape, before anything loads;
- `export.py`: merged 16-bit weights or GGUF from a run's adapter;
- `reports/`: report.md, report.html and plots of a run or a sweep, from the run dir's files;
- `score_inputs.py`: what experiments/score_rewards.py scores (rows and rewards), checked first.

May import everything in train/ and rewards/; nothing in the training core (train/grpo, train/evaluation,
train/records, train/models, train/tasks) imports them.
"""
