"""One case of the GPU check in a fresh process: the CLI's `main(argv)`, then the peak GPU memory, as JSON.

    python tests/gpu/run_case.py RESULT.json experiment_configs/quickstart.yaml --output-dir RUN --set ...

A process per case: unsloth must be imported before trl/transformers/peft, and vLLM keeps its engine for the life
of the process. The entry point is the CLI's `main` (train/run.py, behind experiments/run_eval_test.py). Exit
status is the CLI's (2 for a user error, whose paragraph goes to stderr); the JSON is written either way.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

GIB = 1024**3


def main() -> int:
    result_path, argv = Path(sys.argv[1]), sys.argv[2:]
    import torch  # torch may come before unsloth; trl, transformers and peft may not

    torch.cuda.reset_peak_memory_stats()
    from train.run import main as cli_main  # after torch, before anything imports trl (unsloth goes first)

    started = time.monotonic()
    exit_code = 0
    try:
        cli_main(argv)
    except SystemExit as stop:
        exit_code = stop.code if isinstance(stop.code, int) else 1
    except Exception:  # noqa: BLE001 - a bug: keep its traceback on stderr and still write the memory figures
        traceback.print_exc()
        exit_code = 1
    free, total = torch.cuda.mem_get_info()
    result = {
        "exit_code": exit_code,
        "wall_s": round(time.monotonic() - started, 1),
        "device": torch.cuda.get_device_name(0),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
        "torch": torch.__version__,
        # torch's allocator: training, HF generation and vLLM's tensors; vLLM's sleep-mode pool is not counted.
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / GIB, 3),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 3),
        # What nvidia-smi would show for the whole card at the end, vLLM's reservation included.
        "device_used_at_end_gib": round((total - free) / GIB, 3),
        "packages": _versions("transformers", "trl", "peft", "bitsandbytes", "unsloth", "unsloth_zoo", "vllm"),
    }
    result_path.write_text(json.dumps(result, indent=1) + "\n")
    return exit_code


def _versions(*names: str) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


if __name__ == "__main__":
    sys.exit(main())
