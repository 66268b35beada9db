"""Per-sequence completion log-probs from one batched forward, without full-vocabulary logits.

A 49k-entry vocabulary makes the (batch, length, vocab) logits tensor the largest activation of a
small model. We run the decoder stack, gather the hidden states of completion positions only, and
project them through the LM head in chunks; each chunk is checkpointed, so backward recomputes its
logits instead of keeping them. Result: log pi(y|x) summed per sequence, and |y|.

The computation is installed as the model's `forward` (the pattern accelerate uses for autocast), so
`Trainer` wraps and calls the model as usual and DDP/FSDP see a normal forward pass.
"""

from __future__ import annotations

import types

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from langshift.models import causal_lm

CHUNK_TOKENS = 1024


def _chunk_logps(head, softcap: float | None, hidden: Tensor, targets: Tensor) -> Tensor:
    logits = head(hidden).float()
    if softcap:  # Gemma 2/3 cap their final logits
        logits = torch.tanh(logits / softcap) * softcap
    return torch.gather(logits.log_softmax(-1), 1, targets[:, None]).squeeze(1)


def length_buckets(lengths: list[int], max_waste: float = 0.1) -> list[list[int]]:
    """Group row indices (longest first) so that padding each group to its longest row wastes at most
    `max_waste` of the group's real tokens: one padded batch of mixed lengths (CLO's y_en and y_t differ
    by ~2x in an English-centric tokenizer) would spend a third of its compute on padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    buckets: list[list[int]] = []
    for i in order:
        if buckets:
            b = buckets[-1]
            width, real = lengths[b[0]], sum(lengths[j] for j in b) + lengths[i]
            if width * (len(b) + 1) <= (1 + max_waste) * real:
                b.append(i)
                continue
        buckets.append([i])
    return buckets


def completion_logps(lm, input_ids: Tensor, attention_mask: Tensor, completion_mask: Tensor,
                     chunk_tokens: int = CHUNK_TOKENS, max_waste: float = 0.1) -> tuple[Tensor, Tensor]:
    """(sum of completion-token log-probs, completion length) per row of a right-padded batch.

    `completion_mask[b, t]` is 1 where token t of row b belongs to the response; its log-prob comes
    from the hidden state at t-1. Rows run through the decoder in length buckets, each trimmed to its
    own longest row.
    """
    decoder = getattr(lm, lm.base_model_prefix)
    head = lm.get_output_embeddings()
    cfg = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
    softcap = getattr(cfg, "final_logit_softcapping", None)
    lengths = attention_mask.sum(1).tolist()
    sums = torch.zeros(input_ids.shape[0], dtype=torch.float32, device=input_ids.device)
    for bucket in length_buckets(lengths, max_waste):
        idx = torch.tensor(bucket, device=input_ids.device)
        width = max(lengths[i] for i in bucket)
        ids, mask, comp = input_ids[idx, :width], attention_mask[idx, :width], completion_mask[idx, :width]
        hidden = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        predict = comp[:, 1:].bool()  # positions t-1 that predict a completion token t
        rows = idx[predict.nonzero(as_tuple=True)[0]]
        h, targets = hidden[:, :-1][predict], ids[:, 1:][predict]
        for start in range(0, h.shape[0], chunk_tokens):
            hs, ts = h[start:start + chunk_tokens], targets[start:start + chunk_tokens]
            if torch.is_grad_enabled():
                logps = checkpoint(_chunk_logps, head, softcap, hs, ts, use_reentrant=False)
            else:
                logps = _chunk_logps(head, softcap, hs, ts)
            sums = sums.index_add(0, rows[start:start + chunk_tokens], logps)
    return sums, completion_mask[:, 1:].sum(1)


def _forward(self, input_ids=None, attention_mask=None, completion_mask=None, **_):
    logps, n_tokens = completion_logps(self, input_ids, attention_mask, completion_mask)
    return {"logps": logps, "n_tokens": n_tokens}


def install_logps_forward(model):
    """Make `model(input_ids, attention_mask, completion_mask)` return {"logps", "n_tokens"}.

    Returns a function that restores the original forward (needed before `generate`)."""
    lm = causal_lm(model)
    lm.forward = types.MethodType(_forward, lm)
    return lambda: lm.__dict__.pop("forward", None)
