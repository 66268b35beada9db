"""The evaldata stage's prompts file: AlpacaEval's instructions and their translation, read back by the
evaluation suite and the judge in every paper language, Indonesian ("id", the row id's key) included."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("lang", ["id", "sw"])
def test_translated_prompts_read_back_in_both_languages(lang, hub_cache, tmp_path):
    from langshift.data.eval_prompts import build_eval_prompts
    from langshift.data.translators import make_translator
    from langshift.eval.alpaca_data import load_instructions
    from langshift.eval.suite import load_prompts

    translator = make_translator("hf", model="facebook/m2m100_1.2B", beam_size=1, max_length=8, device="cpu")
    out = build_eval_prompts("alpaca_eval", lang, translator, tmp_path, limit=3)
    english = load_instructions("tatsu-lab/alpaca_eval", "en", limit=3)
    rows = [json.loads(x) for x in (out / "prompts.jsonl").read_text().splitlines()]
    assert [(r["id"], r["lang"]) for r in rows] == [(e["id"], code) for e in english for code in ("en", lang)]
    assert all(isinstance(r["filter_reasons"], list) for r in rows if r["lang"] == lang)

    prompts = load_prompts(out / "prompts.jsonl", [lang, "en"], lang)
    assert [p["id"] for p in prompts[lang]] == [p["id"] for p in prompts["en"]] == [e["id"] for e in english]
    assert [p["prompt"] for p in prompts["en"]] == [e["instruction"] for e in english]
    translated = [r["prompt"] for r in rows if r["lang"] == lang]
    assert [p["prompt"] for p in prompts[lang]] == translated
    assert load_instructions(out / "prompts.jsonl", lang) == [
        {"id": e["id"], "instruction": t} for e, t in zip(english, translated, strict=True)]
    assert "3 of them" in (out / "data_card.md").read_text()


def test_multilingual_rows_hold_indonesian_under_its_iso3_code(tmp_path):
    from langshift.eval.alpaca_data import load_instructions
    from langshift.eval.suite import load_prompts

    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"id": "q1", "en": "Name a colour.", "ind": "Sebutkan sebuah warna."}) + "\n")
    assert load_prompts(path, ["id", "en"], "id") == {
        "id": [{"id": "q1", "prompt": "Sebutkan sebuah warna."}], "en": [{"id": "q1", "prompt": "Name a colour."}]}
    assert load_instructions(path, "id") == [{"id": "q1", "instruction": "Sebutkan sebuah warna."}]
