"""Real uploads to a Hugging Face Hub stand-in on loopback (`langshift.testing.hub_server`): `langshift push`
and `CLOTrainer(push_to_hub=True)` run in a process of their own with HF_ENDPOINT pointing at it (the
client reads the endpoint at import), and what the stand-in stored is compared, byte for byte, with the
directory that was pushed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from langshift.records import Record, save_records
from langshift.testing.hub_server import hub_server


def _records(n: int) -> list[Record]:
    return [Record(f"r{i}", "sw", f"Tell me about item {i}.", f"Item {i} is a kind of water that boils fast.",
                   f"Niambie kuhusu kitu {i}.", f"Kitu {i} ni aina ya maji yanayochemka haraka.") for i in range(n)]


def _run(argv: list[str], hub, tmp_path: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """`python argv...` as a client of `hub`: its endpoint and dummy token, a home of its own."""
    env = {**os.environ, **hub.env(), "HF_HOME": str(tmp_path / "hf-home"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tiny_llama, tmp_path_factory) -> Path:
    """A real (tiny, one-step) CLO training output, checkpoints/ included."""
    from langshift.train.config import TrainConfig
    from langshift.train.recipe import train

    root = tmp_path_factory.mktemp("push-hub")
    data = save_records(root / "records.jsonl", _records(4))
    return train(TrainConfig(method="clo", model=str(tiny_llama), data=str(data), lang="sw", out=str(root / "clo-sw"),
                             max_steps=1, batch_size=3, val_size=1, max_length=64, progress=False,
                             cache_dir=str(root / "cache")))


def test_push_uploads_the_training_output_byte_for_byte(trained, tmp_path):
    local = _tree(trained)
    assert any(p.startswith("checkpoints/") for p in local)
    with hub_server(tmp_path / "hub") as hub:
        done = _run(["-m", "langshift.cli", "push", str(trained), "--repo", "someone/clo-sw"], hub, tmp_path)
        stored = hub.files("someone/clo-sw")
        assert stored == {p: data for p, data in local.items() if not p.startswith("checkpoints/")}
        assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "config.yaml",
                "metrics.jsonl", "README.md"} <= stored.keys()
        [commit] = hub.commits["someone/clo-sw"]
        assert commit.summary == f"langshift: upload {trained.name}"
        assert commit.added == sorted(stored) and not any(p.startswith("checkpoints/") for p in commit.added)
        assert hub.repos["someone/clo-sw"] == {"name": "clo-sw", "organization": "someone", "visibility": "public",
                                               "type": "model"}
        api = "/api/models/someone/clo-sw"
        assert hub.requests == [("POST", "/api/repos/create"), ("POST", "/api/validate-yaml"),
                                ("POST", f"{api}/preupload/main"), ("POST", f"{api}/commit/main")]
        assert f"uploaded: {hub.url}/someone/clo-sw/commit/{commit.oid}" in done.stdout

        # again, to the repository that now exists (create_repo answers 409, exist_ok goes on)
        _run(["-m", "langshift.cli", "push", str(trained), "--repo", "someone/clo-sw"], hub, tmp_path)
        assert len(hub.commits["someone/clo-sw"]) == 2 and hub.files("someone/clo-sw") == stored
        assert hub.requests.count(("POST", "/api/repos/create")) == 2


CLO_PUSH = """
import json, sys

import torch

torch.set_num_threads(1)
from langshift import CLOConfig, CLOTrainer

model, out, cache, rows = sys.argv[1:]
args = CLOConfig(output_dir=out, method="clo", max_steps=1, batch_size=3, learning_rate=1e-2, cache_dir=cache,
                 val_size=1, disable_tqdm=True, push_to_hub=True, hub_model_id="someone/clo-tiny")
trainer = CLOTrainer(model, args=args, train_dataset=rows)
trainer.train()
info = trainer.push_to_hub()
print(json.dumps({"hub_model_id": trainer.hub_model_id, "commit_url": info.commit_url, "oid": info.oid}))
"""


def test_clo_trainer_push_to_hub_uploads_the_model(tiny_llama, tmp_path):
    """`CLOConfig(push_to_hub=True, hub_model_id=...)`: Trainer creates the repo when made, pushes the
    output directory at each save (step 1 here) and on `push_to_hub()`; what the Hub holds at the end is
    the output directory, checkpoint-*/ left out."""
    out = tmp_path / "out"
    rows = save_records(tmp_path / "records.jsonl", _records(4))
    (tmp_path / "clo_push.py").write_text(CLO_PUSH)
    with hub_server(tmp_path / "hub") as hub:
        done = _run([str(tmp_path / "clo_push.py"), str(tiny_llama), str(out), str(tmp_path / "cache"), str(rows)],
                    hub, tmp_path)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["hub_model_id"] == "someone/clo-tiny"
        commits = hub.commits["someone/clo-tiny"]
        assert [c.summary for c in commits] == ["Training in progress, step 1", "End of training"]
        assert result["commit_url"] == f"{hub.url}/someone/clo-tiny/commit/{commits[-1].oid}"
        assert result["oid"] == commits[-1].oid
        local = _tree(out)
        assert any(p.startswith("checkpoint-1/") for p in local)
        stored = hub.files("someone/clo-tiny")
        assert stored == {p: data for p, data in local.items() if not p.startswith(("checkpoint-", "_"))}
        assert {"model.safetensors", "config.json", "tokenizer.json", "metrics.jsonl", "README.md"} <= stored.keys()
        assert not any("checkpoint-" in p for c in commits for p in c.added)
        assert hub.requests[0] == ("POST", "/api/repos/create")
        assert hub.requests.count(("POST", "/api/repos/create")) == 1
        assert set(hub.requests) == {("POST", "/api/repos/create"), ("POST", "/api/validate-yaml"),
                                             ("POST", "/api/models/someone/clo-tiny/preupload/main"),
                                             ("POST", "/api/models/someone/clo-tiny/commit/main")}
