"""Every method through the real Trainer on a tiny model: losses, the lambda=0 identity, resume."""

import json
import math

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerCallback

from langshift import models
from langshift.records import Record, save_records
from langshift.train.config import TrainConfig
from langshift.train.encode import Encoder
from langshift.train.recipe import load_splits, train


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    recs = [Record(f"r{i}", "sw", f"Tell me about item {i}.", f"Item {i} is a kind of water that boils fast.",
                   f"Niambie kuhusu kitu {i}.", f"Kitu {i} ni aina ya maji yanayochemka haraka.") for i in range(10)]
    return save_records(tmp_path_factory.mktemp("data") / "records.jsonl", recs)


def _cfg(tmp_path, tiny_llama, records, **kw):
    base = dict(model=str(tiny_llama), data=str(records), lang="sw", out=str(tmp_path / "out"), batch_size=3,
                lr=1e-2, cache_dir=str(tmp_path / "cache"), progress=False, val_size=1)
    return TrainConfig(**{**base, **kw})


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", ["clo", "sft", "sft-eng", "sft-tgt", "dpo", "sft+dpo"])
def test_method_trains_and_loss_falls(tmp_path, tiny_llama, records, method):
    out = train(_cfg(tmp_path, tiny_llama, records, method=method, trainable="full", epochs=4, eval_steps=4))
    losses = [m["loss"] for m in _metrics(out) if "loss" in m]
    assert losses[-1] < losses[0], losses
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert (out / "config.yaml").is_file()
    if method == "sft+dpo":
        assert (out / "stage-sft" / "model.safetensors").is_file()


def test_lambda_zero_first_step_is_two_ln2(tmp_path, tiny_llama, records):
    out = train(_cfg(tmp_path, tiny_llama, records, method="clo", lam=0.0, max_steps=1))
    first = _metrics(out)[0]
    assert first["step"] == 1 and first["loss"] == pytest.approx(2 * math.log(2), abs=1e-4)
    for side in ("en", "tgt"):
        for key in ("reward_chosen", "reward_rejected", "margin"):
            assert abs(first[side][key]) < 1e-4
        assert first[side]["accuracy"] == 0.0


def test_on_the_fly_reference_matches_precomputed(tmp_path, tiny_llama, records):
    a = train(_cfg(tmp_path / "a", tiny_llama, records, method="clo", max_steps=2))
    b = train(_cfg(tmp_path / "b", tiny_llama, records, method="clo", max_steps=2, ref="on-the-fly"))
    la, lb = ([m["loss"] for m in _metrics(o) if "loss" in m] for o in (a, b))
    assert la == pytest.approx(lb, abs=1e-4)


def test_reference_cache_is_reused(tmp_path, tiny_llama, records):
    import sqlite3

    cache = str(tmp_path / "cache")
    train(_cfg(tmp_path / "a", tiny_llama, records, method="dpo", max_steps=1, limit=4, cache_dir=cache))
    db = sqlite3.connect(tmp_path / "cache" / "reference.sqlite")
    n4 = db.execute("SELECT COUNT(*) FROM ref").fetchone()[0]
    train(_cfg(tmp_path / "b", tiny_llama, records, method="dpo", max_steps=1, cache_dir=cache))
    n9 = db.execute("SELECT COUNT(*) FROM ref").fetchone()[0]
    assert n4 == 4 * 4 + 4 and n9 == 9 * 4 + 4  # 4 sequences per record, train + 1 validation record


def test_lora_trains_and_saves_merged_model(tmp_path, tiny_llama, records):
    out = train(_cfg(tmp_path, tiny_llama, records, method="clo", trainable="lora", lora_r=2, max_steps=2))
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not any("lora" in k for k in load_file(out / "model.safetensors"))


class Interrupt(TrainerCallback):
    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == 3:
            raise KeyboardInterrupt("simulated kill")


def test_resume_matches_uninterrupted_run(tmp_path, tiny_llama, records):
    kw = dict(method="clo", trainable="full", max_steps=5, eval_steps=1, save_total_limit=10, batch_size=2)
    whole = train(_cfg(tmp_path / "whole", tiny_llama, records, **kw))
    cut = _cfg(tmp_path / "cut", tiny_llama, records, **kw)
    with pytest.raises(KeyboardInterrupt):
        train(cut, callbacks=[Interrupt()])
    assert (tmp_path / "cut" / "out" / "checkpoints" / "checkpoint-3").is_dir()
    cut.resume = True
    resumed = train(cut)
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
    steps = [m["step"] for m in _metrics(resumed) if "loss" in m]
    assert steps == [1, 2, 3, 4, 5]  # the resumed run appended to the interrupted run's log


