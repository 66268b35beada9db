"""The shipped examples run as written (on a tiny model instead of SmolLM2), and the README's "From
Python" example is the example file, line for line; the accelerate example runs DDP on 2 CPU processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT / "src")}


def test_the_readme_example_is_the_example_file():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## From Python"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert block == (EXAMPLES / "clo_from_python.py").read_text()
    assert len(block.splitlines()) <= 20


def test_the_python_example_trains_both_methods_and_prints_the_comparison(tiny_llama, tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLES / "clo_from_python.py"), str(tiny_llama)], cwd=tmp_path,
                          env={**_env(), "LANGSHIFT_CACHE": str(tmp_path / "cache")}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    verdicts = [line for line in done.stdout.splitlines() if line.startswith("CLO − SFT on ")]
    assert any("fidelity" in v.lower() or "language" in v.lower() for v in verdicts), done.stdout[-2000:]
    for method in ("clo", "sft"):
        assert (tmp_path / "runs" / "py" / method / "model" / "model.safetensors").is_file()
        assert json.loads((tmp_path / "runs" / "py" / method / "model" / "eval-sw" / "results.json").read_text())


def test_the_accelerate_example_runs_ddp_on_two_cpu_processes(tiny_llama, tmp_path):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(EXAMPLES / "accelerate_clo.py"), str(tiny_llama)]
    done = subprocess.run(cmd, cwd=tmp_path, env={**_env(), "LANGSHIFT_CACHE": str(tmp_path / "cache")},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "trained on 2 processes: 2 steps, " in done.stdout
    steps = [json.loads(line) for line in (tmp_path / "runs/accelerate/clo/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "loss" in r] == [1, 2]
    assert (tmp_path / "runs/accelerate/clo/model/model.safetensors").is_file()
