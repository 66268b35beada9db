"""The lean decode loop against HF `generate` and HF's own top-p warper."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from langshift.eval.decode import decode, nucleus_mask, prefill, sample, sample_next
from langshift.testing.tiny import make_tiny_model

TEXTS = ["Hello there, how are you today?", "Why?", "Tell me a story about the sea and the wind.", "Ok"]


def _left_padded(tok, texts):
    ids = [tok(t, add_special_tokens=False).input_ids for t in texts]
    width = max(map(len, ids))
    pad = tok.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    return input_ids, mask


def _hf_new_tokens(model, input_ids, mask, n, eos):
    out = model.generate(
        input_ids=input_ids,
        attention_mask=mask,
        max_new_tokens=n,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=-1 if eos is None else eos[0],
        temperature=None,
        top_p=None,
        top_k=None,
    )
    rows = []
    for row in out[:, input_ids.shape[1] :].tolist():
        kept = []
        for t in row:
            kept.append(t)
            if eos and t in eos:
                break
        rows.append(kept)
    return rows


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma", "gpt_neox"])
def test_greedy_equals_hf_generate_with_left_padding_and_early_stops(family, tmp_path):
    path = make_tiny_model(tmp_path, family)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    tok.pad_token = tok.pad_token or tok.eos_token
    input_ids, mask = _left_padded(tok, TEXTS)
    free = _hf_new_tokens(model, input_ids, mask, 12, None)
    # Stop on a token row 0 emits and another row never does: rows are dropped mid-batch.
    stop = [next(t for t in free[0] if any(t not in row for row in free[1:]))]
    ours = decode(model, input_ids, mask, max_new_tokens=12, stop_ids=stop, temperature=0)
    assert ours == _hf_new_tokens(model, input_ids, mask, 12, stop)
    assert len(ours[0]) < 12 and any(len(r) == 12 for r in ours)  # an early stop and a full-length row
    assert decode(model, input_ids, mask, max_new_tokens=12, stop_ids=[], temperature=0) == free


def test_stop_text_ends_a_row(tiny_llama):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    input_ids, mask = _left_padded(tok, TEXTS[:2])
    free = decode(model, input_ids, mask, max_new_tokens=10, stop_ids=[], temperature=0)
    target = free[1][:5]
    cut = decode(
        model, input_ids, mask, max_new_tokens=10, stop_ids=[], temperature=0, stop_text=lambda t: t == target
    )
    assert cut == [row[:5] if row[:5] == target else row for row in free]
    assert cut[1] == target and len(free[1]) == 10


def _hf_kept(logits, temperature, top_p):
    warped = TopPLogitsWarper(top_p)(None, TemperatureLogitsWarper(temperature)(None, logits.clone()))
    return torch.isfinite(warped)


def test_nucleus_is_hf_top_p():
    torch.manual_seed(0)
    logits = torch.randn(64, 500) * torch.linspace(0.5, 6, 64)[:, None]  # flat to peaked rows
    for temperature, top_p in [(0.6, 0.9), (1.0, 0.5), (1.3, 0.99)]:
        probs = torch.softmax(logits / temperature, -1)
        sorted_probs, index = probs.sort(-1, descending=True)
        ours = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, index, nucleus_mask(sorted_probs, top_p))
        assert torch.equal(ours, _hf_kept(logits, temperature, top_p))


@pytest.mark.parametrize("per_row", [False, True])  # the global generator, or one per row (llama.cpp's)
@pytest.mark.parametrize("candidates", [256, 3])  # 3: most rows' nucleus reaches past the candidates
def test_samples_stay_in_the_nucleus_with_its_frequencies(candidates, per_row):
    torch.manual_seed(1)
    logits = torch.randn(4, 50) * torch.tensor([[0.3], [1.0], [3.0], [8.0]])
    kept = _hf_kept(logits, 0.6, 0.9)
    draws = 4000
    generators = [torch.Generator().manual_seed(100 + row) for row in range(4)] if per_row else None
    tokens = torch.stack(
        [sample_next(logits, 0.6, 0.9, candidates=candidates, generators=generators) for _ in range(draws)]
    )  # [draws, rows]
    for row in range(logits.shape[0]):
        counts = torch.bincount(tokens[:, row], minlength=50).float()
        assert kept[row][counts > 0].all(), "a token outside the nucleus was sampled"
        expected = torch.softmax(logits[row] / 0.6, -1) * kept[row]
        expected = expected / expected.sum()
        assert (counts / draws - expected).abs().max() < 0.035


@pytest.mark.parametrize("candidates", [256, 3])
def test_a_row_with_its_own_generator_draws_the_same_whatever_shares_its_step(candidates):
    """The llama.cpp backend batches whichever responses are running: a response's tokens must follow
    from its own seed alone, not from its companions or its place among them."""
    torch.manual_seed(0)
    logits = torch.randn(5, 60) * 2

    def draws(rows: list[int]) -> list[list[int]]:
        gens = [torch.Generator().manual_seed(7 * r) for r in rows]
        return [sample_next(logits[rows], 1.0, 0.9, candidates=candidates, generators=gens).tolist()
                for _ in range(50)]

    alone = [[step[0] for step in draws([r])] for r in range(5)]
    together = draws([3, 0, 4, 1, 2])
    for place, row in enumerate([3, 0, 4, 1, 2]):
        assert [step[place] for step in together] == alone[row]
    assert len({tuple(a) for a in alone}) == 5  # different seeds, different draws (the check can fail)


def test_greedy_and_edge_cases(tiny_llama):
    logits = torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]])
    assert sample_next(logits, 0.0, 0.9).tolist() == [1, 0]
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    input_ids, mask = _left_padded(tok, TEXTS[:2])
    assert decode(model, input_ids, mask, max_new_tokens=0, stop_ids=[1]) == [[], []]


def test_a_selected_prefix_samples_as_the_full_batch_did(tiny_llama):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    input_ids, mask = _left_padded(tok, TEXTS)
    kw = dict(max_new_tokens=8, stop_ids=[], temperature=0)
    full = decode(model, input_ids, mask, **kw)
    prefix = prefill(model, input_ids, mask)
    again = sample(model, prefix.select([3, 1]), **kw)  # twice from one prefill: the copy leaves it intact
    assert again == sample(model, prefix.select([3, 1]), **kw) == [full[3], full[1]]
    assert sample(model, prefix, **kw) == full
