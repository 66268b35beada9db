#!/usr/bin/env bash
# Download the wheels of bench/wheels.txt for a GPU machine's Python (CPython 3.11 and 3.12, Linux
# x86_64) into bench/wheels/ (git-ignored, about 17 MB), for the device tool to carry there:
#   bash bench/fetch_wheels.sh && (device tool) run --carry bench/wheels 'bash bench/gpu_check.sh'
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
for version in 3.11 3.12; do
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest bench/wheels \
    --python-version "$version" --implementation cp --abi "cp${version/./}" --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -r bench/wheels.txt
done
du -sh bench/wheels
