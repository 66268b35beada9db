"""Where each token of a forward pass goes: prompts shared by their responses, rows packed without padding.

Training and the reference pass need log pi(y|x) for many (x, y) pairs, and the pairs come in families
that share x: CLO scores y_en and y_t under x_en and again under x_t; DPO scores y_w and y_l under one x.
Sequences with the same prompt become one *row*

    [ x | y_1 | y_2 ]     positions 0 .. |x|+|y_1|-1, then |x| .. |x|+|y_2|-1 again

in which each response attends to the prompt and to itself, never to another response (block-causal),
at the positions it has on its own. The prompt is encoded once and every response gets the log-probs it
gets alone: CLO runs two rows per record instead of four sequences, DPO one row per pair instead of two.

Rows are then packed back to back into *bins* (first-fit decreasing) of at most `bin_tokens` tokens
(a longer row gets a bin of its own). A bin is one decoder call with batch size 1, so no token anywhere
is padding; rows in one bin never see each other. With a dense attention mask (PyTorch SDPA or eager on
the CPU) the attention of a bin costs its width squared, so `bin_tokens` bounds it; where the kernel skips
masked blocks (FlexAttention), one bin holds the whole micro-batch.

This module alone decides the layout, for the training forward and for the reference pre-pass alike:
the collator hands over unpadded sequences, and nothing else pads or buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from langshift.train.encode import Sequence

# Names of the tensors a layout hands the forward (`logps.layout_logps`). `n_tokens` comes first: it has
# one entry per scored sequence, and transformers' evaluation loop reads the batch size off the first tensor.
LAYOUT_KEYS = ("n_tokens", "input_ids", "position_ids", "row", "branch", "bins", "score_from", "score_token",
               "score_seq")


@dataclass(frozen=True)
class LayoutPlan:
    """How a model's forward is laid out. `share`: a prompt is encoded once for all its responses (needs an
    attention mask the kernel takes as given); `bin_tokens`: most tokens per decoder call (None: the whole
    batch in one call); `mask`: the attention-mask format, a key of `attention.MASKS` ("none": no mask, the
    model's own causal attention, so each bin must hold exactly one sequence)."""

    share: bool = True
    bin_tokens: int | None = None
    mask: str = "sdpa"
    window: int | None = None  # sliding-window attention span (tokens), applied inside the mask
    why: str = field(default="", compare=False)  # why this plan, when it is a fallback


@dataclass
class Row:
    """One prompt and the responses scored under it; `seqs[i]` is the index of the scored sequence whose
    response is `responses[i]`."""

    prompt: list[int]
    responses: list[list[int]] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompt) + sum(len(r) for r in self.responses)


def make_rows(seqs: list[Sequence], share: bool, max_tokens: int | None = None) -> list[Row]:
    """Rows for `seqs`: with `share`, one row per distinct prompt (in order of first appearance) holding its
    responses, a row being split where it would pass `max_tokens`; otherwise one row per sequence."""
    rows: list[Row] = []
    open_rows: dict[tuple[int, ...], Row] = {}
    for i, s in enumerate(seqs):
        prompt, response = s.ids[:s.prompt_len], s.ids[s.prompt_len:]
        key = tuple(prompt)
        row = open_rows.get(key) if share else None
        if row is None or (max_tokens and len(row) + len(response) > max_tokens):
            row = Row(list(prompt))
            rows.append(row)
            open_rows[key] = row
        row.responses.append(list(response))
        row.seqs.append(i)
    return rows


