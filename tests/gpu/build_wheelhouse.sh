#!/usr/bin/env bash
# Download, where there is network, the wheels the GPU check needs on a machine that has torch and most of the
# rest but no network: the lent device (Python 3.12, torch 2.11+cu130; /work/.library/device/KINDS.md). Only what
# that machine lacks is fetched, at uv.lock's versions (tests/gpu/wheelhouse.py pins); bitsandbytes keeps only its
# CPU and CUDA 13.0 libraries and unsloth loses Unsloth Studio and its CLI (wheelhouse.py strip). One folder, one
# carry (under 64 MiB; the size is printed):
#
#   tests/gpu/build_wheelhouse.sh                        .cache/wheelhouse/cp312: for the device (CPython 3.12)
#   PYTHON_VERSION=3.11 tests/gpu/build_wheelhouse.sh    .cache/wheelhouse/cp311: for this machine's dry run
#   tests/gpu/build_wheelhouse.sh DIR                    into DIR
#
# Environment: PYTHON_VERSION (default 3.12), KEEP_CUDA (bitsandbytes' library to keep, default 130 = CUDA 13.0),
# PYTHON (the interpreter that runs pip here, default python3). Re-running reuses the wheels already in DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."

python_version=${PYTHON_VERSION:-3.12}
tag=cp${python_version/./}
out=${1:-.cache/wheelhouse/$tag}
python=${PYTHON:-python3}
keep_cuda=${KEEP_CUDA:-130}
mkdir -p "$out"

"$python" tests/gpu/wheelhouse.py pins --python-version "$python_version" > "$out/requirements.txt"
echo "--- $(wc -l < "$out/requirements.txt") packages for CPython $python_version on manylinux x86_64 -> $out"
# Every wheel must be one pip on the target accepts; old pips match --platform exactly, so name the manylinux tags
# these packages are published under. --no-deps: the list is already the closure, minus what the machine has.
platforms=()
for tag_name in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
  manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag_name")
done
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$python_version" --implementation cp "${platforms[@]}" \
  --dest "$out" --requirement "$out/requirements.txt"

# A re-run keeps wheels of versions no longer pinned: drop them, so the folder is exactly the list.
"$python" - "$out" <<'EOF'
import re, sys
from pathlib import Path
out = Path(sys.argv[1])
wanted = {re.sub(r"[-_.]+", "-", line.split("==")[0]).lower(): line.split("==")[1].strip()
          for line in (out / "requirements.txt").read_text().split()}
for wheel in out.glob("*.whl"):
    name, version = wheel.name.split("-")[:2]
    if wanted.get(re.sub(r"[-_.]+", "-", name).lower()) != version:
        print(f"removing {wheel.name}: not in requirements.txt")
        wheel.unlink()
EOF
for wheel in "$out"/bitsandbytes-*.whl "$out"/unsloth-2*.whl; do
  "$python" tests/gpu/wheelhouse.py strip "$wheel" --keep-cuda "$keep_cuda"
done
mib=$(du -cb "$out"/*.whl | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
echo "--- $(ls "$out"/*.whl | wc -l) wheels, $mib MiB in $out (one device call carries 64 MiB, the checkout included)"
