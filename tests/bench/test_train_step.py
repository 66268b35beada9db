"""bench/train_step.py end to end on a tiny model (no timing asserted): every contender runs in its own
process, the headline `clo` is `langshift train`'s defaults, and the summary reports the layout's numbers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from langshift.records import Record, save_records
from langshift.train.config import DEVICE_DEFAULTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def train_step():
    spec = importlib.util.spec_from_file_location("train_step", ROOT / "bench" / "train_step.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_variant_names(train_step):
    v = train_step.variant
    assert v("clo") == train_step.Variant("clo")
    assert v("clo-simpo") == train_step.Variant("clo", pref_loss="simpo")
    assert train_step.worker_fn("clo-simpo") is train_step.worker_fn("clo-orpo") is train_step.run_ours
    assert v("clo-gc-mb2") == train_step.Variant("clo", micro_batch=2, checkpointing=True)
    assert v("sft-rows4-bin512") == train_step.Variant("sft", share=False, bin_tokens=512)
    with pytest.raises(SystemExit):
        v("clo-mb3")  # does not divide the batch of 8
    with pytest.raises(SystemExit):
        v("clo-fast")


def test_padded_share_is_the_previous_layout(train_step):
    # one micro-batch: 10 and 9 share a bucket (20 <= 1.1 * 19), 5 gets its own
    assert train_step.padded_share([[10, 9, 5]]) == (25, 24)
    assert train_step.padded_share([[4, 4], [7]]) == (15, 15)


def test_targets_compare_against_their_bounds(train_step):
    got = train_step.targets({"time_ratio_vs_sft": 2.6, "clo_mfu_train": 0.5, "mem_ratio_vs_sft": 1.2})
    assert got["time_ratio_vs_sft"]["met"] is False and got["clo_mfu_train"]["met"] is True
    assert got["mem_ratio_vs_sft"] == {"value": 1.2, "bound": "<= 1.6", "met": True}
    assert "time_ratio_vs_trl_dpo" not in got  # not measured in this run


@pytest.mark.slow
def test_bench_runs_end_to_end_on_a_tiny_model(tiny_llama, train_step):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "bench" / "train_step.py"), "--model", str(tiny_llama), "--records", "8",
           "--steps", "1", "--threads", "1", "--matmul-n", "128", "--max-length", "2048",
           "--contenders", "clo,clo-rows4-mb2,sft,trl-dpo"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["clo_layout"] == {"share": True, "bin_tokens": DEVICE_DEFAULTS["cpu"]["bin_tokens"], "mask": "sdpa",
                                     "fallback": ""}
    assert 0 < summary["clo_forward_tokens"] < summary["clo_tokens"]  # each prompt once
    assert summary["clo_padding_share_after"] == 0 <= summary["clo_padding_share_before"] < 1
    assert summary["trl_dpo_same_token_ids"] is True
    assert summary["clo_s_per_record_ref_cached"] <= summary["clo_s_per_record"]
    assert set(summary["targets"]) == set(train_step.TARGETS)
    assert summary["clo_rows4_mb2_time_ratio_vs_sft"] > 0
    assert summary["load_avg_before"] and summary["load_avg_after"]



def test_reference_free_contenders_skip_the_reference_pass(train_step, tiny_llama, tmp_path):
    recs = [Record(f"r{i}", "sw", f"Tell me about item {i}.", f"Item {i} is a kind of water.",
                   f"Niambie kuhusu kitu {i}.", f"Kitu {i} ni aina ya maji.") for i in range(train_step.BATCH)]
    data = save_records(tmp_path / "records.jsonl", recs)
    plan = {"model": str(tiny_llama), "data": str(data), "work": str(tmp_path), "steps": 1, "lr": 1e-3,
            "max_length": 256}
    runs = {c: train_step.run_ours({**plan, "contender": c}) for c in ("clo", "clo-simpo", "clo-orpo")}
    assert (tmp_path / "ref-clo.sqlite").is_file()
    assert not (tmp_path / "ref-clo-simpo.sqlite").exists() and not (tmp_path / "ref-clo-orpo.sqlite").exists()
    assert runs["clo-simpo"]["tokens"] == runs["clo-orpo"]["tokens"] == runs["clo"]["tokens"] > 0
    assert len({round(r["losses"][0], 6) for r in runs.values()}) == 3  # three different losses were trained
