"""Per-sequence completion log-probs from one laid-out forward, without full-vocabulary logits.

The batch is a layout (train/layout.py): prompts shared by their responses, rows packed into bins with no
padding. Each bin goes through the decoder stack once, with the attention mask of train/attention.py and
each token's own position. A 49k-entry vocabulary makes the logits the largest activation of a small
model, so only the hidden states that predict a response token go through the LM head, in chunks, and no
chunk's logits outlive it: with a frozen head (attention-only or LoRA training) a chunk's gradient with
respect to its hidden states is formed while its logits exist (`FrozenHeadLogps`, two head passes); a
trainable head's chunks are checkpointed instead (backward recomputes the logits, three passes). Result:
log pi(y|x) summed per sequence, and |y|.

The computation is installed as the model's `forward` (the pattern accelerate uses for autocast), so
`Trainer` wraps and calls the model as usual and DDP/FSDP see a normal forward pass.

`plan_layout` chooses the layout a model can take and checks it once on a few random tokens against
plain one-sequence forwards: a model whose attention cannot take a custom mask (an implementation not in
`attention.MASKS`, a remote-code model that ignores the mask, an unknown kind of layer) falls back to one
sequence per decoder call, no prefix sharing, and says so once.
"""

from __future__ import annotations

import sys
import types

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from langshift.models import causal_lm
from langshift.train.attention import FULL, MASKS, SLIDING, bin_mask, layer_kinds, stacked_mask
from langshift.train.config import DEVICE_DEFAULTS
from langshift.train.encode import Sequence
from langshift.train.layout import LAYOUT_KEYS, LayoutPlan, layout

CHUNK_TOKENS = 1024
ONE_PER_CALL = LayoutPlan(share=False, bin_tokens=None, mask="none")
_said: set[str] = set()


def say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        print(f"[langshift] {message}", file=sys.stderr, flush=True)


def _text_config(lm):
    return lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config


def _chunk_logps(head, softcap: float | None, hidden: Tensor, targets: Tensor) -> Tensor:
    logits = head(hidden).float()
    if softcap:  # Gemma 2/3 cap their final logits
        logits = torch.tanh(logits / softcap) * softcap
    return torch.gather(logits.log_softmax(-1), 1, targets[:, None]).squeeze(1)


class FrozenHeadLogps(torch.autograd.Function):
    """log p(target_t | h_t) through a frozen linear LM head W, its gradient with respect to h formed in forward.

    A token's log-prob depends on its own hidden state only, so its gradient is one (S, H) tensor that
    can be formed while the logits z = W h exist:

        d log p_t / d h_t = W^T (onehot(t) - softmax(z_t))                      (no softcap)
        d log p_t / d h_t = W^T ((onehot(t) - softmax(c tanh(z_t / c))) * (1 - tanh^2(z_t / c)))   (softcap c)

    Backward scales it by the incoming gradient. The logits are neither kept nor recomputed, as in the
    fused linear cross-entropy of Liger-Kernel: forward and backward together cost two passes through the
    head instead of the three of a checkpointed chunk. The gradient is written out, not asked of autograd:
    a backward run inside the forward would fire FSDP's backward hooks on the head's shard group early,
    which frees the final norm's gathered weight before the real backward reads it (a segfault on CPU)."""

    @staticmethod
    def forward(ctx, hidden: Tensor, head, softcap: float | None, targets: Tensor) -> Tensor:
        with torch.no_grad():
            z = head(hidden).float()
            squash = torch.tanh(z / softcap) if softcap else None
            logps_all = (squash * softcap if softcap else z).log_softmax(-1)
            logps = logps_all.gather(1, targets[:, None]).squeeze(1)
            dz = logps_all.exp_().neg_()
            dz.scatter_add_(1, targets[:, None], torch.ones_like(logps[:, None]))
            if softcap:
                dz.mul_(1 - squash.square_())
            grad = dz.to(head.weight.dtype) @ head.weight
        ctx.save_for_backward(grad)
        return logps

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_out[:, None].to(grad.dtype), None, None, None


def _head_logps(head, softcap: float | None, hidden: Tensor, targets: Tensor, sharded: bool = False) -> Tensor:
    """Log-probs of `targets` from `hidden` through the head, by the cheapest exact path for gradients.

    A trainable head is checkpointed (backward recomputes its logits), except in a sharded model, whose
    head FSDP must not meet during the backward (see `layout_logps`): its logits are kept for backward,
    as a plain forward keeps them."""
    if not (torch.is_grad_enabled() and hidden.requires_grad):
        return _chunk_logps(head, softcap, hidden, targets)
    if isinstance(head, torch.nn.Linear) and not any(p.requires_grad for p in head.parameters()):
        return FrozenHeadLogps.apply(hidden, head, softcap, targets)
    if sharded:
        return _chunk_logps(head, softcap, hidden, targets)
    return checkpoint(_chunk_logps, head, softcap, hidden, targets, use_reentrant=False)


