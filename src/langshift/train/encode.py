"""Quadruple -> the four token sequences CLO and its baselines train on, with completion-only masks.

For a record (x_en, y_en, x_t, y_t) the four sequences are

    en_chosen    = x_en ++ y_en        en_rejected  = x_en ++ y_t
    tgt_chosen   = x_t  ++ y_t         tgt_rejected = x_t  ++ y_en

and, in a multilingual run with `cl_negatives: all`, one more per other target language t' that
translates the same English source: tgt_rejected_cross = x_t ++ y_t' (`Encoder.cross_negative`).

where a prompt x is rendered by the tokenizer's chat format (the same text generation sees) and a
response y is followed by the turn-closing text (e.g. `<|im_end|>`). Prompt and response are tokenized
separately and concatenated, so the boundary is exact and the loss covers response tokens only.

Sequences longer than `max_length` lose the tail of their response (never the whole example); a
prompt that alone leaves fewer than `min_response_tokens` is cut from the left. Both are counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from langshift.models import ChatFormat, needs_bos
from langshift.records import Record

ROLES = ("en_chosen", "en_rejected", "tgt_chosen", "tgt_rejected")
CROSS_ROLE = "tgt_rejected_cross"  # x_t ++ y_t' (another target language's reply), after the four
SIDE = {"en_chosen": "en", "en_rejected": "en", "tgt_chosen": "tgt", "tgt_rejected": "tgt", CROSS_ROLE: "tgt"}


@dataclass
class Sequence:
    ids: list[int]
    prompt_len: int  # the completion is ids[prompt_len:]


@dataclass
class TruncationReport:
    sequences: int = 0
    response_truncated: int = 0
    prompt_truncated: int = 0
    tokens_cut: int = 0
    by_role: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"sequences": self.sequences, "response_truncated": self.response_truncated,
                "prompt_truncated": self.prompt_truncated, "tokens_cut": self.tokens_cut,
                "by_role": dict(self.by_role)}


class Encoder:
    def __init__(self, tokenizer, fmt: ChatFormat, max_length: int = 3000, min_response_tokens: int = 16):
        self.tok, self.fmt, self.max_length = tokenizer, fmt, max_length
        self.min_response_tokens = min(min_response_tokens, max_length // 2)
        self.report = TruncationReport()

    def _prompt_ids(self, prompt: str) -> list[int]:
        text = self.fmt.prompt_text(self.tok, prompt)
        ids = self.tok(text, add_special_tokens=False).input_ids
        return [self.tok.bos_token_id, *ids] if needs_bos(self.tok, text) else ids

    def _response_ids(self, response: str) -> list[int]:
        return self.tok(response + self.fmt.end, add_special_tokens=False).input_ids

    def _join(self, role: str, prompt: list[int], response: list[int]) -> Sequence:
        self.report.sequences += 1
        budget = self.max_length - len(prompt)
        if budget < self.min_response_tokens:  # keep the end of the prompt: it holds the question
            keep = self.max_length - min(len(response), self.min_response_tokens)
            self.report.prompt_truncated += 1
            self.report.tokens_cut += len(prompt) - keep
            self.report.by_role[role] += 1
            prompt = prompt[len(prompt) - keep:]
            budget = self.max_length - len(prompt)
        if len(response) > budget:
            self.report.response_truncated += 1
            self.report.tokens_cut += len(response) - budget
            self.report.by_role[role] += 1
            response = response[:budget]
        return Sequence(prompt + response, len(prompt))

    def encode(self, rec: Record) -> dict[str, Sequence]:
        x_en, x_t = self._prompt_ids(rec.en_prompt), self._prompt_ids(rec.tgt_prompt)
        y_en, y_t = self._response_ids(rec.en_response), self._response_ids(rec.tgt_response)
        return {
            "en_chosen": self._join("en_chosen", x_en, y_en),
            "en_rejected": self._join("en_rejected", x_en, y_t),
            "tgt_chosen": self._join("tgt_chosen", x_t, y_t),
            "tgt_rejected": self._join("tgt_rejected", x_t, y_en),
        }

    def cross_negative(self, rec: Record, other: Record) -> Sequence:
        """x_t ++ y_t': `rec`'s target prompt with the reply of `other`, a record of another target language
        made from the same English source (CLO's cross-target negative, `cl_negatives: all`)."""
        return self._join(CROSS_ROLE, self._prompt_ids(rec.tgt_prompt), self._response_ids(other.tgt_response))


def pad_batch(seqs: list[Sequence], pad_id: int):
    """Right-padded `input_ids`, `attention_mask`, `completion_mask` tensors for a list of sequences."""
    import torch

    width = max(len(s.ids) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    completion = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, :len(s.ids)] = torch.tensor(s.ids)
        attention[i, :len(s.ids)] = 1
        completion[i, s.prompt_len:len(s.ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "completion_mask": completion}
