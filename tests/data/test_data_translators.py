"""Translator backends: language codes, CTranslate2 conversion (= HF at float32), the OpenAI endpoint."""

from __future__ import annotations

import json
import os

import pytest

from langshift.data.translators import (
    _codes,
    _marian_prefix,
    clean_llm_translation,
    convert,
    length_sorted_batches,
    make_translator,
)
from langshift.languages import get_language

pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")
TEXTS = [
    "Hello world.",
    "How are you today, my friend?",
    "Write a short poem about the sea.",
    "The capital of Kenya is Nairobi.",
    "x",
    "Please explain how a binary search works, step by step.",
]


def test_language_codes_per_family():
    sw, en, zh, ko = (get_language(c) for c in ("sw", "en", "zh", "ko"))
    assert _codes("m2m100", en, sw) == ("en", "__sw__")
    assert _codes("nllb", en, sw) == ("eng_Latn", "swh_Latn")
    assert _codes("nllb", en, zh) == ("eng_Latn", "zho_Hans")
    assert _codes("nllb", en, ko) == ("eng_Latn", "kor_Hang")
    assert _codes("nllb", en, get_language("yo")) == ("eng_Latn", "yor_Latn")
    assert _codes("marian", en, sw) == (None, None)


def test_length_sorted_batches():
    texts = ["ccc", "a", "bb", "dddd", "e"]
    batches = length_sorted_batches(texts, 2)
    assert batches == [[1, 4], [2, 0], [3]]
    assert sorted(i for b in batches for i in b) == list(range(5))


def test_hf_m2m100_forces_the_target_language(tiny_m2m100):
    tr = make_translator("hf", model=str(tiny_m2m100), beam_size=1, max_length=10, batch_size=4, device="cpu")
    assert tr.family == "m2m100"
    sw, de = tr.translate(TEXTS, "en", "sw"), tr.translate(TEXTS, "en", "de")
    assert len(sw) == len(TEXTS) and sw != de  # the forced first token (__sw__ / __de__) steers decoding
    assert not any("__sw__" in t for t in sw)  # language tokens are not part of the text
    # batching does not change results (padding is masked): batch of 1 == batch of 4
    one = make_translator(
        "hf", model=str(tiny_m2m100), beam_size=1, max_length=10, batch_size=1, device="cpu"
    )
    assert one.translate(TEXTS, "en", "sw") == sw


@pytest.mark.parametrize("family", ["m2m100", "marian", "nllb"])
def test_ctranslate2_float32_matches_hf(family, tiny_m2m100, tiny_marian, tmp_path):
    """Same model, greedy, float32: CTranslate2 must reproduce transformers token for token. This pins the
    language-token handling (target prefix, stripped on output) and the tokenizer round trip."""
    if family == "nllb":
        from langshift.testing.tiny_mt import make_tiny_nllb

        model = str(make_tiny_nllb(tmp_path / "nllb"))
    else:
        model = str(tiny_m2m100 if family == "m2m100" else tiny_marian)
    hf = make_translator("hf", model=model, beam_size=1, max_length=12, batch_size=3, device="cpu")
    assert hf.family == family
    ct2_dir = convert(model, tmp_path / "f32", quantization="float32")
    assert (ct2_dir / "model.bin").exists() and json.loads((ct2_dir / "langshift_ct2.json").read_text())[
        "source"
    ]
    ct = make_translator(
        "ctranslate2", model=str(ct2_dir), beam_size=1, max_length=12, batch_size=3, compute_type="float32"
    )
    want = hf.translate(TEXTS, "en", "sw")
    assert len(set(want)) > 1  # the tiny model's output depends on its input
    assert ct.translate(TEXTS, "en", "sw") == want


def test_ctranslate2_converts_an_hf_dir_on_the_fly(tiny_m2m100, tmp_path):
    tr = make_translator("ctranslate2", model=str(tiny_m2m100), beam_size=1, max_length=8)
    assert tr.path.parent == tmp_path / "langshift-cache" / "ct2" and (tr.path / "model.bin").exists()
    assert tr.compute_type == "int8"
    assert len(tr.translate(TEXTS[:2], "en", "sw")) == 2
    again = make_translator("ctranslate2", model=str(tiny_m2m100), beam_size=1, max_length=8)
    assert again.path == tr.path and again.identity == tr.identity  # converted once, reused


