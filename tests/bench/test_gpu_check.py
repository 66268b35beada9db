"""bench/gpu_check.py: its arithmetic, and its whole code path on the CPU with tiny shapes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary(mem: dict, steady: dict) -> dict:
    return {c: {"peak_mem_mb": mem[c], "steady_s_per_record": steady[c]} for c in mem}


def test_claims_are_the_papers_bounds(gpu_check):
    holds = gpu_check.check_claims(
        _summary({"clo": 150, "sft": 100, "trl-dpo": 250}, {"clo": 1.2, "sft": 1.0, "trl-dpo": 2.0}), 1.25
    )
    assert holds["clo_mem_vs_sft"] == 1.5 and holds["clo_mem_vs_dpo"] == 0.6 and holds["clo_time_vs_sft"] == 1.2
    assert holds["clo_mem_vs_sft_holds"] and holds["clo_mem_vs_dpo_holds"] and holds["clo_time_vs_sft_holds"]
    fails = gpu_check.check_claims(
        _summary({"clo": 160, "sft": 100, "trl-dpo": 200}, {"clo": 2.0, "sft": 1.0, "trl-dpo": 2.0}), 1.25
    )
    assert not fails["clo_mem_vs_sft_holds"] and not fails["clo_mem_vs_dpo_holds"]  # 1.6 > 1.55, 0.8 > 0.7
    assert not fails["clo_time_vs_sft_holds"]
    shared = gpu_check.check_claims(
        _summary({"clo": 1, "sft": 0, "trl-dpo": 2}, {"clo": 1, "sft": 1, "trl-dpo": 1}), 1.25, memory_isolated=False
    )
    assert shared["clo_mem_vs_sft"] is None and shared["clo_mem_vs_sft_holds"] is None


def test_model_flops_count_the_reference_forward(gpu_check):
    run = {"matmul_params": 100, "trainable": 10, "tokens": 7}
    assert gpu_check.model_flops("sft", run) == (4 * 100 + 2 * 10) * 7
    assert gpu_check.model_flops("clo", run) == gpu_check.model_flops("trl-dpo", run) == (6 * 100 + 2 * 10) * 7


@pytest.mark.slow
def test_tiny_check_runs_every_contender_on_the_cpu(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--tiny", "--in-process", "--shapes", "tiny-llama-3",
           "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == json.loads(out.read_text())
    assert result["check"] == "cpu-tiny" and result["skipped"] == [] and result["matmul"]["peak_tflops"] > 0
    runs = result["shapes"]["tiny-llama-3"]
    assert set(runs) == {"clo", "sft", "trl-dpo"}
    assert runs["trl-dpo"]["same_token_ids"]
    # the same records: CLO and DPO train on 4 sequences per record, SFT on 2 of them
    assert runs["clo"]["tokens"] == runs["trl-dpo"]["tokens"] == 2 * runs["sft"]["tokens"] > 0
    for run in runs.values():
        assert len(run["step_s"]) == 2 and run["mfu"] > 0 and run["tokens_per_s"] > 0
    assert runs["clo"]["ref_s"] > 0 == runs["trl-dpo"]["ref_s"]
    claims = result["claims"]["tiny-llama-3"]
    assert claims["clo_time_vs_sft"] > 0 and claims["clo_mem_vs_sft_holds"] is None  # one process: no memory claim
    assert result["all_claims_hold"] is False
