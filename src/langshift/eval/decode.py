"""A lean batched sampling loop: what HF `generate` computes for our settings, with less work per step.

Why not `model.generate`: on a CPU one decode step of a 135M model at batch 8 is ~140 ms of matrix
products (weight-bandwidth bound, so a larger batch costs little more), and on top of that HF's top-p
sorts the whole vocabulary of every row (~20 ms at batch 8, ~60 ms at batch 24) and keeps computing
rows that have already stopped until the last one does. This loop

  - samples the nucleus exactly from the top-k candidates of each row, and sorts the whole vocabulary
    only for a row whose top-k mass stays below top_p (rare: top_p is 0.9 at temperature 0.6);
  - drops finished rows from the batch and from the key/value cache (`Cache.batch_select_indices`), so short
    answers stop costing compute;
  - keeps a batch's prefilled prompt cache (`Prefix`), so a regeneration (MMMLU's retries) samples
    again without running the prompt again;

and is otherwise the same computation: left-padded prompts, positions counted from the attention
mask, logits / temperature, then top-p; greedy (argmax) at temperature 0. Greedy output equals
`generate`'s token for token (tests/eval/test_decode.py); `bench/eval_generate.py` measures the speed.

The nucleus, with probabilities sorted in descending order p_(1) >= p_(2) >= ...:
    keep token j  iff  sum_{i<j} p_(i) < top_p        (so at least p_(1) is always kept)
then sample from the kept probabilities renormalised -- HF's TopPLogitsWarper, written descending.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass

import torch


def nucleus_mask(sorted_probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Which of the descending-sorted probabilities are in the nucleus (bool, same shape)."""
    mass_before = sorted_probs.cumsum(-1) - sorted_probs
    return mass_before < top_p


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, candidates: int = 256,
    generators: list[torch.Generator] | None = None,
) -> torch.Tensor:
    """One token per row of `logits` [rows, vocab]: argmax at temperature 0, else nucleus sampling, drawn
    with torch's global generator or, given `generators` (one per row), each row with its own (the
    llama.cpp backend: a response's draws then depend on its seed alone, not on which rows share a step)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    k = min(candidates, probs.shape[-1])
    top, index = probs.topk(k, dim=-1)  # descending
    short = top.sum(-1) < top_p  # the nucleus may reach past the k candidates: sort these rows fully
    if short.any():
        full, full_index = probs[short].sort(-1, descending=True)
        rows = short.nonzero().flatten().tolist()
        chosen_full = _sample_sorted(full, full_index, top_p, generators and [generators[r] for r in rows])
    chosen = _sample_sorted(top, index, top_p, generators)
    if short.any():
        chosen[short] = chosen_full
    return chosen


def _sample_sorted(sorted_probs: torch.Tensor, index: torch.Tensor, top_p: float,
                   generators: list[torch.Generator] | None = None) -> torch.Tensor:
    kept = sorted_probs * nucleus_mask(sorted_probs, top_p)
    if generators is None:
        pick = torch.multinomial(kept, 1)  # multinomial renormalises the kept mass
    else:
        pick = torch.cat([torch.multinomial(row, 1, generator=g) for row, g in zip(kept, generators, strict=True)])[:, None]
    return index.gather(-1, pick).squeeze(-1)


@dataclass
class Prefix:
    """A prefilled batch: next-token logits, key/value cache, attention mask and last positions."""

    logits: torch.Tensor  # [rows, vocab]
    cache: object
    mask: torch.Tensor
    position: torch.Tensor  # [rows, 1]

    def select(self, rows: list[int]) -> Prefix:
        """A copy holding `rows` only, to sample them again (regenerations reuse the prompt's cache)."""
        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        cache = copy.deepcopy(self.cache)
        cache.batch_select_indices(index)
        return Prefix(self.logits[index], cache, self.mask[index], self.position[index])


@torch.inference_mode()
def prefill(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Prefix:
    """Run left-padded prompts [batch, width] once; positions count real tokens only."""
    position = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    keep_last = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    out = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position, use_cache=True, **keep_last
    )
    return Prefix(out.logits[:, -1, :], out.past_key_values, attention_mask, position[:, -1:])


@torch.inference_mode()
def sample(
    model,
    prefix: Prefix,
    *,
    max_new_tokens: int,
    stop_ids: list[int],
    temperature: float = 0.6,
    top_p: float = 0.9,
    stop_text=None,
    on_token=None,
) -> list[list[int]]:
    """New token ids per row of `prefix` (a stop token, when one ends the row, included). Consumes
    `prefix.cache`. `stop_text(tokens) -> bool`, when given, also ends a row (a turn end that is
    several tokens). `on_token(row, tokens)`, when given, sees each row's tokens so far after every
    step that extended it (streaming: `langshift chat` prints replies as they are decoded)."""
    rows = prefix.mask.shape[0]
    out: list[list[int]] = [[] for _ in range(rows)]
    if max_new_tokens <= 0 or rows == 0:
        return out
    live = torch.arange(rows, device=prefix.mask.device)  # original row of each row still in the batch
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long, device=prefix.mask.device)
    logits, cache, mask, last_position = prefix.logits, prefix.cache, prefix.mask, prefix.position
    for n in range(max_new_tokens):
        token = sample_next(logits, temperature, top_p)
        done = torch.isin(token, stops)
        for i, (row, t) in enumerate(zip(live.tolist(), token.tolist(), strict=True)):
            out[row].append(t)
            if on_token is not None:
                on_token(row, out[row])
            if stop_text is not None and not done[i] and stop_text(out[row]):
                done[i] = True
        if n == max_new_tokens - 1 or bool(done.all()):
            break
        if bool(done.any()):  # drop finished rows: they cost a full forward per step otherwise
            keep = (~done).nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            live, token, mask, last_position = live[keep], token[keep], mask[keep], last_position[keep]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=-1)
        last_position = last_position + 1
        logits = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=last_position,
            past_key_values=cache,
            use_cache=True,
        ).logits[:, -1, :]
    return out


def decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw) -> list[list[int]]:
    """`prefill` then `sample`: new token ids per row of left-padded `input_ids`."""
    return sample(model, prefill(model, input_ids, attention_mask), **kw)


def _accepts(model, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