def layout_logps(lm, batch: dict[str, Tensor], plan: LayoutPlan, chunk_tokens: int = CHUNK_TOKENS) -> tuple[Tensor, Tensor]:
    """(sum of response-token log-probs, scored tokens) per sequence of a layout (`layout.layout`)."""
    lm = causal_lm(lm)
    decoder = getattr(lm, lm.base_model_prefix)
    head = lm.get_output_embeddings()
    cfg = _text_config(lm)
    softcap = getattr(cfg, "final_logit_softcapping", None)
    kinds, dtype = layer_kinds(cfg), head.weight.dtype
    ids, pos, row, branch = batch["input_ids"], batch["position_ids"], batch["row"], batch["branch"]
    bounds = batch["bins"].tolist()
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
    sharded = is_sharded(lm)
    if len(spans) > 1 and sharded:
        hidden = _stacked_hidden(decoder, plan, ids, pos, row, branch, spans, kinds, dtype)
    else:
        hidden = []
        for start, end in spans:
            mask = None if plan.mask == "none" else bin_mask(plan.mask, row[start:end], branch[start:end],
                                                             pos[start:end], kinds=kinds, window=plan.window, dtype=dtype)
            out = decoder(input_ids=ids[None, start:end], position_ids=pos[None, start:end], attention_mask=mask,
                          use_cache=False)
            hidden.append(out.last_hidden_state[0])
        hidden = torch.cat(hidden) if len(hidden) > 1 else hidden[0]
    h, targets, seq = hidden[batch["score_from"]], batch["score_token"], batch["score_seq"]
    sums = torch.zeros(batch["n_tokens"].shape[0], dtype=torch.float32, device=ids.device)
    if sharded:
        # One head call per forward on every rank. Each call of a trainable head is met again in FSDP's
        # backward (the head's shard group is gathered for it, then freed), so ranks with different numbers
        # of chunks would gather different groups at the same moment: a collective mismatch.
        chunk_tokens = max(1, h.shape[0])
    for start in range(0, h.shape[0], chunk_tokens):
        logps = _head_logps(head, softcap, h[start:start + chunk_tokens], targets[start:start + chunk_tokens], sharded)
        sums = sums.index_add(0, seq[start:start + chunk_tokens], logps)
    return sums, batch["n_tokens"]


