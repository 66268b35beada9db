"""BELEBELE: data loading, Table 7 templates, shared-context scoring vs naive scoring and vs lm-eval."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from langshift.eval.belebele import (
    choices,
    encode_pair,
    evaluate_belebele,
    load_belebele,
    pack_group,
    render_prompt,
)
from langshift.files import InputError, read_jsonl
from langshift.models import load

sys.path.insert(0, str(Path(__file__).parent / "lm_eval_tasks"))


PASSAGES = {
    "eng_Latn": [
        "Water boils at one hundred degrees at sea level. On a mountain it boils sooner.",
        "The market opens at seven and closes at one. Parking is free on market days.",
    ],
    "swh_Latn": [
        "Maji huchemka kwa nyuzi joto mia moja kwenye usawa wa bahari.",
        "Soko hufunguliwa saa moja na hufungwa saa saba.",
    ],
    "kor_Hang": ["물은 해수면에서 섭씨 100도에서 끓는다.", "시장은 7시에 열고 1시에 닫는다."],
}


def belebele_rows() -> list[dict]:
    """Rows in BELEBELE's hub schema: 2 passages x 3 questions per dialect, parallel across dialects."""
    rows = []
    for dialect, passages in PASSAGES.items():
        for p, passage in enumerate(passages):
            for q in range(3):
                rows.append(
                    {
                        "link": f"https://example.org/passage-{p}",
                        "question_number": q + 1,
                        "flores_passage": passage,
                        "question": f"Question {q} about passage {p}? ",
                        "mc_answer1": "at one hundred degrees",
                        "mc_answer2": "seven",
                        "mc_answer3": "free",
                        "mc_answer4": "on a mountain",
                        "correct_answer_num": str((p + q) % 4 + 1),
                        "dialect": dialect,
                        "ds": "2023-05-03",
                    }
                )
    return rows


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("belebele") / "belebele.jsonl"
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in belebele_rows()), encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def tiny(tiny_llama):
    return load(tiny_llama)


def test_load_filters_dialect_and_keeps_parallel_ids(data_file):
    en, sw = load_belebele(data_file, "en"), load_belebele(data_file, "swh_Latn")
    assert len(en) == len(sw) == 6 and {i["dialect"] for i in sw} == {"swh_Latn"}
    assert [i["id"] for i in en] == [i["id"] for i in sw]  # same link + question number
    assert en[0]["answer"] == 0 and en[1]["answer"] == 1 and len(en[0]["options"]) == 4
    assert len(load_belebele(data_file, "ko", limit=2)) == 2


def test_load_errors_name_file_line_field(tmp_path, data_file):
    with pytest.raises(InputError, match="no BELEBELE items for German .*eng_Latn, kor_Hang, swh_Latn"):
        load_belebele(data_file, "de")
    rows = belebele_rows()[:3]
    rows[1]["correct_answer_num"] = "5"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'correct_answer_num'"):
        load_belebele(bad, "en")
    del rows[1]["mc_answer3"]
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'mc_answer3'"):
        load_belebele(bad, "en")


def test_table7_templates():
    item = {"passage": " P. ", "question": "Q? ", "options": ["a", "b", "c", "d"], "answer": 0}
    assert render_prompt(item, "sw") == "Hati: P.\nSwali: Q?\nA: a\nB: b\nC: c\nD: d\nJibu:"
    assert render_prompt(item, "ko") == "문서: P.\n질문: Q?\n가) a\n나) b\n다) c\n라) d\n정답:"
    assert render_prompt(item, "yo").startswith("Iwe: P.\nIbèèrè: Q?") and render_prompt(item, "yo").endswith(
        "Idahun:"
    )
    assert render_prompt(item, "zh").startswith("文档: P.\n问题: Q?") and render_prompt(item, "de").endswith(
        "Antwort:"
    )
    assert render_prompt(item, "id").endswith("Jawaban:")
    assert render_prompt(item, "en") == "Passage: P.\nQuestion: Q?\nA: a\nB: b\nC: c\nD: d\nAnswer:"
    assert choices("ko") == [" 가)", " 나)", " 다)", " 라)"] and choices("sw") == [" A", " B", " C", " D"]


