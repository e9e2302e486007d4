#!/usr/bin/env bash
# The GPU check in one command, on a CUDA machine with no network (the lent device) or on this CPU (--dry-run):
# install the wheelhouse with no index, check that every module a run needs imports (stop with the list of what
# does not), run tests/gpu with per-case time limits inside one outer limit, and write everything to OUT.
#
#   tests/gpu/run_offline.sh --wheelhouse .cache/wheelhouse/cp312     on the device (python3 = its torch's Python)
#   tests/gpu/run_offline.sh                                           a CUDA box with `uv sync --extra gpu` done
#                                                                      (PYTHON=.venv/bin/python; nothing to install)
#   tests/gpu/run_offline.sh --dry-run                                 here, on the CPU: what CI runs
#
# The call a session with a lent GPU makes (docs/gpu.md): build the wheelhouse here first
# (tests/gpu/build_wheelhouse.sh), then run `tests/gpu/run_offline.sh --wheelhouse .cache/wheelhouse/cp312` with
# carry [".cache/wheelhouse/cp312"] and timeout_s 510: the 480 s budget, the summary and some slack.
#
# Writes to $OUT (else .cache/gpu-check/out): check.log (all output), results.json (versions that ran, the GPU,
# the preflight, one entry per case), summary.md (also printed last), and one <case>.log per case that ran.
# Exit status: 0 when every case passed or was skipped, 1 when one failed, 3 when the preflight stopped it.
# The preflight also names the machine's packages that the carried wheels' requirements do not accept, and
# `pip check`'s output is kept in results.json.
#
# --dry-run stands this machine in for the device: a clean venv of this Python with exactly the packages the device
# is taken to have (torch, transformers, peft, pytest, ...; tests/gpu/wheelhouse.py pins --machine, linked from uv's
# cache; uv asks the registry for the index pages, which `uv sync --locked` never fetched), the wheelhouse built
# for this Python by the same builder (tests/gpu/build_wheelhouse.sh with PYTHON_VERSION set; downloaded once,
# reused), then every step above; the cases are collected and skip (no GPU).
#
# Environment: PYTHON (default python3; with --dry-run the project's interpreter: $UV_PROJECT_ENVIRONMENT's, else
# .venv's, else `uv python find`'s), GRPO_LAB_GPU_BUDGET_SECONDS (the whole check, default 480),
# GRPO_LAB_GPU_CASE_SECONDS (one case, default 200; tests/gpu/run_case.py has the arithmetic for both),
# GRPO_LAB_GPU_CASES (comma-separated case names: only those run), GPU_CHECK_MEMORY_CAP_GIB (default 24),
# GPU_SITE (where wheels go, default .cache/gpu-site/<python tag>), CUDA_VISIBLE_DEVICES (default 0: unsloth
# limits torch.compile to one worker when docker pins a GPU without it).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

dry_run=0
wheelhouse=
out=${OUT:-}
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=1 ;;
    --wheelhouse) wheelhouse=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "run_offline.sh: unknown argument $1 (--dry-run, --wheelhouse DIR, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
out=${out:-.cache/gpu-check/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export GPU_CHECK_STARTED=$(date +%s)
budget=${GRPO_LAB_GPU_BUDGET_SECONDS:-480}
case $budget in '' | *[!0-9]* | 0) echo "GRPO_LAB_GPU_BUDGET_SECONDS=$budget: give a whole number of seconds" >&2; exit 2 ;; esac
case ${GRPO_LAB_GPU_CASE_SECONDS:-200} in
  '' | *[!0-9]* | 0) echo "GRPO_LAB_GPU_CASE_SECONDS=$GRPO_LAB_GPU_CASE_SECONDS: give a whole number of seconds" >&2; exit 2 ;;
esac
export GRPO_LAB_GPU_BUDGET_SECONDS=$budget
export GPU_CHECK_DEADLINE=$((GPU_CHECK_STARTED + budget))
# unsloth (2026.10.9, _gpu_init.py) drops torch.compile to one worker when NVIDIA_VISIBLE_DEVICES pins a GPU and
# CUDA_VISIBLE_DEVICES is unset (what docker --gpus does); inside such a container the pinned GPU is device 0.
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
export GPU_CHECK_OUT=$out GPU_CHECK_MEMORY_CAP_GIB=${GPU_CHECK_MEMORY_CAP_GIB:-24} GPU_CHECK_DRY_RUN=$dry_run
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1
rm -f "$out/results.json" "$out/summary.md"

