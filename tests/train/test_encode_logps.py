import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from langshift import models
from langshift.records import Record
from langshift.train.encode import Encoder
from langshift.train.layout import LayoutPlan, layout
from langshift.train.logps import install_logps_forward, layout_logps

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


def _full_logits_logps(model, seqs):
    """Reference: each sequence alone through the plain forward, full-vocabulary logits."""
    out = []
    for s in seqs:
        ids = torch.tensor([s.ids])
        logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1).gather(1, ids[0, 1:, None]).squeeze(1)
        out.append(logp[s.prompt_len - 1:].sum())
    return torch.stack(out)


PLAN = LayoutPlan(True, None, "sdpa")


def test_chunked_logps_match_full_logits(tiny):
    model, tok = tiny
    seqs = list(Encoder(tok, models.chat_format(tok), max_length=512).encode(REC).values())
    got, n = layout_logps(model, layout(seqs, PLAN), PLAN, chunk_tokens=7)  # several chunks
    torch.testing.assert_close(got, _full_logits_logps(model, seqs), atol=1e-4, rtol=1e-5)
    assert n.tolist() == [len(s.ids) - s.prompt_len for s in seqs]


def test_logps_gradients_match_full_logits(tiny):
    model, tok = tiny
    seqs = list(Encoder(tok, models.chat_format(tok), 512).encode(REC).values())
    w = model.lm_head.weight if model.lm_head.weight.requires_grad else model.model.embed_tokens.weight
    model.zero_grad()
    layout_logps(model, layout(seqs, PLAN), PLAN, chunk_tokens=5)[0].sum().backward()
    ours = w.grad.clone()
    model.zero_grad()
    _full_logits_logps(model, seqs).sum().backward()
    torch.testing.assert_close(ours, w.grad, atol=1e-5, rtol=1e-4)
    model.zero_grad()


def test_installed_forward_is_removable(tiny):
    model, tok = tiny
    batch = layout(list(Encoder(tok, models.chat_format(tok), 512).encode(REC).values()), PLAN)
    restore = install_logps_forward(model, PLAN)
    out = model(**batch)
    assert set(out) == {"logps", "n_tokens"}
    restore()
    assert model(input_ids=batch["input_ids"][None]).logits.shape[-1] == len(tok)


@pytest.mark.parametrize("trainable", ["attention", "full"])
def test_frozen_and_trainable_head_gradients_match_full_logits(tiny_llama, trainable):
    """A frozen head (attention-only) takes FrozenHeadLogps, a trainable one checkpointed chunks: both
    give the gradients of the plain full-logits computation."""
    from langshift.train.params import select_trainable

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    seqs = list(Encoder(tok, models.chat_format(tok), 512).encode(REC).values())
    grads = []
    for path in ("layout", "full"):
        model = select_trainable(AutoModelForCausalLM.from_pretrained(tiny_llama), trainable)
        lp = layout_logps(model, layout(seqs, PLAN), PLAN, chunk_tokens=6)[0] if path == "layout" else \
            _full_logits_logps(model, seqs)
        (lp * torch.tensor([1.0, -0.5, 2.0, 0.25])).sum().backward()  # unequal weights per sequence
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_frozen_head_gradient_is_the_autograd_gradient(softcap):
    """FrozenHeadLogps writes its gradient out (W^T (onehot - softmax), times 1 - tanh^2 under Gemma's
    softcap): it equals autograd's through the plain chunk, and its values are the chunk's."""
    from langshift.train.logps import FrozenHeadLogps, _chunk_logps

    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=False).requires_grad_(False)
    head.weight.copy_(torch.randn(50, 8, generator=g) * 3)  # large logits: the softcap bites
    hidden = torch.randn(7, 8, generator=g, dtype=torch.float32)
    targets = torch.randint(50, (7,), generator=g)
    weights = torch.randn(7, generator=g)
    h1, h2 = hidden.clone().requires_grad_(True), hidden.clone().requires_grad_(True)
    ours = FrozenHeadLogps.apply(h1, head, softcap, targets)
    plain = _chunk_logps(head, softcap, h2, targets)
    (ours * weights).sum().backward()
    (plain * weights).sum().backward()
    torch.testing.assert_close(ours, plain.detach(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(h1.grad, h2.grad, atol=1e-5, rtol=1e-5)
