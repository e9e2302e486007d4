#!/usr/bin/env bash
# Run the GPU check (tests/gpu) on a CUDA machine with no network that has CUDA, torch, transformers, peft and
# accelerate and nothing else: install a wheelhouse made by tests/gpu/build_wheelhouse.sh into a directory of its
# own with no index, put it and the checkout (the project goes in as source) on PYTHONPATH, run pytest.
#
#   tests/gpu/run_offline.sh WHEELHOUSE/core WHEELHOUSE/unsloth        install, then run tests/gpu (under 8 min)
#   tests/gpu/run_offline.sh --install-only WHEELHOUSE/part-1          stage a wheelhouse carried in parts
#   tests/gpu/run_offline.sh                                           run with what is installed already
#
# Environment: PYTHON (default python3: the interpreter that has torch), GPU_SITE (where wheels are installed;
# default .cache/gpu-site, ignored by git), GRPO_LAB_GPU_REPORT (the JSON report; default $OUT/gpu-report.json
# when $OUT is set), PYTEST_ARGS (extra pytest arguments, e.g. "-k hf").
set -euo pipefail
cd "$(dirname "$0")/../.."

install_only=0
if [ "${1:-}" = --install-only ]; then install_only=1; shift; fi
python=${PYTHON:-python3}
site=${GPU_SITE:-.cache/gpu-site}
mkdir -p "$site"
site=$(cd "$site" && pwd)

for dir in "$@"; do
  shopt -s nullglob
  wheels=("$dir"/*.whl)
  shopt -u nullglob
  if [ ${#wheels[@]} -eq 0 ]; then echo "no wheels in $dir" >&2; exit 2; fi
  echo "--- installing ${#wheels[@]} wheels from $dir into $site (no index)"
  # --no-deps: a wheelhouse is already the locked closure (minus what the machine has); --no-index: no network.
  "$python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --upgrade \
    --target "$site" "${wheels[@]}"
done
if [ "$install_only" = 1 ]; then exit 0; fi

export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled
if [ -n "${OUT:-}" ]; then export GRPO_LAB_GPU_REPORT=${GRPO_LAB_GPU_REPORT:-$OUT/gpu-report.json}; fi

echo "--- the machine's packages against uv.lock"
"$python" - <<'EOF'
import importlib.metadata, tomllib
locked = {p["name"]: p["version"] for p in tomllib.load(open("uv.lock", "rb"))["package"]}
for name in ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "bitsandbytes", "unsloth", "vllm"):
    try:
        have = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        have = None
    mark = "" if have is None or have.split("+")[0] == locked.get(name) else "   <- not the locked version"
    print(f"{name:14} {str(have):22} locked {locked.get(name)}{mark}")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true

echo "--- tests/gpu"
timeout "${GPU_CHECK_TIMEOUT_S:-470}" "$python" -m pytest tests/gpu -s -ra -p no:cacheprovider ${PYTEST_ARGS:-}
