"""Judge-free held-out metrics: langpref and heldout_nll equal what the model's logits say, by hand;
held-out pairs that overlap the training data are refused; k samples per prompt from one prefill."""

from __future__ import annotations

import json

import pytest
import torch

from langshift.eval.config import EvalConfig
from langshift.eval.suite import LazyModel, evaluate
from langshift.eval.tasks import TASKS, TaskContext
from langshift.files import InputError, read_jsonl
from langshift.models import chat_format, load
from langshift.records import Record, save_records

ITEMS = [
    {"id": "h1", "category": "explanation", "en_prompt": "Why do cats purr?", "en_response": "Cats purr when calm.",
     "translations": {"sw": {"prompt": "Kwa nini paka hukoroma?", "response": "Paka hukoroma wakiwa watulivu."}}},
    {"id": "h2", "category": "advice", "en_prompt": "How do I keep bread fresh?",
     "en_response": "Keep it in a cloth bag.",
     "translations": {"sw": {"prompt": "Ninawezaje kuweka mkate ukiwa mbichi?",
                             "response": "Uweke kwenye mfuko wa kitambaa."}}},
]


@pytest.fixture
def heldout_file(tmp_path):
    path = tmp_path / "heldout.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ITEMS), encoding="utf-8")
    return path


def _by_hand(model, tok, prompt: str, response: str) -> tuple[float, int]:
    """log π(response | prompt) from the full logits of one unbatched forward, and the response length."""
    fmt = chat_format(tok)
    text = fmt.prompt_text(tok, prompt)
    p_ids = tok(text, add_special_tokens=False).input_ids
    if tok.bos_token and not text.startswith(tok.bos_token) and \
            tok("a", add_special_tokens=True).input_ids[0] == tok.bos_token_id:
        p_ids = [tok.bos_token_id, *p_ids]
    r_ids = tok(response + fmt.end, add_special_tokens=False).input_ids
    ids = torch.tensor([p_ids + r_ids])
    with torch.no_grad():
        logp = model(ids).logits.float().log_softmax(-1)[0]
    total = sum(logp[len(p_ids) + j - 1, t].item() for j, t in enumerate(r_ids))
    return total, len(r_ids)


def _context(tmp_path, model_dir, heldout, **kw):
    cfg = EvalConfig(model=str(model_dir), lang="sw", out=str(tmp_path / "out"), heldout=str(heldout), **kw)
    (tmp_path / "out").mkdir(exist_ok=True)
    return TaskContext(cfg=cfg, out=tmp_path / "out", model=LazyModel(cfg))


def test_langpref_and_heldout_nll_equal_the_logits_by_hand(tmp_path, tiny_llama, heldout_file):
    ctx = _context(tmp_path, tiny_llama, heldout_file)
    model, tok = load(str(tiny_llama))
    for lang, (same_p, same_r, other_r) in {
        "sw": ("tgt_prompt", "tgt_response", "en_response"),
        "en": ("en_prompt", "en_response", "tgt_response"),
    }.items():
        pref = TASKS["langpref"].run(ctx, lang)
        nll = TASKS["heldout_nll"].run(ctx, lang)
        rows = {r["id"]: r for r in read_jsonl(ctx.out / f"langpref.{lang}.jsonl")}
        nll_rows = {r["id"]: r for r in read_jsonl(ctx.out / f"heldout_nll.{lang}.jsonl")}
        for item in ITEMS:
            rec = {"en_prompt": item["en_prompt"], "en_response": item["en_response"],
                   "tgt_prompt": item["translations"]["sw"]["prompt"],
                   "tgt_response": item["translations"]["sw"]["response"]}
            same, n_same = _by_hand(model, tok, rec[same_p], rec[same_r])
            other, n_other = _by_hand(model, tok, rec[same_p], rec[other_r])
            got = rows[item["id"]]
            assert got["margin"] == pytest.approx(same - other, abs=1e-4)
            assert got["margin_per_token"] == pytest.approx(same / n_same - other / n_other, abs=1e-5)
            assert got["preference"] == float(same > other)
            assert nll_rows[item["id"]]["nll_per_token"] == pytest.approx(-same / n_same, abs=1e-5)
        assert pref["metrics"]["preference"]["n"] == 2
        mean_margin = sum(r["margin"] for r in rows.values()) / 2
        assert pref["metrics"]["margin"]["value"] == pytest.approx(mean_margin)
        assert nll["metrics"]["nll_per_token"]["value"] > 0


