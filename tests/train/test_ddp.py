"""2-process DDP on CPU (gloo): `torchrun --nproc_per_node 2` runs 2 optimizer steps of `langshift train
--method clo` on a tiny Llama and 18 records. The CLI runs unchanged under a probe (ddp_probe.py) that
records what each process trained on, so we can check the data was split and the weights kept in sync.
About 15 s on 2 idle cores (two interpreters start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from langshift.records import Record, save_records

HERE = Path(__file__).parent
TORCHRUN = Path(sys.executable).with_name("torchrun")

TOPICS = [
    ("the sky", "anga"),
    ("water", "maji"),
    ("the sun", "jua"),
    ("a letter", "barua"),
    ("the sea", "bahari"),
    ("bread", "mkate"),
    ("a tree", "mti"),
    ("rain", "mvua"),
    ("a school", "shule"),
]


def _records(n: int) -> list[Record]:
    out = []
    for i in range(n):
        en, sw = TOPICS[i % len(TOPICS)]
        out.append(
            Record(
                f"r{i:02d}",
                "sw",
                f"Tell me about {en}, part {i}.",
                f"Here is fact {i} about {en}." * (1 + i % 3),
                f"Niambie kuhusu {sw}, sehemu {i}.",
                f"Huu ni ukweli {i} kuhusu {sw}." * (1 + i % 3),
            )
        )
    return out


def test_clo_two_process_ddp(tiny_llama, tmp_path):
    data = save_records(tmp_path / "records.jsonl", _records(18))  # 1 held out for validation, 17 train
    out, probe = tmp_path / "run", tmp_path / "probe.jsonl"
    config = tmp_path / "train.yaml"
    config.write_text(f"cache_dir: {tmp_path / 'cache'}\nprogress: false\n")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "CUDA_VISIBLE_DEVICES": "",
    }
    cmd = [
        str(TORCHRUN),
        "--nproc_per_node",
        "2",
        "--standalone",
        str(HERE / "ddp_probe.py"),
        str(probe),
        "train",
        "--method",
        "clo",
        "--model",
        str(tiny_llama),
        "--data",
        str(data),
        "--lang",
        "sw",
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--max-steps",
        "2",
        "--max-length",
        "128",
        "--seed",
        "0",
        "--config",
        str(config),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"torchrun failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    )

    # the run's outputs: model, tokenizer, config, metrics
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert (out / "config.yaml").is_file()
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in train_rows] == [1, 2]
    for m in train_rows:
        assert set(m["en"]) >= {"reward_chosen", "reward_rejected", "margin", "accuracy"} and "nll" in m

    rows = {r: [json.loads(x) for x in Path(f"{probe}.rank{r}").read_text().splitlines()] for r in (0, 1)}
    batches = {r: [x for x in rows[r] if x["event"] == "batch"] for r in rows}
    for r in (0, 1):
        assert len(batches[r]) == 2, f"rank {r} ran {len(batches[r])} training batches, expected 2"
        assert all(b["world"] == 2 and b["args_world"] == 2 and b["backend"] == "gloo" for b in batches[r])
        assert all(len(b["seqs"]) == 4 * 4 for b in batches[r])  # 4 records x 4 CLO sequences per process
    for step in (0, 1):  # at each step the two processes trained on different records
        seen0 = {tuple(s) for s in batches[0][step]["seqs"]}
        seen1 = {tuple(s) for s in batches[1][step]["seqs"]}
        assert not seen0 & seen1, f"both ranks trained on the same sequences at step {step}"
    all_seqs = {tuple(s) for r in (0, 1) for b in batches[r] for s in b["seqs"]}
    assert len(all_seqs) == 2 * 8 * 4  # 16 distinct records, 4 sequences each

    # rank 0 filled the reference cache (17 train + 1 validation records x 4); rank 1 only read it
    scored = {r: sum(x["rows"] for x in rows[r] if x["event"] == "reference") for r in (0, 1)}
    assert scored == {0: 18 * 4, 1: 0}
    assert proc.stdout.count("[langshift] clo: training") == 1  # printed by the main process only

    start = {r: next(x for x in rows[r] if x["event"] == "start") for r in (0, 1)}
    done = {r: next(x for x in rows[r] if x["event"] == "done") for r in (0, 1)}
    assert start[0]["abs_checksum"] == start[1]["abs_checksum"]
    moved = done[0]["abs_checksum"] != pytest.approx(start[0]["abs_checksum"], rel=1e-9)
    assert moved, "training did not change the weights"
    assert done[0]["steps"] == done[1]["steps"] == 2
    assert done[0]["checksum"] == pytest.approx(done[1]["checksum"], rel=1e-6, abs=1e-6)  # grads all-reduced
    assert done[0]["abs_checksum"] == pytest.approx(done[1]["abs_checksum"], rel=1e-6)
