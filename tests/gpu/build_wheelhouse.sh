#!/usr/bin/env bash
# Download, where there is network, the wheels tests/gpu needs on a CUDA machine that has only CUDA, torch,
# transformers, peft and accelerate and no network. The pins come from uv.lock (tests/gpu/wheelhouse.py), so the
# machine runs the locked versions; run_offline.sh installs them there with no index.
#
#   tests/gpu/build_wheelhouse.sh [WHEELHOUSE [SET...]]     default: .cache/wheelhouse (git-ignored), core unsloth
#   PYTHON_VERSION=3.12 PLATFORM=manylinux_2_28_aarch64 tests/gpu/build_wheelhouse.sh    another target
#
# Sets (docs/gpu.md has their contents and sizes): core = the hf backend in bf16 and pytest; unsloth = 4-bit and
# the unsloth backend; vllm = fast_inference (about 1.1 GiB: not for a 64 MiB transfer). One folder per set, each
# with the requirements.txt it was downloaded from; then the same wheels hard-linked into parts/part-N of at most
# PARTS_MIB (default 60) each, for a transfer that carries at most 64 MiB at a time.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:-.cache/wheelhouse}
shift || true
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(core unsloth)
python_version=${PYTHON_VERSION:-3.11}
platform=${PLATFORM:-manylinux_2_28_x86_64}
python=${PYTHON:-python3}

# pip 23 matches --platform exactly: also name every older manylinux a wheel may carry (2_24, 2014 = 2_17, ...).
case $platform in
  *x86_64) arch=x86_64 ;;
  *aarch64) arch=aarch64 ;;
  *) echo "platform $platform: expected a manylinux x86_64 or aarch64 tag" >&2; exit 2 ;;
esac
glibc=$(echo "$platform" | sed -nE 's/^manylinux_2_([0-9]+)_.*/\1/p')
platforms=(--platform "$platform")
for minor in $(seq "$((${glibc:-17} - 1))" -1 5); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
platforms+=(--platform "manylinux2014_$arch" --platform "manylinux2010_$arch" --platform "manylinux1_$arch")

for set in "${sets[@]}"; do
  mkdir -p "$out/$set"
  "$python" tests/gpu/wheelhouse.py pins "$set" --python-version "$python_version" --platform "$platform" \
    > "$out/$set/requirements.txt"
  echo "--- $set: $(wc -l < "$out/$set/requirements.txt") packages for CPython $python_version on $platform"
  # --no-deps: the list is already the locked closure; binary wheels only, for the target, not this machine.
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$python_version" --implementation cp "${platforms[@]}" \
    --dest "$out/$set" --requirement "$out/$set/requirements.txt"
  echo "$(du -sh "$out/$set" | cut -f1) in $out/$set"
done

"$python" tests/gpu/wheelhouse.py parts "$out/parts" "${sets[@]/#/$out/}" --max-mib "${PARTS_MIB:-60}"
