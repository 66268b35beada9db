import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from langshift import models
from langshift.records import Record
from langshift.train.encode import Encoder, pad_batch
from langshift.train.logps import completion_logps, install_logps_forward

REC = Record("r1", "sw", "What is rain?", "Rain is water falling from clouds.", "Mvua ni nini?",
             "Mvua ni maji yanayoanguka kutoka mawinguni.")


@pytest.fixture(scope="module")
def tiny(tiny_llama):
    return AutoModelForCausalLM.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(tiny_llama)


def test_four_sequences_share_prompts_and_responses(tiny):
    _, tok = tiny
    fmt = models.chat_format(tok)
    seqs = Encoder(tok, fmt, max_length=512).encode(REC)
    en_w, en_l, t_w, t_l = (seqs[k] for k in ("en_chosen", "en_rejected", "tgt_chosen", "tgt_rejected"))
    assert en_w.ids[: en_w.prompt_len] == en_l.ids[: en_l.prompt_len]  # same prompt x_en
    assert t_w.ids[t_w.prompt_len:] == en_l.ids[en_l.prompt_len:]  # y_t in both
    assert en_w.ids[en_w.prompt_len:] == t_l.ids[t_l.prompt_len:]  # y_en in both
    completion = tok.decode(t_w.ids[t_w.prompt_len:])
    assert completion == REC.tgt_response + fmt.end  # the loss covers the response and the turn end
    assert tok.decode(t_w.ids[: t_w.prompt_len]) == fmt.prompt_text(tok, REC.tgt_prompt)


def test_truncation_cuts_responses_and_counts(tiny):
    _, tok = tiny
    long = Record("r2", "sw", "Q?", "word " * 300, "S?", "neno " * 300)
    enc = Encoder(tok, models.chat_format(tok), max_length=40)
    seqs = enc.encode(long)
    assert all(len(s.ids) == 40 for s in seqs.values())
    assert all(len(s.ids) > s.prompt_len for s in seqs.values())
    assert enc.report.response_truncated == 4 and enc.report.tokens_cut > 0
    enc2 = Encoder(tok, models.chat_format(tok), max_length=24, min_response_tokens=8)
    s = enc2.encode(Record("r3", "sw", "long question " * 40, "a", "swali " * 40, "b"))["en_chosen"]
    assert len(s.ids) <= 24 and enc2.report.prompt_truncated == 4


def test_chunked_logps_match_full_logits(tiny):
    model, tok = tiny
    seqs = list(Encoder(tok, models.chat_format(tok), max_length=512).encode(REC).values())
    batch = pad_batch(seqs, tok.pad_token_id)
    got, n = completion_logps(model, **batch, chunk_tokens=7)  # several chunks
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = logits[:, :-1].log_softmax(-1).gather(2, batch["input_ids"][:, 1:, None]).squeeze(2)
    want = (logp * batch["completion_mask"][:, 1:]).sum(1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
    assert n.tolist() == [len(s.ids) - s.prompt_len for s in seqs]


def test_logps_gradients_match_full_logits(tiny):
    model, tok = tiny
    batch = pad_batch(list(Encoder(tok, models.chat_format(tok), 512).encode(REC).values()), tok.pad_token_id)
    w = model.lm_head.weight if model.lm_head.weight.requires_grad else model.model.embed_tokens.weight
    model.zero_grad()
    completion_logps(model, **batch, chunk_tokens=5)[0].sum().backward()
    ours = w.grad.clone()
    model.zero_grad()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    lp = logits[:, :-1].log_softmax(-1).gather(2, batch["input_ids"][:, 1:, None]).squeeze(2)
    (lp * batch["completion_mask"][:, 1:]).sum().backward()
    torch.testing.assert_close(ours, w.grad, atol=1e-5, rtol=1e-4)
    model.zero_grad()


def test_installed_forward_is_removable(tiny):
    model, tok = tiny
    batch = pad_batch(list(Encoder(tok, models.chat_format(tok), 512).encode(REC).values()), tok.pad_token_id)
    restore = install_logps_forward(model)
    out = model(**batch)
    assert set(out) == {"logps", "n_tokens"}
    restore()
    assert model(input_ids=batch["input_ids"]).logits.shape[-1] == len(tok)


def test_length_buckets_bound_padding():
    from langshift.train.logps import length_buckets

    lengths = [111, 186, 200, 125, 90, 270, 150, 300]
    buckets = length_buckets(lengths, max_waste=0.1)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    for b in buckets:
        assert max(lengths[i] for i in b) * len(b) <= 1.1 * sum(lengths[i] for i in b)
    assert length_buckets([5, 5, 5]) == [[0, 1, 2]]
