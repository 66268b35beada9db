"""The layout's exactness: prompts shared by their responses and rows packed without padding give every
sequence the log-probs it gets alone (and in a padded batch), on the tiny Llama, Qwen2, Gemma, Gemma-3 (a
sliding window of 8 tokens), GPT-NeoX, GPT-2 and Mistral families; a sharded model's bins, run as one
padded batch, give the same; a response cannot see the other response; a model whose attention ignores
custom masks falls back to one sequence per call and says so once."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from langshift import models
from langshift.records import Record
from langshift.testing.tiny import make_tiny_model
from langshift.train import logps as logps_module
from langshift.train.encode import ROLES, Encoder, Sequence
from langshift.train.layout import LayoutPlan, layout, make_rows, pack, scored_sequences, token_batches
from langshift.train.logps import ONE_PER_CALL, check_layout, plan_layout, sequence_logps

RECORDS = [
    Record("r1", "sw", "What is rain?", "Rain is water falling from clouds.", "Mvua ni nini?",
           "Mvua ni maji yanayoanguka kutoka mawinguni."),
    Record("r2", "sw", "Add 2 and 3, then explain the answer in two sentences.", "2 + 3 = 5. Two and three make five.",
           "Ongeza 2 na 3.", "Jibu: 5"),
    Record("r3", "sw", "Greet me.", "Good morning! I hope you slept well and are ready for the day.",
           "Nisalimie.", "Habari za asubuhi!"),
]
FAMILIES = ("llama", "qwen2", "gemma", "gemma3", "gpt_neox", "gpt2", "mistral")
TOL = dict(atol=1e-5, rtol=1e-5)  # fp32: per-sequence sums of log-probs


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tmp_path_factory):
    path = make_tiny_model(tmp_path_factory.mktemp(request.param), request.param)
    model = AutoModelForCausalLM.from_pretrained(path).eval()  # eval: GPT-2's dropout off
    return request.param, model, AutoTokenizer.from_pretrained(path)


def _seqs(tok) -> list[Sequence]:
    enc = Encoder(tok, models.chat_format(tok), max_length=512)
    return [s for r in RECORDS for s in (enc.encode(r)[role] for role in ROLES)]


def _padded_logps(model, seqs: list[Sequence], pad_id: int) -> torch.Tensor:
    """The four-row path with padding, computed the plain way: one right-padded batch, full logits."""
    width = max(len(s.ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    scored = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, :len(s.ids)] = torch.tensor(s.ids)
        mask[i, :len(s.ids)] = 1
        scored[i, s.prompt_len:len(s.ids)] = True
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
    token_logp = logits[:, :-1].log_softmax(-1).gather(2, ids[:, 1:, None]).squeeze(2)
    return (token_logp * scored[:, 1:]).sum(1)


def test_shared_and_packed_equal_four_rows(family):
    name, model, tok = family
    seqs = _seqs(tok)
    plan = plan_layout(model)
    assert plan.share and plan.mask == "sdpa", f"{name} fell back: {plan.why}"
    with torch.no_grad():
        alone, n_alone = sequence_logps(model, seqs, ONE_PER_CALL)  # four rows, each its own call: no padding
        packed, n_packed = sequence_logps(model, seqs, plan)  # two rows per record, all in one bin
        binned, _ = sequence_logps(model, seqs, LayoutPlan(True, 40, "sdpa", plan.window))  # many bins, some rows alone
        unshared, _ = sequence_logps(model, seqs, LayoutPlan(False, None, "sdpa", plan.window))  # packed, not shared
    padded = _padded_logps(model, seqs, tok.pad_token_id)  # four rows in one padded batch
    assert n_packed.tolist() == n_alone.tolist() == [len(s.ids) - s.prompt_len for s in seqs]
    for got in (packed, binned, unshared):
        torch.testing.assert_close(got, alone, **TOL)
        torch.testing.assert_close(got, padded, **TOL)
    assert layout(seqs, plan)["input_ids"].numel() < sum(len(s.ids) for s in seqs)  # prompts once


@pytest.mark.parametrize("mask", ["sdpa", "eager", "none"])
def test_stacked_bins_of_a_sharded_model_equal_the_bin_loop(family, mask, monkeypatch):
    """Under FSDP every rank must call each layer equally often, so a sharded model's bins run as one
    right-padded batch (`logps._stacked_hidden`): the log-probs and their gradients are the loop's."""
    name, model, tok = family
    seqs = _seqs(tok)
    plan = LayoutPlan(mask != "none", None if mask == "none" else 40, mask, plan_layout(model).window)
    if mask == "eager":
        model.config._attn_implementation = "eager"
    assert len(layout(seqs, plan)["bins"]) > 3  # several bins, of different widths

    def run():
        model.zero_grad()
        got, _ = sequence_logps(model, seqs, plan)
        got.sum().backward()
        return got.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    try:
        loop, loop_grads = run()
        monkeypatch.setattr(logps_module, "is_sharded", lambda lm: True)
        stacked, stacked_grads = run()
    finally:
        model.config._attn_implementation = "sdpa"
        model.zero_grad()
    torch.testing.assert_close(stacked, loop, **TOL)
    for a, b in zip(stacked_grads, loop_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_a_response_cannot_see_the_other_response(family):
    _, model, tok = family
    enc = Encoder(tok, models.chat_format(tok), max_length=512).encode(RECORDS[0])
    w, rej = enc["en_chosen"], enc["en_rejected"]
    other = Sequence(rej.ids[:rej.prompt_len] + [t + 1 if t + 1 < len(tok) else 5 for t in rej.ids[rej.prompt_len:]],
                     rej.prompt_len)
    own = Sequence(w.ids[:-2] + [(w.ids[-2] + 7) % len(tok), w.ids[-1]], w.prompt_len)
    plan = LayoutPlan(True, None, "sdpa", plan_layout(model).window)
    with torch.no_grad():
        base, _ = sequence_logps(model, [w, rej], plan)
        other_changed, _ = sequence_logps(model, [w, other], plan)
        own_changed, _ = sequence_logps(model, [own, rej], plan)
    assert len(make_rows([w, rej], share=True)) == 1  # one row: the two responses share the prompt
    torch.testing.assert_close(other_changed[0], base[0], atol=1e-6, rtol=0)  # chosen: untouched
    assert (other_changed[1] - base[1]).abs() > 1e-3  # the perturbation is real
    assert (own_changed[0] - base[0]).abs() > 1e-3  # ... and would be seen if it were visible
    torch.testing.assert_close(own_changed[1], base[1], atol=1e-6, rtol=0)


def test_logps_gradients_match_four_rows(tiny_llama):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    seqs = _seqs(AutoTokenizer.from_pretrained(tiny_llama))
    grads = []
    for plan in (ONE_PER_CALL, LayoutPlan(True, 64, "sdpa")):
        model.zero_grad()
        sequence_logps(model, seqs, plan)[0].sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-5, rtol=1e-4)


