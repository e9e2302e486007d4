"""The run dir: where one run keeps its config, records, checkpoints, samples and adapter.

runs/<name>-<timestamp>/
    config.yaml       the resolved config (after --set), what --resume runs again
    metrics.jsonl     every step, epoch and eval record (train/tracking.py)
    summary.json      zero_shot, epochs, final, wall_seconds
    samples/          one JSONL per evaluation (zero_shot.jsonl, epoch_1.jsonl, ..., final.jsonl)
    checkpoints/      the trainer's checkpoints (every epoch end, and every train.save_steps)
    adapter/          the final LoRA adapter (or weights) and tokenizer
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from train.config import ExperimentConfig, load_config
from train.errors import UserError

CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, cfg: ExperimentConfig, output_dir: Path | None) -> RunDir:
        path = output_dir or Path(cfg.output.dir) / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if path.exists() and any(path.iterdir()):
            raise UserError(
                f"the run dir {path} already holds files. Pass --resume to continue that run, or choose another "
                "--output-dir (or leave it out for a new timestamped one)."
            )
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_FILE).write_text(cfg.to_yaml())
        return cls(path)

    @classmethod
    def for_resume(cls, cfg: ExperimentConfig, output_dir: Path | None) -> RunDir:
        """The run to continue: --output-dir, or the newest <output.dir>/<name>-* that has a config.yaml."""
        if output_dir is not None:
            candidates = [Path(output_dir)]
        else:
            candidates = sorted(Path(cfg.output.dir).glob(f"{cfg.name}-*"), key=lambda p: p.stat().st_mtime)
        runs = [path for path in candidates if (path / CONFIG_FILE).is_file()]
        if not runs:
            where = output_dir or f"{cfg.output.dir}/{cfg.name}-*"
            raise UserError(
                f"--resume found no run to continue at {where} (a run dir has a config.yaml). Pass the run's "
                "directory with --output-dir, or start a new run without --resume."
            )
        return cls(runs[-1])

    def config(self) -> ExperimentConfig:
        return load_config(self.path / CONFIG_FILE)

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def last_checkpoint(self) -> Checkpoint | None:
        """The newest complete checkpoint (the trainer writes trainer_state.json last)."""
        found = []
        for path in self.checkpoint_dir.glob("checkpoint-*"):
            match = re.fullmatch(r"checkpoint-(\d+)", path.name)
            if match and (path / "trainer_state.json").is_file():
                found.append(Checkpoint(path, int(match.group(1))))
        return max(found, key=lambda c: c.step, default=None)

    def wandb_id(self) -> str:
        """A stable wandb run id, so a resumed run continues the same wandb run."""
        path = self.path / "wandb_id"
        if not path.exists():
            path.write_text(secrets.token_hex(4))
        return path.read_text().strip()