def test_heldout_pairs_that_overlap_the_training_data_are_refused(tmp_path, tiny_llama, heldout_file):
    item = ITEMS[1]
    train = save_records(tmp_path / "train.jsonl", [
        Record("t1", "sw", "Some other prompt.", "Some reply.", "Swali jingine.", "Jibu."),
        Record("t2", "sw", "Unrelated.", "Reply.", item["translations"]["sw"]["prompt"] + "!", "Jibu lingine."),
    ])
    ctx = _context(tmp_path, tiny_llama, heldout_file, train_data=str(train))
    with pytest.raises(InputError, match=r"held-out 'h2' overlaps training 't2'") as e:
        TASKS["langpref"].run(ctx, "sw")
    assert e.value.field == "id" and str(heldout_file) in str(e.value)


def test_samples_per_prompt_from_one_prefill_and_fluent_fidelity(tmp_path, tiny_llama):
    out = tmp_path / "suite"
    state = evaluate({"model": str(tiny_llama), "lang": "sw", "out": str(out), "tasks": ["fidelity", "degeneration"],
                      "limit": 3, "samples": 3, "max_new_tokens": 6, "batch_size": 2})
    rows = read_jsonl(out / "responses.sw.jsonl")
    assert sorted((r["id"], r["sample"]) for r in rows) == sorted((r["id"], s) for r in rows[::3] for s in range(3))
    assert len({r["response"] for r in rows if r["id"] == rows[0]["id"]}) > 1  # k different samples
    for task in ("fidelity", "degeneration"):
        for metric in state[task]["sw"]["metrics"].values():
            assert metric["n"] == 3 or metric["value"] is None  # the unit is the prompt, not the sample
    items = read_jsonl(out / "degeneration.sw.jsonl")
    fid = read_jsonl(out / "fidelity.sw.jsonl")
    assert len(items) == len(fid) == 9
    for d, f in zip(items, fid, strict=True):
        assert d["fluent_pass"] == (f["response_pass"] and not d["degenerate"])
    # a rerun finds every sample on disk and generates nothing
    again = evaluate({"model": str(tiny_llama), "lang": "sw", "out": str(out), "tasks": ["fidelity"], "limit": 3,
                      "samples": 3, "max_new_tokens": 6, "batch_size": 2})
    assert "generate.sw" not in again["meta"]["seconds"]


def test_a_multilingual_model_is_evaluated_in_each_language_and_english_with_a_row_each(tmp_path, tiny_llama):
    """`lang: sw,de`: one evaluation, held-out scores in sw and de from each language's own pairs, English
    from the first language's; report rows carry each language and `trained_langs`."""
    from langshift.report.rows import result_rows

    items = [{**item, "translations": {**item["translations"], "de": {"prompt": f"Frage {i}?",
                                                                      "response": f"Antwort {i}."}}}
             for i, item in enumerate(ITEMS)]
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
    state = evaluate(EvalConfig(model=str(tiny_llama), lang="sw,de", out=str(tmp_path / "out"), heldout=str(heldout),
                                tasks=["langpref", "heldout_nll"]))
    assert set(state["langpref"]) == set(state["heldout_nll"]) == {"sw", "de", "en"}
    de_rows = {r["id"]: r for r in read_jsonl(tmp_path / "out" / "heldout_nll.de.jsonl")}
    sw_rows = {r["id"]: r for r in read_jsonl(tmp_path / "out" / "heldout_nll.sw.jsonl")}
    assert de_rows["h1"]["nll_per_token"] != sw_rows["h1"]["nll_per_token"]  # each language its own pairs
    facts = {"model": "tiny", "lang": "sw", "method": "clo", "size": 2, "trainable": "attention", "nll": "target",
             "nll_reduction": "token", "trained_langs": "sw+de"}
    rows = result_rows(state, facts)
    by = {(r["task"], r["metric"], r["lang"], r["eval_lang"]) for r in rows}
    assert {("heldout_nll", "nll_per_token", lang, ev) for lang, ev in (("sw", "target"), ("de", "target"),
                                                                        ("sw", "en"))} <= by
    assert all(r["trained_langs"] == "sw+de" for r in rows)
