"""`generation_backend: auto`: the pick follows its rule from remembered measurements (no timing is
asserted), measures only where it can pay, once per model shape and machine, and never lets a crashing
llama.cpp end an evaluation."""

from __future__ import annotations

import json
import types

import pytest
import torch

from langshift.eval import backend_pick
from langshift.eval.backend_pick import Pick, pick, resolve_backend, setting_key
from langshift.eval.generate import generate_responses, generation_key

PROMPTS = [{"id": f"p{i}", "prompt": f"Swali namba {i}: habari gani?"} for i in range(8)]
# A model with fixed costs: llama.cpp is 2x faster per token but pays 10 s to start and 20 s to export.
MEASURED = {"hf_s_per_token": 0.01, "cpp_s_per_token": 0.005, "start_s": 10.0, "export_s": 20.0,
            "measured": "2026-12-06"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANGSHIFT_CACHE", str(tmp_path / "cache"))


def _cache(tmp_path) -> dict:
    path = tmp_path / "cache" / backend_pick.CACHE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def test_the_rule_weighs_fixed_costs_against_the_per_token_gain():
    # torch: n * 0.01; llama.cpp: 10 (+20 export) + n * 0.005; MARGIN 0.9 -> crossover where 0.005 n + f = 0.009 n
    assert pick(MEASURED, 2_000, exported=True).backend == "hf"  # 20 s against 20 s: a tie keeps torch
    assert pick(MEASURED, 3_000, exported=True).backend == "llamacpp"  # 25 s against 30 s
    assert pick(MEASURED, 3_000, exported=False).backend == "hf"  # the export makes it 45 s
    assert pick(MEASURED, 10_000, exported=False).backend == "llamacpp"  # 80 s against 100 s
    slower = {**MEASURED, "cpp_s_per_token": 0.0095}  # 5 % faster per token: within the margin, torch stays
    assert pick(slower, 10**9, exported=True).backend == "hf"
    said = pick(MEASURED, 10_000, exported=False).reason
    assert "80 s with llama.cpp against 100 s with torch" in said


def test_a_crash_measured_keeps_torch_and_says_why():
    chosen = pick({**MEASURED, "crash": "llama.cpp (generate_timed) in a child process exited with SIGILL"}, 10**6,
                  exported=True)
    assert chosen == Pick("hf", "llama.cpp crashed when measured: llama.cpp (generate_timed) in a child process "
                                "exited with SIGILL")


def test_what_is_asked_for_by_name_is_kept():
    assert resolve_backend("llamacpp", object(), None, PROMPTS, samples=1, max_new_tokens=8, batch_size=4,
                           temperature=0.6, top_p=0.9) == Pick("llamacpp", "asked for")


def test_torch_without_measuring_off_the_cpu_for_regenerations_and_unknown_architectures(tiny_gpt2, tmp_path):
    from langshift.models import load

    kw = dict(samples=1, max_new_tokens=10**6, batch_size=4, temperature=0.6, top_p=0.9)
    on_gpu = types.SimpleNamespace(device=torch.device("cuda", 0))
    assert resolve_backend("auto", on_gpu, None, PROMPTS, **kw) == Pick("hf", "the model is on cuda:0")
    assert resolve_backend("auto", object(), None, PROMPTS, regenerations=True, **kw).backend == "hf"
    model, tok = load(tiny_gpt2, dtype="float32")
    chosen = resolve_backend("auto", model, tok, PROMPTS, **kw)
    assert chosen.backend == "hf" and "GPT2LMHeadModel" in chosen.reason
    assert not _cache(tmp_path)  # nothing was measured


def test_a_small_evaluation_is_not_worth_a_measurement(tiny_llama, tmp_path, monkeypatch):
    from langshift.models import load

    model, tok = load(tiny_llama, dtype="float32")
    monkeypatch.setattr(backend_pick, "measure", lambda *a, **k: pytest.fail("measured a small evaluation"))
    # 8 prompts x 16 tokens = 128 new tokens, the probe's own would be 4 x 16 = 64: less than 4x
    chosen = resolve_backend("auto", model, tok, PROMPTS, samples=1, max_new_tokens=16, batch_size=4,
                             temperature=0.6, top_p=0.9)
    assert chosen.backend == "hf" and "too few" in chosen.reason


def test_a_measurement_is_made_once_per_model_shape_and_then_read(tiny_llama, tmp_path, monkeypatch):
    """A real measurement (torch, then llama.cpp in a child) on the tiny Llama, remembered; a fine-tune of
    the same shape (other weights) is picked from the memory, without measuring."""
    from langshift.models import load

    model, tok = load(tiny_llama, dtype="float32")
    kw = dict(samples=2, max_new_tokens=8, batch_size=2, temperature=0.6, top_p=0.9)
    prompts = PROMPTS  # 8 prompts x 2 samples x 8 tokens = 128 >= 4 x (2 x 2 x 8), the probe's tokens
    chosen = resolve_backend("auto", model, tok, prompts, **kw)
    [(key, measured)] = _cache(tmp_path).items()
    assert key == setting_key(model, batch_size=2, samples=2, probe_tokens=8, greedy=False)
    assert measured["hf_s_per_token"] > 0 and measured["cpp_s_per_token"] > 0 and measured["start_s"] > 0
    assert measured["export_s"] > 0 and measured["probe"] == "2 prompts x 2 x 8 tokens"
    assert chosen == pick(measured, 8 * 2 * 8, exported=True)  # the probe exported this model's GGUF
    # measured again with that GGUF cached, the export other fine-tunes pay is still timed, not taken as 0
    again = backend_pick.measure(model, tok, prompts[:2], samples=2, probe_tokens=8, temperature=0.6, top_p=0.9)
    assert again["export_s"] > 0

    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # another model of the same shape
    monkeypatch.setattr(backend_pick, "measure", lambda *a, **k: pytest.fail("measured the same shape again"))
    again = resolve_backend("auto", model, tok, prompts, **kw)
    assert again == pick(measured, 128, exported=False)  # its own GGUF is not exported yet
    other_setting = setting_key(model, batch_size=4, samples=2, probe_tokens=8, greedy=False)
    assert other_setting != key


def test_a_crash_while_measuring_is_named_remembered_and_torch_generates(tiny_llama, tmp_path, sigill_lib,
                                                                        monkeypatch, caplog):
    from langshift.models import load

    model, tok = load(tiny_llama, dtype="float32")
    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", str(sigill_lib))
    kw = dict(max_new_tokens=8, batch_size=2, temperature=0.6, top_p=0.9, backend="auto")
    with caplog.at_level("WARNING", logger="langshift"):
        rows = generate_responses(model, tok, PROMPTS, tmp_path / "r.jsonl", **kw)
    assert "exited with SIGILL" in caplog.text
    hf_key = generation_key(max_new_tokens=8, temperature=0.6, top_p=0.9, seed=0, system=None, backend="hf")
    assert len(rows) == len(PROMPTS) and {r["settings"] for r in rows} == {hf_key}
    [measured] = _cache(tmp_path).values()
    assert "SIGILL" in measured["crash"]


@pytest.mark.parametrize("faster", ["hf", "llamacpp"])
def test_responses_come_from_the_backend_the_memory_picks(tiny_llama, tmp_path, monkeypatch, faster):
    """With a remembered measurement saying which backend is faster, the responses are that backend's
    (their settings key names it)."""
    from langshift.files import write_json
    from langshift.models import load

    model, tok = load(tiny_llama, dtype="float32")
    kw = dict(max_new_tokens=8, batch_size=2, temperature=0.6, top_p=0.9)
    key = setting_key(model, batch_size=2, samples=1, probe_tokens=8, greedy=False)
    rates = (0.01, 0.0001) if faster == "llamacpp" else (0.001, 0.01)  # (torch, llama.cpp) s per token
    write_json(tmp_path / "cache" / backend_pick.CACHE_FILE,
               {key: {**MEASURED, "hf_s_per_token": rates[0], "cpp_s_per_token": rates[1], "start_s": 0.0,
                      "export_s": 0.0}})
    rows = generate_responses(model, tok, PROMPTS, tmp_path / "r.jsonl", backend="auto", **kw)
    expected = generation_key(max_new_tokens=8, temperature=0.6, top_p=0.9, seed=0, system=None, backend=faster)
    assert {r["settings"] for r in rows} == {expected}


def test_a_crash_after_auto_picked_llama_cpp_is_named_and_torch_generates(tiny_llama, tmp_path, sigill_lib,
                                                                          monkeypatch, caplog):
    """auto picked llama.cpp for speed: a llama.cpp that then dies is a warning, never a dead evaluation.
    Asked for by name, the same crash is the error (tests/eval/test_llamacpp.py)."""
    from langshift.files import write_json
    from langshift.models import load

    model, tok = load(tiny_llama, dtype="float32")
    key = setting_key(model, batch_size=2, samples=1, probe_tokens=8, greedy=False)
    write_json(tmp_path / "cache" / backend_pick.CACHE_FILE,
               {key: {**MEASURED, "hf_s_per_token": 0.01, "cpp_s_per_token": 0.0001, "start_s": 0.0, "export_s": 0.0}})
    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", str(sigill_lib))
    with caplog.at_level("WARNING", logger="langshift"):
        rows = generate_responses(model, tok, PROMPTS, tmp_path / "r.jsonl", backend="auto", max_new_tokens=8,
                                  batch_size=2, temperature=0.6, top_p=0.9)
    assert "exited with SIGILL" in caplog.text and "generating with torch instead" in caplog.text
    hf_key = generation_key(max_new_tokens=8, temperature=0.6, top_p=0.9, seed=0, system=None, backend="hf")
    assert len(rows) == len(PROMPTS) and {r["settings"] for r in rows} == {hf_key}
