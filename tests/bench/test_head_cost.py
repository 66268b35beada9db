"""bench/head_cost.py on a tiny model: the measurement's fields are there, times positive, our chunked head
path and the naive full-logits one agree (and the check fails when they do not), and the memory worker
reads a peak."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def head_cost():
    spec = importlib.util.spec_from_file_location("head_cost", ROOT / "bench" / "head_cost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def loaded(tiny_llama, head_cost):
    from langshift import models

    model, tok = models.load(tiny_llama, dtype="float32")
    records = head_cost._bench_module("train_step").build_records(2, 0)
    return model, tok, records


def test_measure_on_a_tiny_model(head_cost, loaded, tmp_path):
    model, tok, records = loaded
    saved = tmp_path / "head.pt"
    # chunks of 64 tokens: the chunked path runs several chunks against the naive path's one
    r = head_cost.measure(model, tok, records, repeats=1, chunk_tokens=64, hidden_out=saved)
    assert r["records"] == 2 and r["sequences"] == 8 and r["repeats"] == 1
    assert 0 < r["scored_tokens"] < r["decoder_tokens"] and r["chunks"] == math.ceil(r["scored_tokens"] / 64) > 1
    assert r["vocab"] == len(tok) and r["head_path"] == "FrozenHeadLogps"
    for key in ("body_fwd_s", "body_bwd_s", "head_fwd_s", "head_bwd_s", "naive_fwd_s", "naive_bwd_s", "step_s",
                "naive_head_s", "head_time_ratio_chunked_vs_naive", "logits_mb_full"):
        assert r[key] > 0, key
    assert 0 < r["head_share"] < 1 and 0 < r["head_share_naive"] < 1
    assert r["step_s"] == pytest.approx(r["body_s"] + r["head_s"])
    assert set(r["max_diff"]) == {"split_vs_layout_logps", "logps_chunked_vs_naive", "grad_chunked_vs_naive"}
    assert all(0 <= d <= head_cost.LOGP_TOL for d in r["max_diff"].values())
    # the memory worker's function, here in-process: a peak and the same head pass on the saved states.
    # In-process the pass reuses pages the measurement above freed, so its delta is ~0, and the kernel's RSS
    # counters are per-CPU approximations (tens of pages): CI read -0.05 MB. A wrong unit or base is MBs off.
    for variant in head_cost.VARIANTS:
        mem = head_cost.head_memory(saved, variant, model.get_output_embeddings())
        assert mem["variant"] == variant and mem["peak_delta_mb"] > -1.0 and mem["wall_s"] > 0
        assert mem["base_mb"] > 10 and isinstance(mem["peak_exact"], bool)


@pytest.mark.parametrize("what", ["log-probs", "gradient"])
def test_a_head_that_differs_fails_the_check(head_cost, loaded, monkeypatch, what):
    model, tok, records = loaded
    naive = head_cost.naive_head

    def off(*args):
        sums = naive(*args)
        if what == "log-probs":  # one nat more per sequence
            return sums + 1.0
        return sums + 0.01 * (sums - sums.detach())  # the same values, a gradient 1% larger

    monkeypatch.setitem(head_cost.HEADS, "naive", off)
    with pytest.raises(head_cost.HeadMismatch, match=f"{what}.*chunked vs naive"):
        head_cost.measure(model, tok, records[:1], repeats=1)


def test_check_close(head_cost):
    import torch

    a = torch.tensor([1.0, 2.0])
    assert head_cost.check_close("x", a, a + 1e-6, 1e-4) < 1e-4
    with pytest.raises(head_cost.HeadMismatch):
        head_cost.check_close("x", a, a + 1e-3, 1e-4)
    with pytest.raises(head_cost.HeadMismatch):
        head_cost.check_close("x", a, a * float("nan"), 1e-4)
    assert head_cost.check_close("x", a, a + 1e-3, 1e-4, scale=100.0) < 1e-4  # relative to the scale


def test_help():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "head_cost.py"), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "--repeats" in proc.stdout
