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

CHUNK_TOKENS = 1024


def _causal_lm(model):
    """The transformers *ForCausalLM inside PEFT or accelerate wrappers."""
    while True:
        if hasattr(model, "get_base_model"):  # peft.PeftModel
            model = model.get_base_model()
        elif hasattr(model, "module"):  # DDP
            model = model.module
        else:
            return model


def _chunk_logps(head, softcap: float | None, hidden: Tensor, targets: Tensor) -> Tensor:
    logits = head(hidden).float()
    if softcap:  # Gemma 2/3 cap their final logits
        logits = torch.tanh(logits / softcap) * softcap
    return torch.gather(logits.log_softmax(-1), 1, targets[:, None]).squeeze(1)


def completion_logps(lm, input_ids: Tensor, attention_mask: Tensor, completion_mask: Tensor,
                     chunk_tokens: int = CHUNK_TOKENS) -> tuple[Tensor, Tensor]:
    """(sum of completion-token log-probs, completion length) per row of the batch.

    `completion_mask[b, t]` is 1 where token t of row b belongs to the response; its log-prob comes
    from the hidden state at t-1.
    """
    decoder = getattr(lm, lm.base_model_prefix)
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    predict = completion_mask[:, 1:].bool()  # positions t-1 that predict a completion token t
    rows = predict.nonzero(as_tuple=True)[0]
    h = hidden[:, :-1][predict]
    targets = input_ids[:, 1:][predict]
    head = lm.get_output_embeddings()
    cfg = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
    softcap = getattr(cfg, "final_logit_softcapping", None)
    pieces = []
    for start in range(0, h.shape[0], chunk_tokens):
        hs, ts = h[start:start + chunk_tokens], targets[start:start + chunk_tokens]
        if torch.is_grad_enabled():
            pieces.append(checkpoint(_chunk_logps, head, softcap, hs, ts, use_reentrant=False))
        else:
            pieces.append(_chunk_logps(head, softcap, hs, ts))
    token_logps = torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)
    n = input_ids.shape[0]
    sums = torch.zeros(n, dtype=torch.float32, device=input_ids.device).index_add(0, rows, token_logps)
    return sums, predict.sum(1)


def _forward(self, input_ids=None, attention_mask=None, completion_mask=None, **_):
    logps, n_tokens = completion_logps(self, input_ids, attention_mask, completion_mask)
    return {"logps": logps, "n_tokens": n_tokens}


def install_logps_forward(model):
    """Make `model(input_ids, attention_mask, completion_mask)` return {"logps", "n_tokens"}.

    Returns a function that restores the original forward (needed before `generate`)."""
    lm = _causal_lm(model)
    lm.forward = types.MethodType(_forward, lm)
    return lambda: lm.__dict__.pop("forward", None)
