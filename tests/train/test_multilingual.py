"""Many target languages in one model: the union training set, cross-target negatives, their counts."""

import json

import pytest
import torch
import torch.nn.functional as F
import yaml

from langshift.files import InputError
from langshift.records import Record, save_records
from langshift.train.config import TrainConfig
from langshift.train.objectives import METHODS, Hyper
from langshift.train.recipe import load_splits, train
from langshift.train.trainer import by_unit, cross_partners, language_counts

TEXT = {"sw": ("Niambie kuhusu kitu {i}.", "Kitu {i} ni aina ya maji yanayochemka haraka."),
        "de": ("Erzähl mir von Ding {i}.", "Ding {i} ist eine Art Wasser, das schnell kocht."),
        "yo": ("Sọ fún mi nípa nǹkan {i}.", "Nǹkan {i} jẹ́ irú omi tí ó ń hó kíákíá.")}


def _record(i, lang, source=None):
    prompt, response = TEXT[lang]
    meta = {"source_id": source} if source else {}
    return Record(f"{lang}-{i}" if source else f"r{i}", lang, f"Tell me about item {i}.",
                  f"Item {i} is a kind of water that boils fast.", prompt.format(i=i), response.format(i=i), meta=meta)


def test_three_language_batch_loss_is_the_hand_sum_over_listed_negatives():
    # s1 has sw, de and yo; s2 only sw (a single). Ids differ per language: meta.source_id groups them.
    records = [_record(1, "sw", "s1"), _record(1, "de", "s1"), _record(1, "yo", "s1"), _record(2, "sw", "s2")]
    partners = cross_partners(records)
    assert [[o.lang for o in p] for p in partners] == [["de", "yo"], ["sw", "yo"], ["de", "sw"], []]
    counts = language_counts(records, METHODS["clo"], "all")
    assert counts["sw"] == {"records": 2, "units": 2, "negatives": 2, "singles": 1}
    assert counts["de"] == counts["yo"] == {"records": 1, "units": 1, "negatives": 2, "singles": 0}
    assert language_counts(records, METHODS["clo"], "english")["sw"]["singles"] == 0  # no cross negatives asked

    # Per unit: en_w, en_l, t_w, t_l, then one column per listed partner; the single has four.
    sizes = [6, 6, 6, 4]
    gen = torch.Generator().manual_seed(0)
    flat_pi = -torch.rand(sum(sizes), generator=gen) * 20
    flat_ref = -torch.rand(sum(sizes), generator=gen) * 20
    flat_n = torch.randint(3, 30, (sum(sizes),), generator=gen).float()
    policy, present = by_unit(flat_pi, sizes)
    ref, _ = by_unit(flat_ref, sizes)
    n_tok, _ = by_unit(flat_n, sizes)
    assert present.tolist()[3] == [True] * 4 + [False] * 2
    beta, lam = 0.1, 0.5
    loss, metrics = METHODS["clo"].objective(policy, ref, n_tok, ["tgt"] * 4, Hyper(lam=lam, beta=beta,
                                             cl_negatives="all"), present)

    def ell(w, rej):  # -log sigma(beta [(pi_w - ref_w) - (pi_l - ref_l)]) on flat indices w, rej
        return -F.logsigmoid(beta * ((flat_pi[w] - flat_ref[w]) - (flat_pi[rej] - flat_ref[rej])))

    starts = [0, 6, 12, 18]
    cl = []
    for s, size in zip(starts, sizes, strict=True):
        term = ell(s + 0, s + 1) + ell(s + 2, s + 3)  # x_en: y_en > y_t;  x_t: y_t > y_en
        for j in range(4, size):  # x_t: y_t > y_t' for every listed negative
            term = term + ell(s + 2, s + j)
        cl.append(term)
    l_cl = torch.stack(cl).mean()
    l_nll = -sum(flat_pi[s + 2] for s in starts) / sum(flat_n[s + 2] for s in starts)
    assert loss.item() == pytest.approx((lam * l_nll + (1 - lam) * l_cl).item(), rel=1e-6)
    assert metrics["cl"].item() == pytest.approx(l_cl.item(), rel=1e-6)
    assert metrics["xtgt/accuracy"].item() == pytest.approx(
        sum(float(flat_pi[s + 2] - flat_ref[s + 2] > flat_pi[s + j] - flat_ref[s + j]) for s in starts[:3]
            for j in (4, 5)) / 6)