def naive_loglik(model, tok, context: str, continuation: str) -> float:
    """One full forward per option, no sharing: the reference."""
    ctx, cont = encode_pair(tok, context, continuation)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ctx + cont])).logits[0].float(), dim=-1)
    return sum(float(logp[len(ctx) - 1 + t, tok_id]) for t, tok_id in enumerate(cont))


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_shared_context_equals_naive_scoring(family, lang, data_file, tiny_llama, tiny_gpt2, tmp_path):
    model, tok = load(tiny_llama if family == "llama" else tiny_gpt2)
    items = load_belebele(data_file, lang)
    # Korean labels are several tokens for this tokenizer: the multi-token path is exercised too.
    assert max(len(encode_pair(tok, "정답:", c)[1]) for c in choices(lang)) > 1 or lang == "en"
    result = evaluate_belebele(model, tok, items, lang, out_dir=tmp_path, batch_size=4)
    rows = read_jsonl(tmp_path / f"belebele.{lang}.jsonl")
    for item, row in zip(items, rows, strict=True):
        expected = [naive_loglik(model, tok, render_prompt(item, lang), c) for c in choices(lang)]
        assert row["loglik"] == pytest.approx(expected, abs=1e-4)
        assert row["pred"] == max(range(4), key=lambda k: expected[k]) and row["gold"] == item["answer"]
    correct = [r["correct"] for r in rows]
    p = sum(correct) / len(correct)
    acc = result["metrics"]["accuracy"]
    assert acc["n"] == 6 and acc["value"] == pytest.approx(p)
    assert acc["stderr"] == pytest.approx((p * (1 - p) / (len(correct) - 1)) ** 0.5)


def test_passage_is_computed_once_per_group(tiny, data_file):
    """A passage's three questions and their 4 labels: one packed row, the passage in it once."""
    _, tok = tiny
    items = [i for i in load_belebele(data_file, "ko") if i["passage"] == PASSAGES["kor_Hang"][0]]
    group = []
    for item in items:
        pairs = [encode_pair(tok, render_prompt(item, "ko"), c) for c in choices("ko")]
        group.append((pairs[0][0], [cont for _, cont in pairs]))
    row = pack_group(group)
    contexts = [c for c, _ in group]
    shared = row["seg"].count(0)
    assert shared > len(contexts[0]) // 2  # the passage (and "질문:") is the shared prefix...
    assert (
        all(c[:shared] == contexts[0][:shared] for c in contexts) and len({c[shared] for c in contexts}) > 1
    )
    labels = sum(len(c) - 1 for _, cs in group for c in cs)  # ...and appears once in the row
    assert len(row["tokens"]) == shared + sum(len(c) - shared for c in contexts) + labels
    assert len(row["reads"]) == sum(len(c) for _, cs in group for c in cs)  # one read per label token


def test_batch_size_does_not_change_scores(tiny, data_file):
    model, tok = tiny
    items = load_belebele(data_file, "sw")
    one = evaluate_belebele(model, tok, items, "sw", batch_size=1)
    many = evaluate_belebele(model, tok, items, "sw", batch_size=16)
    assert one == many


def test_peer_check_against_lm_eval(tiny, data_file, tmp_path):
    """lm-eval, through its own HF model class and our task YAML, gives the same numbers."""
    from peer import lm_eval_belebele

    model, tok = tiny
    en_file = tmp_path / "en.jsonl"
    en_file.write_text("".join(json.dumps(r) + "\n" for r in belebele_rows() if r["dialect"] == "eng_Latn"))
    items = load_belebele(en_file, "en")
    ours = evaluate_belebele(model, tok, items, "en", out_dir=tmp_path, batch_size=4)
    theirs = lm_eval_belebele(model, tok, en_file, batch_size=3)
    assert theirs["contexts"] == [render_prompt(item, "en") for item in items]  # the very same prompt text
    mine = [r["loglik"] for r in read_jsonl(tmp_path / "belebele.en.jsonl")]
    assert theirs["n"] == len(mine) == 6
    for a, b in zip(mine, theirs["loglik"], strict=True):
        assert a == pytest.approx(b, abs=1e-4)
    assert ours["metrics"]["accuracy"]["value"] == theirs["accuracy"]


def test_cli_belebele(tiny_llama, data_file, tmp_path):
    from langshift.cli import app

    out = tmp_path / "run"
    for lang in ("sw", "ko"):
        result = CliRunner().invoke(
            app,
            [
                "eval",
                "belebele",
                "--model",
                str(tiny_llama),
                "--lang",
                lang,
                "--data",
                str(data_file),
                "--out",
                str(out),
                "--limit",
                "4",
            ],
        )
        assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["model"] == str(tiny_llama)
    sw, ko = (saved["belebele"][lang]["metrics"]["accuracy"] for lang in ("sw", "ko"))
    assert sw["n"] == ko["n"] == 4
    assert 0 <= ko["value"] <= 1 and ko["stderr"] is not None
    assert len(read_jsonl(out / "belebele.ko.jsonl")) == 4
    bad = CliRunner().invoke(
        app,
        [
            "eval",
            "belebele",
            "--model",
            str(tiny_llama),
            "--lang",
            "de",
            "--data",
            str(data_file),
            "--out",
            str(out),
        ],
    )
    assert bad.exit_code == 2 and "no BELEBELE items for German" in bad.output
