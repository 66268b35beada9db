"""A training process SIGKILLed while it writes a checkpoint resumes from the newest complete one, ends at
the same step with the same weights as an uninterrupted run, and leaves one clean metrics.jsonl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from langshift.records import Record, save_records
from langshift.train.checkpoints import (
    checkpoint_problem,
    latest_complete_checkpoint,
    remove_torn_checkpoints,
)
from langshift.train.config import TrainConfig
from langshift.train.recipe import train

CHILD = Path(__file__).with_name("train_child.py")
STEPS = 6


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    recs = [Record(f"r{i}", "sw", f"Tell me about item {i}.", f"Item {i} is a kind of water that boils fast.",
                   f"Niambie kuhusu kitu {i}.", f"Kitu {i} ni aina ya maji yanayochemka haraka.") for i in range(10)]
    return save_records(tmp_path_factory.mktemp("data") / "records.jsonl", recs)


def _cfg(out: Path, tiny_llama, records, **kw) -> TrainConfig:
    # A checkpoint every 2 steps, the default rotation (2 kept), full fine-tuning so every weight moves.
    base = dict(model=str(tiny_llama), data=str(records), lang="sw", out=str(out), method="clo", trainable="full",
                batch_size=2, lr=1e-2, max_steps=STEPS, eval_steps=2, val_size=1, progress=False,
                cache_dir=str(out.parent / "ref-cache"))
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_llama, records):
    return train(_cfg(tmp_path_factory.mktemp("whole") / "out", tiny_llama, records))


def _child(cfg: TrainConfig, kill_at: str | None = None) -> subprocess.Popen:
    spec = cfg.out + ".json"
    Path(spec).write_text(json.dumps(cfg.to_dict()))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, str(CHILD), spec, *([kill_at] if kill_at else [])], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _train_steps(out: Path) -> list[int]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "loss" in r]


def _losses(out: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def _assert_resumed_like_uninterrupted(cfg: TrainConfig, whole: Path, capsys):
    out = Path(cfg.out)
    resumed = train(cfg.model_copy(update={"resume": True}))
    said = capsys.readouterr().out
    assert "removed the incomplete checkpoint" in said
    state = json.loads((latest_complete_checkpoint(out / "checkpoints") / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
    assert _train_steps(resumed) == list(range(1, STEPS + 1))  # one clean run: no step logged twice
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    assert _losses(resumed) == pytest.approx(_losses(whole), abs=1e-5)


@pytest.mark.parametrize("kill_at, left_behind", [
    ("dir:4", []),                                # checkpoint-4/ just created, empty
    ("weights:4", ["model.safetensors"]),         # weights written, no optimizer/scheduler/state
])
def test_kill_while_saving_a_checkpoint_then_resume(tmp_path, tiny_llama, records, uninterrupted, capsys,
                                                    kill_at, left_behind):
    out = tmp_path / "out"
    cfg = _cfg(out, tiny_llama, records)
    child = _child(cfg, kill_at)
    _, err = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, err[-3000:]
    torn = out / "checkpoints" / "checkpoint-4"
    assert torn.is_dir() and set(left_behind) <= {p.name for p in torn.iterdir()}
    assert checkpoint_problem(torn) is not None
    assert latest_complete_checkpoint(out / "checkpoints").name == "checkpoint-2"
    # Steps 3 and 4 were logged before the kill; the resumed run logs them again from checkpoint-2.
    assert _train_steps(out)[-1] == 4
    _assert_resumed_like_uninterrupted(cfg, uninterrupted, capsys)
    assert not torn.exists() or checkpoint_problem(torn) is None  # gone, or rewritten whole by the resumed run


@pytest.mark.slow
def test_kill_the_moment_a_checkpoint_directory_appears(tmp_path, tiny_llama, records, uninterrupted, capsys):
    """From outside, as a user's kill: poll for checkpoint-4/ and SIGKILL the process as soon as it exists.
    Whatever state that catches (usually torn), the rerun resumes and ends like the uninterrupted run."""
    out = tmp_path / "out"
    child = _child(_cfg(out, tiny_llama, records))
    target = out / "checkpoints" / "checkpoint-4"
    deadline = time.time() + 300
    while not target.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.0005)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert target.exists()
    resumed = train(_cfg(out, tiny_llama, records).model_copy(update={"resume": True}))
    capsys.readouterr()
    assert _train_steps(resumed) == list(range(1, STEPS + 1))
    a, b = load_file(uninterrupted / "model.safetensors"), load_file(resumed / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)


def test_resume_with_only_torn_checkpoints_starts_fresh(tmp_path, tiny_llama, records, uninterrupted, capsys):
    out = tmp_path / "out"
    (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)  # killed as it was created
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n{"step": 2, "loss": 8.0}\n')
    resumed = train(_cfg(out, tiny_llama, records, resume=True))
    said = capsys.readouterr().out
    assert "no complete checkpoint" in said and "starting from step 0" in said
    assert _train_steps(resumed) == list(range(1, STEPS + 1))
    assert 9.0 not in [json.loads(line).get("loss") for line in (out / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------ hand-made torn checkpoints


def _complete(path: Path, step: int) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"w")
    (path / "optimizer.pt").write_bytes(b"o")
    (path / "scheduler.pt").write_bytes(b"s")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_latest_complete_checkpoint_skips_and_cleans_torn_ones(tmp_path):
    root = tmp_path / "checkpoints"
    assert latest_complete_checkpoint(root) is None  # no directory at all
    _complete(root / "checkpoint-2", 2)
    _complete(root / "checkpoint-10", 10)  # numeric order, not text order: 10 > 4
    (root / "checkpoint-12").mkdir()  # killed as it was created
    weights_only = root / "checkpoint-14"
    weights_only.mkdir()
    (weights_only / "model.safetensors").write_bytes(b"w")
    torn_state = _complete(root / "checkpoint-16", 16)
    (torn_state / "trainer_state.json").write_text('{"global_step": 1')  # killed mid-write
    wrong_step = _complete(root / "checkpoint-18", 18)
    (wrong_step / "trainer_state.json").write_text('{"global_step": 4}')
    no_optimizer = _complete(root / "checkpoint-20", 20)
    (no_optimizer / "optimizer.pt").unlink()  # e.g. half deleted by rotation
    sharded = _complete(root / "checkpoint-22", 22)
    (sharded / "model.safetensors").unlink()
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    (sharded / "model-00001-of-00002.safetensors").write_bytes(b"w")  # the second shard never came
    (root / "checkpoint-x").mkdir()  # not ours: left alone
    (root / "runs").mkdir()

    assert latest_complete_checkpoint(root) == root / "checkpoint-10"
    assert checkpoint_problem(root / "checkpoint-12") == "no trainer_state.json (killed while saving)"
    assert "torn" in checkpoint_problem(torn_state)
    assert "step 18" in checkpoint_problem(wrong_step)
    assert checkpoint_problem(no_optimizer) == "no optimizer state"
    assert checkpoint_problem(no_optimizer, with_optimizer=False) is None
    assert "model-00002-of-00002" in checkpoint_problem(sharded)

    removed = [p.name for p, _ in remove_torn_checkpoints(root)]
    assert removed == ["checkpoint-12", "checkpoint-14", "checkpoint-16", "checkpoint-18", "checkpoint-20",
                       "checkpoint-22"]
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-10", "checkpoint-2", "checkpoint-x", "runs"]