check() {
python=${PYTHON:-python3}
if [ "$dry_run" = 1 ]; then
  # The project's own interpreter (its minor version decides the wheelhouse's tags), in a venv of its own: the
  # synced environment's (UV_PROJECT_ENVIRONMENT, as after `uv sync --extra gpu` into .venv-gpu; else .venv), or
  # the one uv picks for the project.
  base_python=${PYTHON:-}
  for candidate in "${UV_PROJECT_ENVIRONMENT:+$UV_PROJECT_ENVIRONMENT/bin/python}" "$root/.venv/bin/python"; do
    [ -n "$base_python" ] && break
    [ -n "$candidate" ] && [ -x "$candidate" ] && base_python=$candidate
  done
  [ -n "$base_python" ] || base_python=$(uv python find 2>/dev/null) ||
    { echo "dry run: no interpreter found (run uv sync --locked first, or set PYTHON)"; return 2; }
  version=$("$base_python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  venv=.cache/gpu-dry/venv
  echo "--- dry run: a clean Python $version venv standing in for the device ($venv)"
  mkdir -p .cache/gpu-dry
  "$base_python" tests/gpu/wheelhouse.py pins --machine --python-version "$version" > .cache/gpu-dry/machine.txt
  rm -rf "$venv"
  # Not --offline: a fresh machine's uv cache holds the locked wheels (from uv sync) but no index pages, and uv pip
  # needs those to find a pin; the wheels themselves still come from the cache.
  uv venv --quiet --seed --python "$base_python" "$venv" &&
    uv pip install --quiet --no-deps --python "$venv/bin/python" -r .cache/gpu-dry/machine.txt ||
    { echo "dry run: could not build the stand-in venv (the registry or uv's cache; run uv sync --locked first)"; return 2; }
  python=$venv/bin/python
  wheelhouse=${wheelhouse:-.cache/wheelhouse/cp${version/./}}
  PYTHON_VERSION=$version PYTHON=$python tests/gpu/build_wheelhouse.sh "$wheelhouse" 2>&1 | grep -v '^WARNING: Location' ||
    { echo "dry run: building the wheelhouse failed"; return 2; }
fi

tag=$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
if [ -n "$wheelhouse" ]; then
  shopt -s nullglob
  wheels=("$wheelhouse"/*.whl)
  shopt -u nullglob
  if [ ${#wheels[@]} -eq 0 ]; then echo "no wheels in $wheelhouse (tests/gpu/build_wheelhouse.sh makes them)"; return 2; fi
  site=${GPU_SITE:-.cache/gpu-site/$tag}
  rm -rf "$site" && mkdir -p "$site" && site=$(cd "$site" && pwd)
  mib=$(du -cb "${wheels[@]}" | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
  echo "--- installing ${#wheels[@]} wheels ($mib MiB) from $wheelhouse into $site, no index"
  started=$(date +%s%N)
  # --no-deps: the wheelhouse is the closure minus what the machine has; --no-index: there is no network.
  "$python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile \
    --target "$site" "${wheels[@]}" || { echo "installing the wheelhouse failed"; return 2; }
  install_ms=$((($(date +%s%N) - started) / 1000000))
  install_s="$((install_ms / 1000)).$((install_ms % 1000 / 100))"
  export PYTHONPATH="$site:$root${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
fi

# pip's own view of what is installed (the machine's packages and the wheelhouse together), kept in results.json.
"$python" -m pip check --disable-pip-version-check > "$out/pip-check.txt" 2>&1
pip_status=$?
echo "--- pip check (exit $pip_status)"
cat "$out/pip-check.txt"

# What will run (the machine's packages and the wheelhouse's, by metadata), the GPU and its driver.
"$python" tests/gpu/results.py environment "$out/results.json"
"$python" tests/gpu/results.py pip-check "$out/results.json" "$out/pip-check.txt" "$pip_status" && rm -f "$out/pip-check.txt"
[ -z "$wheelhouse" ] || "$python" tests/gpu/results.py wheelhouse "$out/results.json" ${#wheels[@]} "$mib" "$install_s"
echo "--- preflight: every module a run imports"
"$python" tests/gpu/wheelhouse.py preflight --json "$out/preflight.json" ${wheelhouse:+--wheelhouse "$wheelhouse"}
preflight=$?
"$python" tests/gpu/results.py preflight "$out/results.json" "$out/preflight.json" && rm -f "$out/preflight.json"
if [ "$preflight" != 0 ]; then
  "$python" tests/gpu/results.py summary "$out/results.json" "$out/summary.md"
  return 3
fi

left=$((GPU_CHECK_DEADLINE - $(date +%s) - 10))
[ "$left" -gt 10 ] || left=10  # timeout 0 would mean no limit; the cases skip themselves when time is short
echo "--- tests/gpu ($left s left of the ${budget} s budget; each case at most ${GRPO_LAB_GPU_CASE_SECONDS:-200} s)"
timeout --kill-after=5 "$left" "$python" -m pytest tests/gpu -rA -p no:cacheprovider --rootdir "$root" -o addopts=""
status=$?
"$python" tests/gpu/results.py summary "$out/results.json" "$out/summary.md"
if [ "$status" = 5 ] || [ "$status" = 0 ]; then return 0; fi
return 1
}

# Everything to the screen and to check.log; the exit status is check's.
check 2>&1 | tee "$out/check.log"
exit "${PIPESTATUS[0]}"
