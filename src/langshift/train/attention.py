"""A layout bin's attention structure, in the format the model's attention kernel takes.

In a bin (train/layout.py), query token q may attend key token k when

    row[k] == row[q]                                   rows packed in one bin never see each other
    and k <= q                                         causal, in packed order
    and (branch[k] == 0 or branch[k] == branch[q])     a response sees its prompt and itself only
    and position[q] - position[k] < window             only in sliding-window layers

transformers hands a 4-D mask given to the decoder to every layer unchanged (masking_utils), so the
mask is built once per bin, in the format of the model's attention implementation (`MASKS`):

    sdpa             boolean (1, 1, T, T), True = attend: PyTorch SDPA, which runs on the CPU too
    eager            additive (1, 1, T, T): 0 where allowed, the dtype's minimum elsewhere
    flex_attention   a BlockMask of the same rule (FlexAttention skips blocks with nothing to attend)

A model whose layers differ (Gemma 2/3, Qwen2 with sliding windows) gets one mask per layer type, keyed
as its `config.layer_types` names them. A bin holding a single sequence gets no mask at all: the model's
own causal attention is the same thing, and SDPA's causal kernel skips the upper triangle.

`stacked_mask` is the same rule for several bins run as one padded batch (a sharded model's forward,
logps.py): batch entry b is bin b, right-padded to the widest; a padding query attends to itself only,
so no softmax row is empty, and no real query attends to padding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

FULL, SLIDING = "full_attention", "sliding_attention"


def allowed(row: Tensor, branch: Tensor, pos: Tensor, window: int | None = None) -> Tensor:
    """(T, T) boolean: entry [q, k] is True where query q may attend key k (the rule above)."""
    idx = torch.arange(row.shape[0], device=row.device)
    ok = (row[:, None] == row[None, :]) & (idx[None, :] <= idx[:, None])
    ok &= (branch[None, :] == 0) | (branch[None, :] == branch[:, None])
    if window:
        ok &= (pos[:, None] - pos[None, :]) < window
    return ok


def _sdpa(row, branch, pos, window, dtype):
    return allowed(row, branch, pos, window)[None, None]


def _additive(ok: Tensor, dtype) -> Tensor:
    """A boolean mask (True = attend) as eager attention takes it: 0 where allowed, the dtype's minimum elsewhere."""
    return torch.zeros(ok.shape, dtype=dtype, device=ok.device).masked_fill_(~ok, torch.finfo(dtype).min)


def _eager(row, branch, pos, window, dtype):
    return _additive(allowed(row, branch, pos, window)[None, None], dtype)


def _flex(row, branch, pos, window, dtype):
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b, h, q, k):
        ok = (row[q] == row[k]) & (k <= q) & ((branch[k] == 0) | (branch[k] == branch[q]))
        return ok & ((pos[q] - pos[k]) < window) if window else ok

    n = row.shape[0]
    return create_block_mask(mask_mod, B=None, H=None, Q_LEN=n, KV_LEN=n, device=row.device)


MASKS: dict[str, Callable] = {"sdpa": _sdpa, "eager": _eager, "flex_attention": _flex}


def layer_kinds(config) -> set[str]:
    """The attention kinds of a model's layers: full, sliding-window, or both."""
    types = getattr(config, "layer_types", None)
    if types:
        return set(types)
    return {SLIDING} if getattr(config, "sliding_window", None) else {FULL}


def stacked_mask(kind: str, bins: list[tuple[Tensor, Tensor, Tensor]], *, kinds: set[str], window: int | None,
                 dtype):
    """The masks of `bins` ((row, branch, pos) each) as one (n_bins, 1, T, T) batch, T the widest bin, in
    format `kind` ("sdpa" or "eager"); a dict by layer type when the model's layers differ."""
    width = max(row.shape[0] for row, _, _ in bins)
    eye = torch.eye(width, dtype=torch.bool, device=bins[0][0].device)

    def build(span):
        ok = eye.repeat(len(bins), 1, 1)
        for b, (row, branch, pos) in enumerate(bins):
            n = row.shape[0]
            ok[b, :n, :n] = allowed(row, branch, pos, span)
        return ok[:, None] if kind == "sdpa" else _additive(ok[:, None], dtype)

    if kind not in ("sdpa", "eager"):
        raise ValueError(f"no stacked mask for attention implementation {kind!r}")
    masks = {k: build(window if k == SLIDING else None) for k in kinds}
    return masks if len(masks) > 1 else next(iter(masks.values()))


def bin_mask(kind: str, row: Tensor, branch: Tensor, pos: Tensor, *, kinds: set[str], window: int | None, dtype):
    """The attention mask of one bin for attention implementation `kind` (a key of MASKS): None when the
    bin is one plain sequence, a dict by layer type when the model's layers differ."""
    if bool(row[0] == row[-1]) and int(branch.max()) <= 1:
        return None
    build = MASKS[kind]
    masks = {k: build(row, branch, pos, window if k == SLIDING else None, dtype) for k in kinds}
    return masks if len(masks) > 1 else next(iter(masks.values()))
