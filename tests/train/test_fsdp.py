"""FSDP2 on 2 CPU processes, launched as a GPU user launches it: `accelerate launch --config_file
configs/accelerate/fsdp.yaml --num_processes 2 --mixed_precision no` (the process count and the device's
precision are the only overrides; langshift.train.sharding supplies the FSDP-on-CPU decision accelerate
withholds). One launch runs every case through `langshift train`'s own function (fsdp_probe.py):

- CLO attention-only, CLO full and SFT, on a tiny Llama and a tiny Gemma-3 (sliding window 8, so the
  packed bins cross it), each equal to the one-process run on the same data and seed: loss at every step
  and final weights within 1e-4. Bins of 64 tokens give each rank several bins, a different number per
  rank: the sharded forward must still call every layer once per micro-batch on every rank.
- the model really is sharded (each rank holds about half the parameters, gradients and Adam moments:
  the memory saved against DDP, which holds them all);
- the reference pre-pass under sharding: rank 0 scores every sequence once into the cache, rank 1 none;
- a rank killed as step 3 begins; the relaunch resumes from the sharded checkpoint-2 (weights and Adam
  state in per-rank files) and ends where the uninterrupted one-process run ends;
- the gathered model is one plain safetensors file that `langshift eval` scores as the one-process
  model and `langshift export --gguf` writes.
About 2 minutes on 2 idle cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_ddp import _records  # tests/train is on sys.path (pytest's prepend import mode)

from langshift.records import save_records

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("shard_memory", HERE.parents[1] / "bench" / "shard_memory.py")
shard_memory = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("shard_memory", shard_memory)  # its dataclasses look their module up
_spec.loader.exec_module(shard_memory)
FSDP_CONFIG = HERE.parents[1] / "configs" / "accelerate" / "fsdp.yaml"
TOL = 1e-4
CASES = [("clo", "attention"), ("clo", "full"), ("sft", "attention")]
HELDOUT = [{"id": f"h{i}", "category": "advice", "en_prompt": f"How do I keep {en} safe?", "en_response": f"Keep {en} dry.",
            "translations": {"sw": {"prompt": f"Ninawezaje kulinda {sw}?", "response": f"Weka {sw} pakavu."}}}
           for i, (en, sw) in enumerate([("bread", "mkate"), ("a letter", "barua"), ("the seeds", "mbegu")])]


def _env(tmp_path):
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "CUDA_VISIBLE_DEVICES": "", "LANGSHIFT_CACHE": str(tmp_path / "cache")}


def _run(tmp_path, name: str, runs: list[dict], *, sharded: bool, check: bool = True):
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps(runs))
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP_CONFIG),
              "--num_processes", "2", "--mixed_precision", "no"] if sharded else [sys.executable]
    done = subprocess.run([*launch, str(HERE / "fsdp_probe.py"), str(spec)], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=900)
    if check:
        assert done.returncode == 0, f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return done


def _train(model, data, out, cache, method, trainable, steps=2, **kw):
    return {"train": {"method": method, "model": str(model), "data": str(data), "lang": "sw", "out": str(out),
                      "trainable": trainable, "batch_size": 8, "max_steps": steps, "max_length": 128,
                      "bin_tokens": 64, "eval_steps": 1, "seed": 0, "cache_dir": str(cache), "progress": False,
                      "save_total_limit": 8, **kw}}


def _losses(out: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def _assert_same_weights(a: Path, b: Path):
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=TOL, rtol=0, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.slow
def test_fsdp2_on_two_cpu_processes_equals_one_process(tiny_llama, tiny_gemma3, tmp_path):
    # 16 training records + 1 held out: whole batches of 8, so no rank is handed a repeated record to fill
    # a last short batch (accelerate's even_batches), which a one-process run would not see
    data = save_records(tmp_path / "records.jsonl", _records(17))
    models = {"llama": tiny_llama, "gemma3": tiny_gemma3}
    runs = {side: [_train(models[m], data, tmp_path / side / f"{m}-{method}-{trainable}", tmp_path / f"cache-{side}",
                          method, trainable) for m in models for method, trainable in CASES]
            for side in ("single", "fsdp")}
    resumed_ref = _train(tiny_llama, data, tmp_path / "single" / "llama-resume", tmp_path / "cache-single",
                         "clo", "attention", steps=4)
    _run(tmp_path, "single", runs["single"] + [resumed_ref], sharded=False)
    _run(tmp_path, "fsdp", runs["fsdp"], sharded=True)

    for single, sharded in zip(runs["single"], runs["fsdp"], strict=True):
        a, b = Path(single["train"]["out"]), Path(sharded["train"]["out"])
        assert [s for s, _ in _losses(b)] == [1, 2]
        for (_, la), (_, lb) in zip(_losses(a), _losses(b), strict=True):
            assert lb == pytest.approx(la, abs=TOL), f"{b.name}: loss {lb} vs one process {la}"
        _assert_same_weights(a, b)
        one = json.loads((a / "probe.rank0.json").read_text())
        ranks = [json.loads((b / f"probe.rank{r}.json").read_text()) for r in (0, 1)]
        assert not one["fsdp"] and all(r["fsdp"] and r["world"] == 2 for r in ranks), ranks
        for key in ("param_bytes", "grad_bytes", "optimizer_bytes"):
            # each rank holds its shard: half (every dimension here is even), the two shards the whole
            assert ranks[0][key] + ranks[1][key] == one[key] and 0.4 * one[key] <= ranks[0][key] <= 0.6 * one[key], \
                (b.name, key, one[key], ranks)
        assert one["grad_bytes"] == one["trainable_bytes"] and one["optimizer_bytes"] == 2 * one["trainable_bytes"]
        # bench/shard_memory.py's FSDP2 and DDP bytes per rank are what the runs held (fp32, no mixed precision)
        config = json.loads((Path(single["train"]["model"]) / "config.json").read_text())
        counts = shard_memory.counts(config, single["train"]["trainable"])
        fsdp, ddp = shard_memory.fsdp2(counts, 2), shard_memory.ddp(counts)
        assert (fsdp.params, fsdp.grads, fsdp.optimizer) == tuple(
            ranks[0][k] for k in ("param_bytes", "grad_bytes", "optimizer_bytes"))
        assert (ddp.params, ddp.grads, ddp.optimizer) == tuple(one[k] for k in ("param_bytes", "grad_bytes", "optimizer_bytes"))

    # the reference pass ran once, on rank 0, per base model (the second CLO run of a model reads the cache)
    for m in models:
        b = tmp_path / "fsdp" / f"{m}-clo-attention"
        rows = [json.loads((b / f"probe.rank{r}.json").read_text())["reference_rows"] for r in (0, 1)]
        assert rows == [17 * 4, 0], rows
        assert json.loads((tmp_path / "fsdp" / f"{m}-clo-full" / "probe.rank0.json").read_text())["reference_rows"] == 0

    # a rank killed mid-run; the relaunch resumes from the newest complete sharded checkpoint
    killed = _train(tiny_llama, data, tmp_path / "fsdp" / "llama-resume", tmp_path / "cache-fsdp", "clo", "attention",
                    steps=4)
    done = _run(tmp_path, "killed", [{**killed, "kill_rank": 1, "kill_at": 2}], sharded=True, check=False)
    assert done.returncode != 0
    ckpt = tmp_path / "fsdp" / "llama-resume" / "checkpoints" / "checkpoint-2"
    assert (ckpt / "pytorch_model_fsdp_0" / ".metadata").is_file() and (ckpt / "optimizer_0" / ".metadata").is_file()
    assert not (tmp_path / "fsdp" / "llama-resume" / "checkpoints" / "checkpoint-3").exists()
    _run(tmp_path, "resumed", [{"train": {**killed["train"], "resume": True}}], sharded=True)
    out = tmp_path / "fsdp" / "llama-resume"
    assert [s for s, _ in _losses(out)] == [1, 2, 3, 4]  # metrics.jsonl reads as one run
    for (_, la), (_, lb) in zip(_losses(tmp_path / "single" / "llama-resume"), _losses(out), strict=True):
        assert lb == pytest.approx(la, abs=TOL)
    _assert_same_weights(tmp_path / "single" / "llama-resume", out)

    # the gathered model: langshift eval scores it as the one-process model; export --gguf writes it
    from langshift.eval.config import EvalConfig
    from langshift.eval.suite import evaluate
    from langshift.export.gguf import export_gguf

    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in HELDOUT), encoding="utf-8")
    scores = {}
    for side in ("single", "fsdp"):
        cfg = EvalConfig(model=str(tmp_path / side / "gemma3-clo-full"), lang="sw", out=str(tmp_path / f"eval-{side}"),
                         heldout=str(heldout), tasks=["heldout_nll"])
        scores[side] = evaluate(cfg)["heldout_nll"]
    assert scores["fsdp"]["sw"] and scores["fsdp"]["en"]
    assert _assert_close_tree(scores["single"], scores["fsdp"]) >= 2  # a score per language at least
    gguf_path = export_gguf(tmp_path / "fsdp" / "gemma3-clo-full", tmp_path / "fsdp.gguf")
    from gguf import GGUFReader

    reader = GGUFReader(gguf_path)
    assert str(reader.fields["general.architecture"].contents()) == "gemma3"
    assert len(reader.tensors) > 10


def _assert_close_tree(a, b, path="heldout_nll") -> int:
    """Same keys everywhere, floats within 1e-3; returns how many floats were compared."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        return sum(_assert_close_tree(a[k], b[k], f"{path}.{k}") for k in a)
    if isinstance(a, float):
        assert b == pytest.approx(a, abs=1e-3), path
        return 1
    return 0


@pytest.mark.parametrize(("env", "options", "field"), [
    ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, {}, "distributed_type"),
    ({"ACCELERATE_USE_FSDP": "true"}, {"trainable": "lora"}, "trainable"),
])
def test_unrehearsed_sharding_is_refused_by_name(tiny_llama, tmp_path, monkeypatch, env, options, field):
    """DeepSpeed ZeRO-3 (its partitioned weights break the reference pass: deepspeed_zero3.yaml says what was
    tried) and LoRA under FSDP fail at once with the option to change, not deep inside a launch."""
    from langshift import CLOConfig, CLOTrainer
    from langshift.files import InputError

    args = CLOConfig(output_dir=str(tmp_path / "out"), **options)  # before: TrainingArguments would want deepspeed
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(InputError) as e:
        CLOTrainer(str(tiny_llama), args, train_dataset=_records(4))
    assert e.value.field == field