def test_equal_units_reshape_as_before():
    flat = torch.arange(8.0)
    got, present = by_unit(flat, [4, 4])
    assert present is None and got.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_several_languages_options():
    cfg = TrainConfig(data="a.jsonl,b.jsonl", lang="swh, de")
    assert cfg.multilingual and cfg.langs == ["sw", "de"] and cfg.data_sources == ["a.jsonl", "b.jsonl"]
    with pytest.raises(InputError, match="2 data sources need as many --lang codes"):
        TrainConfig.parse({"data": "a.jsonl,b.jsonl", "lang": "sw"})
    with pytest.raises(InputError, match="cl_negatives 'all' is CLO's"):
        TrainConfig.parse({"method": "sft", "cl_negatives": "all"})
    assert TrainConfig(lang="sw").multilingual is False


def test_one_source_with_several_languages_needs_a_language_list(tmp_path):
    path = save_records(tmp_path / "mixed.jsonl", [_record(i, lang) for i in range(3) for lang in ("sw", "de")])
    with pytest.raises(InputError, match="several languages"):
        load_splits(TrainConfig(data=str(path), val_size=1))
    train_recs, val_recs = load_splits(TrainConfig(data=str(path), multilingual=True, val_size=1))
    assert {r.lang for r in train_recs + val_recs} == {"sw", "de"}
    train_recs, val_recs = load_splits(TrainConfig(data=str(path), lang="de,sw", val_size=1))
    assert sorted(r.lang for r in train_recs + val_recs) == ["de"] * 3 + ["sw"] * 3
    with pytest.raises(InputError, match="record language 'sw' differs from --lang 'de'"):
        load_splits(TrainConfig(data=str(path), lang="de", val_size=1))


@pytest.mark.slow
def test_sw_de_run_trains_on_both_and_loss_falls(tmp_path, tiny_llama):
    # The same ids in both files mark the same English source (the demo data's convention); r9 is sw only.
    sw = save_records(tmp_path / "sw.jsonl", [_record(i, "sw") for i in range(10)])
    de = save_records(tmp_path / "de.jsonl", [_record(i, "de") for i in range(9)])
    cfg = TrainConfig(model=str(tiny_llama), data=f"{sw},{de}", lang="sw,de", cl_negatives="all",
                      out=str(tmp_path / "out"), batch_size=4, lr=1e-2, trainable="full", max_steps=20,
                      eval_steps=10, val_size=1, seed=3, cache_dir=str(tmp_path / "cache"), progress=False)
    out = train(cfg)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert len(losses) == 20 and sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses
    assert "xtgt" in metrics[0] and "accuracy" in metrics[0]["xtgt"]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    langs = saved["stages"][0]["languages"]
    assert saved["config"]["multilingual"] is True and saved["config"]["lang"] == "sw,de"
    train_counts = langs["train"]
    assert set(train_counts) == {"sw", "de"}
    assert train_counts["sw"]["records"] + langs["validation"]["sw"]["records"] == 10
    assert train_counts["de"]["records"] + langs["validation"]["de"]["records"] == 9
    # every de record has its sw partner unless the split put them apart; r9 (sw) never has one
    assert train_counts["sw"]["singles"] >= 1
    assert train_counts["sw"]["negatives"] == train_counts["de"]["negatives"]
    assert train_counts["sw"]["records"] == train_counts["sw"]["negatives"] + train_counts["sw"]["singles"]
    card = (out / "README.md").read_text()  # training's card names both languages (it once failed on "sw,de")
    assert "language:\n- sw\n- de\n- en\n" in card and "answer in Swahili and German" in card


@pytest.mark.parametrize("pref_loss", ["sigmoid", "simpo", "orpo"])
def test_a_unit_without_cross_negatives_gives_finite_gradients_under_every_pair_loss(pref_loss):
    """A single's padded columns (log-prob 0 over 0 tokens) are masked out of the loss; under a
    length-normalised loss they must not leak a NaN into the gradient through the mask."""
    sizes = [6, 4]
    gen = torch.Generator().manual_seed(1)
    flat = (-torch.rand(sum(sizes), generator=gen) * 20).requires_grad_(True)
    n_tok, _ = by_unit(torch.randint(3, 30, (sum(sizes),), generator=gen).float(), sizes)
    policy, present = by_unit(flat, sizes)
    ref = None if pref_loss != "sigmoid" else by_unit(-torch.rand(sum(sizes), generator=gen) * 20, sizes)[0]
    loss, _ = METHODS["clo"].objective(policy, ref, n_tok, ["tgt"] * 2,
                                       Hyper(pref_loss=pref_loss, cl_negatives="all"), present)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(flat.grad).all()