def is_sharded(lm) -> bool:
    """Whether `lm` is sharded by FSDP2 (`fully_shard`): each call of a sharded layer all-gathers its weights,
    a collective every rank must join, so every rank must call each layer equally often."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(lm, FSDPModule) or any(isinstance(m, FSDPModule) for m in lm.modules())


def _stacked_hidden(decoder, plan: LayoutPlan, ids, pos, row, branch, spans, kinds, dtype) -> Tensor:
    """The bins' last hidden states from ONE decoder call, bin b as batch entry b, right-padded.

    A sharded model needs this: the number of bins follows the data, so a per-bin loop would have ranks
    all-gather a layer's shards a different number of times, and the collectives would no longer match
    (gloo aborts; NCCL hangs). One call per forward on every rank keeps them in step, at the cost of padding
    the bins to the widest. Padding tokens (id and position 0) attend to themselves and are dropped."""
    width = max(end - start for start, end in spans)
    n = len(spans)
    pad_ids, pad_pos = ids.new_zeros((n, width)), pos.new_zeros((n, width))
    for b, (start, end) in enumerate(spans):
        pad_ids[b, :end - start], pad_pos[b, :end - start] = ids[start:end], pos[start:end]
    if plan.mask == "none":  # one sequence per bin: a plain padding mask is the whole rule
        lengths = torch.tensor([end - start for start, end in spans], device=ids.device)
        mask = (torch.arange(width, device=ids.device)[None, :] < lengths[:, None]).long()
    else:
        mask = stacked_mask(plan.mask, [(row[s:e], branch[s:e], pos[s:e]) for s, e in spans], kinds=kinds,
                            window=plan.window, dtype=dtype)
    out = decoder(input_ids=pad_ids, position_ids=pad_pos, attention_mask=mask, use_cache=False).last_hidden_state
    return torch.cat([out[b, :end - start] for b, (start, end) in enumerate(spans)])


def sequence_logps(lm, seqs: list[Sequence], plan: LayoutPlan, device=None) -> tuple[Tensor, Tensor]:
    """`layout_logps` of a list of sequences laid out by `plan`, in one forward."""
    device = device or next(causal_lm(lm).parameters()).device
    return layout_logps(lm, {k: v.to(device) for k, v in layout(seqs, plan).items()}, plan)


def _probe(lm, plan: LayoutPlan) -> str:
    """'' when `plan` gives the log-probs of plain one-sequence forwards on a few random tokens (two
    responses sharing a prompt and a third sequence, all in one bin); else what went wrong."""
    vocab = lm.get_input_embeddings().num_embeddings
    g = torch.Generator().manual_seed(0)
    x, y1, y2, x2, y3 = (torch.randint(vocab, (n,), generator=g).tolist() for n in (6, 4, 5, 3, 4))
    seqs = [Sequence(x + y1, 6), Sequence(x + y2, 6), Sequence(x2 + y3, 3)]
    one_bin = LayoutPlan(plan.share, None, plan.mask, plan.window)
    was_training = lm.training
    lm.eval()
    try:
        with torch.no_grad():
            got, _ = sequence_logps(lm, seqs, one_bin)
            want, n = sequence_logps(lm, seqs, ONE_PER_CALL)
    except Exception as e:  # noqa: BLE001 - any failure means: this model cannot take the mask
        return f"its forward fails with a custom attention mask ({type(e).__name__}: {str(e)[:200]})"
    finally:
        lm.train(was_training)
    per_token = 1e-3 if lm.get_output_embeddings().weight.dtype == torch.float32 else 5e-2
    worst = float(((got - want).abs() / n.clamp(min=1)).max())
    if worst > per_token:
        return f"a custom attention mask changes its log-probs ({worst:.2g} per token)"
    return ""


def plan_layout(model, bin_tokens: int | None = None, check: bool = True) -> LayoutPlan:
    """The layout `model` takes: prompts shared and rows packed into bins of at most `bin_tokens` tokens
    (default: `DEVICE_DEFAULTS` for the device the model is on; one bin per batch with FlexAttention,
    whose cost follows the mask rather than the bin's width), or, where the model cannot take a custom
    attention mask, one sequence per decoder call (said once). `check`: also run `check_layout` (do it
    where the model will run: it runs a few tokens)."""
    lm = causal_lm(model)
    if bin_tokens is None:
        kind = "gpu" if next(lm.parameters()).device.type == "cuda" else "cpu"
        bin_tokens = DEVICE_DEFAULTS[kind]["bin_tokens"]
    cfg = _text_config(lm)
    impl = getattr(cfg, "_attn_implementation", None) or lm.config._attn_implementation
    kinds = layer_kinds(cfg)
    if impl not in MASKS:
        return _fallback(lm, f"its attention implementation {impl!r} takes no custom mask (one of {sorted(MASKS)} does)")
    if kinds - {FULL, SLIDING}:
        return _fallback(lm, f"its layers include {sorted(kinds - {FULL, SLIDING})} attention")
    window = getattr(cfg, "sliding_window", None) if SLIDING in kinds else None
    plan = LayoutPlan(True, None if impl == "flex_attention" else bin_tokens, impl, window)
    return check_layout(lm, plan) if check else plan


def check_layout(model, plan: LayoutPlan) -> LayoutPlan:
    """`plan` if the model's forward obeys its mask on a few random tokens, else the one-sequence fallback."""
    if plan.mask == "none":
        return plan
    lm = causal_lm(model)
    why = _probe(lm, plan)
    return _fallback(lm, why) if why else plan


def _fallback(lm, why: str) -> LayoutPlan:
    say_once(f"{type(lm).__name__}: no prompt sharing or packing, one sequence per decoder call: {why}")
    return LayoutPlan(share=False, bin_tokens=None, mask="none", why=why)


def _forward(self, plan: LayoutPlan, **batch):
    logps, n_tokens = layout_logps(self, batch, plan)
    return {"logps": logps, "n_tokens": n_tokens}


def install_logps_forward(model, plan: LayoutPlan):
    """Make `model(**layout_tensors)` return {"logps", "n_tokens"} under `plan` (`LAYOUT_KEYS`).

    Returns a function that restores the original forward (needed before `generate`)."""
    lm = causal_lm(model)

    def forward(self, **batch):
        return _forward(self, plan, **{k: batch[k] for k in LAYOUT_KEYS})

    lm.forward = types.MethodType(forward, lm)
    return lambda: lm.__dict__.pop("forward", None)
