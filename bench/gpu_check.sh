#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py: CLO vs TRL DPO vs our SFT at Llama-3.2-1B and Llama-3-8B shapes,
# bf16, the paper's efficiency claims) on a machine that cannot download: installs the wheels carried
# in bench/wheels/ (bench/fetch_wheels.sh) into a private folder, then runs the check.
#   bash bench/gpu_check.sh                          # one GPU; about 4 min on an H200, stops at 470 s
#   bash bench/gpu_check.sh --out gpu_check.json     # also keep the JSON line in a file
#   PYTHON=.venv/bin/python bash bench/gpu_check.sh --tiny    # the CPU code path
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if compgen -G "bench/wheels/*.whl" >/dev/null; then
  site="$(mktemp -d)"
  # --no-deps: only the pinned packages; everything else (torch, accelerate, numpy, pyarrow) is the machine's.
  "$PY" -m pip install --quiet --disable-pip-version-check --no-index --find-links bench/wheels --no-deps \
    --target "$site" -r bench/wheels.txt
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - <<'PYCODE' >&2
import importlib.metadata as md, torch
have = {n: md.version(n) for n in ("torch", "transformers", "trl", "datasets", "pyarrow", "accelerate")}
print("[gpu-check]", have, "cuda:", torch.cuda.is_available() and torch.cuda.get_device_name())
PYCODE
exec timeout "${GPU_CHECK_TIMEOUT:-470}" "$PY" bench/gpu_check.py "$@"