def test_micro_batch_from_token_budget():
    from langshift.train.clo_trainer import pick_micro_batch

    assert pick_micro_batch(8, 600, 4096) == 4  # 6 would fit the budget but does not divide 8
    assert pick_micro_batch(8, 600, 1300) == 2
    assert pick_micro_batch(8, 5000, 4096) == 1  # one record over budget still runs, alone
    assert pick_micro_batch(6, 100, 4096) == 6


def test_activation_checkpointing_gives_the_same_steps(tmp_path, tiny_llama, records):
    runs = [train(_cfg(tmp_path / str(gc), tiny_llama, records, method="clo", max_steps=2, micro_batch_size=1,
                       activation_checkpointing=gc)) for gc in (False, True)]
    plain, checkpointed = ([m["loss"] for m in _metrics(out) if "loss" in m] for out in runs)
    assert len(plain) == 2 and plain == pytest.approx(checkpointed, abs=1e-5)
    stage = yaml.safe_load((runs[1] / "config.yaml").read_text())["stages"][0]
    assert stage["micro_batch_size"] == 1 and stage["gradient_accumulation"] == 3


@pytest.mark.parametrize("pref_loss", ["ipo", "simpo", "orpo"])
def test_clo_over_another_pair_loss_trains_with_the_same_metrics(tmp_path, tiny_llama, records, pref_loss):
    base = dict(method="clo", trainable="full", epochs=4, eval_steps=4)
    out = train(_cfg(tmp_path, tiny_llama, records, pref_loss=pref_loss, **base))
    rows = [m for m in _metrics(out) if "loss" in m]
    assert rows[-1]["loss"] < rows[0]["loss"], [m["loss"] for m in rows]
    # metrics.jsonl reads the same whatever the loss: the keys of a sigmoid run's first line
    sigmoid = [m for m in _metrics(train(_cfg(tmp_path / "sigmoid", tiny_llama, records, method="clo", max_steps=1)))
               if "loss" in m][0]
    assert set(rows[0]) == set(sigmoid) and set(rows[0]["tgt"]) == set(sigmoid["tgt"]) == {
        "reward_chosen", "reward_rejected", "margin", "accuracy"}


def test_ipo_first_step_is_its_equation(tmp_path, tiny_llama, records):
    """Policy = reference at step 0: every IPO pair gives (0 - 1/(2 beta))^2, so L_CL = 2 / (4 beta^2)."""
    out = train(_cfg(tmp_path, tiny_llama, records, method="clo", lam=0.0, pref_loss="ipo", beta=0.2, max_steps=1))
    assert _metrics(out)[0]["loss"] == pytest.approx(2 / (4 * 0.2**2), rel=1e-5)  # 12.5


@pytest.mark.parametrize("ref", ["precompute", "on-the-fly"])
def test_reference_free_run_builds_no_reference(tmp_path, tiny_llama, records, monkeypatch, ref):
    """simpo reads no pi_ref: no reference pass, no cache file, no frozen copy, one model loaded."""
    from langshift.train import clo_trainer

    def never(*a, **kw):
        raise AssertionError("a reference-free run touched the reference machinery")

    for name in ("reference_logps", "ReferenceCache", "frozen_copy", "attach_reference"):
        monkeypatch.setattr(clo_trainer, name, never)
    loads = []
    real_load = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **kw: loads.append(a) or real_load(*a, **kw))
    out = train(_cfg(tmp_path, tiny_llama, records, method="clo", pref_loss="simpo", max_steps=2, ref=ref))
    assert len(loads) == 1
    assert not (tmp_path / "cache").exists()  # _cfg's cache_dir: never created
    assert [m["step"] for m in _metrics(out) if "loss" in m] == [1, 2]


def test_nll_reduction_sequence_first_step_is_eq_9(tmp_path, tiny_llama, records):
    """lambda = 1: the first loss is the NLL alone; 'sequence' (summed per sequence) exceeds 'token' by
    about the mean target length, and both are recorded in config.yaml."""
    token = train(_cfg(tmp_path / "t", tiny_llama, records, method="clo", lam=1.0, max_steps=1, batch_size=9))
    seq = train(_cfg(tmp_path / "s", tiny_llama, records, method="clo", lam=1.0, max_steps=1, batch_size=9,
                     nll_reduction="sequence"))
    tok = models.load_tokenizer(models.resolve_model(str(tiny_llama)))
    encoder = Encoder(tok, models.chat_format(tok), 3000)
    train_records, _ = load_splits(_cfg(tmp_path, tiny_llama, records))
    lengths = [len(s.ids) - s.prompt_len for s in (encoder.encode(r)["tgt_chosen"] for r in train_records)]
    first_token, first_seq = (_metrics(o)[0]["loss"] for o in (token, seq))
    # sum over the batch = token-mean x tokens = sequence-mean x sequences
    assert first_seq * len(lengths) == pytest.approx(first_token * sum(lengths), rel=1e-4)
    assert yaml.safe_load((seq / "config.yaml").read_text())["config"]["nll_reduction"] == "sequence"
