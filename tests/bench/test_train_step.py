"""bench/train_step.py's CLO contenders over other pair losses, in-process on a tiny model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from langshift.records import Record, save_records

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_step", ROOT / "bench" / "train_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_contender_names_pick_the_pair_loss(bench):
    assert [bench.pref_loss_of(c) for c in ("clo", "clo-simpo", "clo-orpo", "clo-gc-mb2")] == [
        "sigmoid", "simpo", "orpo", "sigmoid"]
    assert bench.worker_fn("clo-simpo") is bench.worker_fn("clo-orpo") is bench.run_ours
    assert bench.variant("clo-simpo") == ("clo", bench.BATCH, False)


def test_reference_free_contenders_skip_the_reference_pass(bench, tiny_llama, tmp_path):
    recs = [Record(f"r{i}", "sw", f"Tell me about item {i}.", f"Item {i} is a kind of water.",
                   f"Niambie kuhusu kitu {i}.", f"Kitu {i} ni aina ya maji.") for i in range(bench.BATCH)]
    data = save_records(tmp_path / "records.jsonl", recs)
    plan = {"model": str(tiny_llama), "data": str(data), "work": str(tmp_path), "steps": 1, "lr": 1e-3,
            "max_length": 256}
    runs = {c: bench.run_ours({**plan, "contender": c}) for c in ("clo", "clo-simpo", "clo-orpo")}
    assert (tmp_path / "ref-clo.sqlite").is_file()
    assert not (tmp_path / "ref-clo-simpo.sqlite").exists() and not (tmp_path / "ref-clo-orpo.sqlite").exists()
    assert runs["clo-simpo"]["tokens"] == runs["clo-orpo"]["tokens"] == runs["clo"]["tokens"] > 0
    assert len({round(r["losses"][0], 6) for r in runs.values()}) == 3  # three different losses were trained