def pack(lengths: list[int], capacity: int | None) -> list[list[int]]:
    """Bins of item indices, first-fit decreasing: each bin's lengths sum to at most `capacity`, an item
    longer than it alone in a bin; `capacity` None: everything in one bin."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if capacity is None:
        return [order] if order else []
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(capacity - lengths[i])
    return bins


def layout(seqs: list[Sequence], plan: LayoutPlan) -> dict[str, Tensor]:
    """The flat tensors one forward over `seqs` needs (CPU tensors; `LAYOUT_KEYS`):

    input_ids, position_ids, row, branch  (T,)  every token once, bin after bin; `row` numbers the rows,
                                                `branch` is 0 on a prompt and k on the row's k-th response
    bins                                  (n_bins + 1,)  offsets of the bins in the T tokens
    score_from, score_token, score_seq    (S,)   for each scored token: the position whose hidden state
                                                predicts it, the token, and the sequence it belongs to
    n_tokens                              (n_seqs,)  scored tokens per sequence

    The first token of a sequence is never scored (nothing predicts it), as in a plain forward."""
    one_per_bin = plan.mask == "none"
    rows = make_rows(seqs, plan.share and not one_per_bin)
    bins = [[i] for i in range(len(rows))] if one_per_bin else pack([len(r) for r in rows], plan.bin_tokens)
    ids: list[int] = []
    pos: list[int] = []
    row_of: list[int] = []
    branch: list[int] = []
    bounds = [0]
    score_from: list[int] = []
    score_token: list[int] = []
    score_seq: list[int] = []
    n_tokens = [0] * len(seqs)
    for b in bins:
        for r in b:
            row = rows[r]
            start = len(ids)
            p = len(row.prompt)
            ids += row.prompt
            pos += range(p)
            row_of += [r] * p
            branch += [0] * p
            for k, (resp, seq) in enumerate(zip(row.responses, row.seqs, strict=True), start=1):
                first = len(ids)
                ids += resp
                pos += range(p, p + len(resp))
                row_of += [r] * len(resp)
                branch += [k] * len(resp)
                # token j of the response is predicted by the token before it: the prompt's last token for
                # j = 0, then the response's own previous token
                sources = ([start + p - 1] if p else []) + list(range(first, first + len(resp) - 1))
                targets = resp if p else resp[1:]
                score_from += sources
                score_token += targets
                score_seq += [seq] * len(targets)
                n_tokens[seq] = len(targets)
        bounds.append(len(ids))
    long = torch.long
    return {
        "n_tokens": torch.tensor(n_tokens, dtype=long),
        "input_ids": torch.tensor(ids, dtype=long),
        "position_ids": torch.tensor(pos, dtype=long),
        "row": torch.tensor(row_of, dtype=torch.int32),
        "branch": torch.tensor(branch, dtype=torch.int32),
        "bins": torch.tensor(bounds, dtype=long),
        "score_from": torch.tensor(score_from, dtype=long),
        "score_token": torch.tensor(score_token, dtype=long),
        "score_seq": torch.tensor(score_seq, dtype=long),
    }


def token_batches(seqs: list[Sequence], budget: int, share: bool) -> list[list[int]]:
    """Sequence indices in batches of about `budget` forward tokens (rows kept whole, similar lengths
    together): the reference pass's batches, decided by the same row rule as training."""
    rows = make_rows(seqs, share)
    batches: list[list[int]] = []
    tokens = budget
    for r in sorted(rows, key=len):
        if tokens + len(r) > budget:
            batches.append([])
            tokens = 0
        batches[-1] += r.seqs
        tokens += len(r)
    return batches


def forward_tokens(seqs: list[Sequence], plan: LayoutPlan) -> int:
    """Tokens a forward over `seqs` runs under `plan`: each row once, no padding."""
    return sum(len(r) for r in make_rows(seqs, plan.share and plan.mask != "none"))


def scored_sequences(batch: dict[str, Tensor]) -> list[list[int]]:
    """The token ids of every scored sequence of a layout, in order (its inverse, for checks and probes):
    the prompt of its row followed by its scored tokens."""
    ids, row, branch = batch["input_ids"].tolist(), batch["row"].tolist(), batch["branch"].tolist()
    prompts: dict[int, list[int]] = {}
    for t, r, b in zip(ids, row, branch, strict=True):
        if b == 0:
            prompts.setdefault(r, []).append(t)
    out: list[list[int]] = [[] for _ in range(batch["n_tokens"].shape[0])]
    first: dict[int, int] = {}
    for src, tok, s in zip(batch["score_from"].tolist(), batch["score_token"].tolist(), batch["score_seq"].tolist(),
                           strict=True):
        if s not in first:
            first[s] = src
            out[s] = list(prompts.get(row[src], []))
        out[s].append(tok)
    return out