def test_layout_holds_every_sequence_once_without_padding(tiny_llama):
    seqs = _seqs(AutoTokenizer.from_pretrained(tiny_llama))
    for plan in (LayoutPlan(True, 64, "sdpa"), LayoutPlan(True, None, "sdpa"), ONE_PER_CALL):
        batch = layout(seqs, plan)
        assert scored_sequences(batch) == [s.ids for s in seqs]
        rows = make_rows(seqs, plan.share and plan.mask != "none")
        assert batch["input_ids"].numel() == sum(len(r) for r in rows)  # every token real: no padding
        bins = batch["bins"].tolist()
        assert bins[0] == 0 and bins[-1] == batch["input_ids"].numel()
        if plan.bin_tokens:  # a bin passes its budget only when it holds one row longer than it
            for start, end in zip(bins[:-1], bins[1:], strict=True):
                assert end - start <= plan.bin_tokens or len(set(batch["row"][start:end].tolist())) == 1
    assert len(make_rows(seqs, share=True)) == 2 * len(RECORDS)  # CLO: two rows per record


def test_pack_first_fit_decreasing():
    assert pack([5, 3, 9, 4, 1], 9) == [[2], [0, 3], [1, 4]]
    assert pack([12, 2], 9) == [[0], [1]]  # too long: alone
    assert pack([1, 2, 3], None) == [[2, 1, 0]]
    assert pack([], 9) == []


def test_reference_batches_keep_rows_whole(tiny_llama):
    seqs = _seqs(AutoTokenizer.from_pretrained(tiny_llama))
    batches = token_batches(seqs, budget=60, share=True)
    assert sorted(i for b in batches for i in b) == list(range(len(seqs)))
    for r in make_rows(seqs, share=True):  # the two responses of a prompt are scored in the same forward
        assert any(set(r.seqs) <= set(b) for b in batches)


def _causal_only(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
    """An attention kernel that takes no custom mask: it always attends causally (as a flash kernel
    without varlen support would), whatever mask it is handed."""
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling,
                                                           enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


def test_model_that_ignores_the_mask_falls_back_and_says_so_once(tiny_llama, capsys):
    from transformers import AttentionInterface

    AttentionInterface.register("causal_only", _causal_only)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, attn_implementation="causal_only").eval()
    seqs = _seqs(AutoTokenizer.from_pretrained(tiny_llama))
    logps_module._said.clear()
    plans = [plan_layout(model) for _ in range(2)]
    assert plans[0] == plans[1] == LayoutPlan(False, None, "none")
    assert "takes no custom mask" in plans[0].why
    # a kernel under a known name that still ignores the mask: caught by the check on random tokens
    checked = check_layout(model, LayoutPlan(True, None, "sdpa"))
    assert checked.mask == "none" and "changes its log-probs" in checked.why
    err = capsys.readouterr().err
    assert err.count("one sequence per decoder call") == 2  # one line per reason, each said once
    with torch.no_grad():
        got, _ = sequence_logps(model, seqs, plans[0])
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    torch.testing.assert_close(got, _padded_logps(reference, seqs, 3), **TOL)