def test_cli_convert(tiny_marian, tmp_path):
    from typer.testing import CliRunner

    from langshift.cli import app

    res = CliRunner().invoke(
        app, ["data", "convert", "--model", str(tiny_marian), "--out", str(tmp_path / "ct2")]
    )
    assert res.exit_code == 0, res.output
    tr = make_translator("ctranslate2", model=str(tmp_path / "ct2"), beam_size=1, max_length=8)
    assert tr.family == "marian" and len(tr.translate(TEXTS[:3], "en", "sw")) == 3


def test_multi_target_marian_prefix(tmp_path, tiny_marian):
    from langshift.testing.tiny_mt import make_tiny_marian

    model = make_tiny_marian(tmp_path / "mul", targets=("sw", "de"))
    tr = make_translator("hf", model=str(model), beam_size=1, max_length=8, device="cpu")
    assert _marian_prefix(tr.tokenizer, get_language("sw")) == ">>sw<< "
    assert ">>sw<<" in tr.tokenizer.convert_ids_to_tokens(tr.tokenizer.encode(">>sw<< Hello."))  # one token
    assert len(tr.translate(["Hello."], "en", "de")) == 1
    assert (
        _marian_prefix(
            make_translator("hf", model=str(tiny_marian), device="cpu").tokenizer, get_language("yo")
        )
        == ""
    )
    with pytest.raises(ValueError, match="no token for Yoruba"):
        tr.translate(["Hello."], "en", "yo")


def test_clean_llm_translation():
    sw = get_language("sw")
    assert clean_llm_translation('  "Habari za asubuhi."  ', "Good morning.", sw) == "Habari za asubuhi."
    assert clean_llm_translation("Swahili: Habari.", "Hello.", sw) == "Habari."
    assert clean_llm_translation("Translation (Kiswahili): Habari.", "Hello.", sw) == "Habari."
    assert clean_llm_translation('"Habari," alisema.', '"Hello," he said.', sw) == '"Habari," alisema.'


@pytest.mark.server
@pytest.mark.slow
def test_openai_backend_against_llama_cpp_server(llm_server, tmp_path, monkeypatch):
    from langshift.data.build import build_dataset
    from langshift.data.filters import FilterConfig

    monkeypatch.setenv("LANGSHIFT_TEST_KEY", "sk-test-secret-123")
    tr = make_translator(
        "openai",
        model="smollm2",
        base_url=llm_server,
        api_key_env="LANGSHIFT_TEST_KEY",
        concurrency=2,
        max_length=24,
        max_retries=1,
        backoff=0.1,
    )
    rows = [
        {"id": "a", "en_prompt": "Say hello to my friend.", "en_response": "Hello! Run `greet()` now."},
        {"id": "b", "en_prompt": "Name a colour.", "en_response": "Blue. See https://example.org."},
    ]
    keep = FilterConfig(
        detector="none", min_ratio=0, max_ratio=1e9, copy_similarity=2.0, loop_min_chars=10**9
    )
    before = tr.client.usage.requests
    d = build_dataset(rows, "de", tr, tmp_path / "o", val_size=0, filter_config=keep)
    stats = json.loads((d / "filter_report.json").read_text())["stats"]
    assert tr.client.usage.requests - before == stats["unique_segments"] == stats["translated"]
    assert tr.client.usage.completion_tokens > 0
    recs = [json.loads(x) for x in (d / "records.jsonl").read_text().splitlines()]
    assert all(r["tgt_prompt"].strip() and r["tgt_prompt"] != r["en_prompt"] for r in recs)
    assert "`greet()`" in recs[0]["tgt_response"] and "https://example.org" in recs[1]["tgt_response"]
    # resumed from the cache: no request at all
    before = tr.client.usage.requests
    build_dataset(
        rows,
        "de",
        tr,
        tmp_path / "o2",
        cache_path=d / "translation_cache.sqlite",
        val_size=0,
        filter_config=keep,
    )
    assert tr.client.usage.requests == before
    # the key never lands in any output
    for f in (d / "data_card.md", d / "filter_report.json", d / "records.jsonl"):
        assert "sk-test-secret-123" not in f.read_text()
    assert os.environ["LANGSHIFT_TEST_KEY"] not in tr.identity


@pytest.mark.server
def test_openai_backend_retries_then_fails_cleanly(tmp_path):
    from langshift.llm_client import LLMError

    tr = make_translator(
        "openai", model="smollm2", base_url="http://127.0.0.1:9/v1", max_retries=1, backoff=0.01, timeout=2
    )
    with pytest.raises(LLMError, match="failed after 2 attempts"):
        tr.translate(["Hello."], "en", "sw")
