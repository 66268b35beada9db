"""A tokenizer as GGUF metadata: the vocabulary llama.cpp tokenizes with (export/gguf.py writes the rest).

A byte-level BPE vocabulary is written as `gpt2` with its merges, token types and the name of its
pre-tokenizer (`PRE_TOKENIZERS`: llama.cpp splits text itself, by the named regexes, so the name must
describe *this* tokenizer; one it does not know is refused, never guessed); a SentencePiece-style BPE
(byte fallback) as `llama` with scores from the merge ranks; then special token ids, whether BOS/EOS are
added, and the chat template.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Pre-tokenizers llama.cpp knows by name, recognised by the structure of tokenizer.json's
# `pre_tokenizer` (the regexes are the models' own; llama.cpp re-implements each under its name).
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_TOKENIZERS: dict[tuple[str, ...], str] = {
    ("ByteLevel(gpt2 regex)",): "gpt-2",  # GPT-2's regex inside ByteLevel (our tiny tokenizers, SmolLM2 via GGUF)
    ("Digits(individual)", "ByteLevel(gpt2 regex)"): "smollm",  # SmolLM/SmolLM2 as published
    (f"Split({LLAMA3_SPLIT})", "ByteLevel"): "llama-bpe",  # Llama 3
    (f"Split({QWEN2_SPLIT})", "ByteLevel"): "qwen2",  # Qwen2 / Qwen2.5
}


class UnsupportedModelError(ValueError):
    """The model's architecture or tokenizer has no GGUF mapping here."""


def pre_signature(pre: dict | None) -> tuple[str, ...]:
    """A comparable description of a tokenizer.json `pre_tokenizer` (flags that do not change the
    split, such as offsets, are left out)."""
    if not pre:
        return ()
    kind = pre.get("type")
    if kind == "Sequence":
        return tuple(part for p in pre.get("pretokenizers", []) for part in pre_signature(p))
    if kind == "ByteLevel":
        return ("ByteLevel(gpt2 regex)" if pre.get("use_regex", True) else "ByteLevel",)
    if kind == "Digits":
        return ("Digits(individual)" if pre.get("individual_digits") else "Digits",)
    if kind == "Split":
        pattern = pre.get("pattern", {})
        return (f"Split({pattern.get('Regex', pattern.get('String'))})",)
    return (str(kind),)


def pre_tokenizer_name(tokenizer_json: dict) -> str:
    signature = pre_signature(tokenizer_json.get("pre_tokenizer"))
    if signature not in PRE_TOKENIZERS:
        raise UnsupportedModelError(
            f"the tokenizer's pre-tokenizer {list(signature)} is none llama.cpp knows by name here "
            f"(known: {', '.join(sorted(set(PRE_TOKENIZERS.values())))}); llama.cpp would split text "
            "differently from the tokenizer the model was trained with")
    return PRE_TOKENIZERS[signature]


@dataclass
class Vocab:
    model: str  # tokenizer.ggml.model
    tokens: list
    types: list[int]
    scores: list[float] | None = None
    pre: str | None = None
    merges: bool = False  # the special vocab should carry the BPE merges
    space_prefix: bool | None = None  # SentencePiece: llama.cpp puts "▁" before the text


def _bpe_vocab(tokenizer, tokenizer_json: dict, tok_dir: Path, n_vocab: int) -> Vocab:
    import gguf

    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= n_vocab:
        raise UnsupportedModelError(f"the tokenizer has ids up to {max(vocab.values())} but the model only "
                                    f"{n_vocab} embeddings")
    by_id = {i: t for t, i in vocab.items()}
    added = tokenizer.added_tokens_decoder  # id -> AddedToken
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in by_id:  # embedding rows the tokenizer never produces
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:  # added tokens are matched as raw text by llama.cpp
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    return Vocab("gpt2", tokens, types, pre=pre_tokenizer_name(tokenizer_json), merges=True)


def _sentencepiece_vocab(tokenizer, tokenizer_json: dict, tok_dir: Path, n_vocab: int) -> Vocab:
    """A SentencePiece-style BPE (byte fallback, `▁` for spaces: Llama 2, Mistral 7B) as llama.cpp's
    `llama` tokenizer, from tokenizer.json alone (transformers 5 saves no tokenizer.model).

    llama.cpp merges the adjacent pair whose concatenation has the highest score; HF merges the pair
    of lowest merge rank. Scoring each token by minus the rank of the merge that makes it,
        score(t) = -rank(a, b)  for the first merge a + b = t   (0 for tokens no merge makes),
    makes the two procedures pick the same pair at every step."""
    import re

    import gguf

    model = tokenizer_json["model"]
    by_id = {i: t for t, i in model["vocab"].items()}
    by_id.update({i: t.content for i, t in tokenizer.added_tokens_decoder.items()})
    if max(by_id) >= n_vocab:
        raise UnsupportedModelError(f"the tokenizer has ids up to {max(by_id)} but the model only {n_vocab} embeddings")
    rank: dict[str, int] = {}
    for r, merge in enumerate(model.get("merges", [])):
        a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
        rank.setdefault(a + b, r)
    added = tokenizer.added_tokens_decoder
    tokens, scores, types = [], [], []
    for i in range(n_vocab):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            scores.append(-1e9)
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(text)
        scores.append(-float(rank[text]) if text in rank else 0.0)
        if i in added:
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        elif text == model.get("unk_token"):
            types.append(gguf.TokenType.UNKNOWN)
        elif re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", text):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    return Vocab("llama", tokens, types, scores=scores, space_prefix=_adds_space_prefix(tokenizer_json))


def _adds_space_prefix(tokenizer_json: dict) -> bool:
    """Whether text gets a leading `▁` (Llama 2's normalizer Prepend, or a Metaspace pre-tokenizer)."""
    def parts(node, key):
        if not node:
            return []
        return [p for sub in node.get(key, []) for p in parts(sub, key)] if node.get("type") == "Sequence" else [node]

    prepends = [n for n in parts(tokenizer_json.get("normalizer"), "normalizers") if n.get("type") == "Prepend"]
    metaspace = [n for n in parts(tokenizer_json.get("pre_tokenizer"), "pretokenizers") if n.get("type") == "Metaspace"]
    return bool(prepends) or any(n.get("prepend_scheme", "always") != "never" for n in metaspace)


def _tokenizer_kind(tokenizer_json: dict) -> str:
    model = tokenizer_json.get("model", {})
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        return "sentencepiece"
    if model.get("type") == "BPE" and (tokenizer_json.get("decoder") or {}).get("type") == "ByteLevel":
        return "bpe"
    return str(model.get("type"))


# tokenizer kind -> vocabulary builder
VOCABS: dict[str, Callable] = {"bpe": _bpe_vocab, "sentencepiece": _sentencepiece_vocab}


def adds_special(tokenizer) -> dict[str, bool]:
    """Whether the tokenizer puts BOS before / EOS after plain text, measured rather than read from
    config files (transformers 5 does not always write `add_bos_token`)."""
    ids = tokenizer("a", add_special_tokens=True).input_ids
    plain = tokenizer("a", add_special_tokens=False).input_ids
    return {
        "bos": tokenizer.bos_token_id is not None and len(ids) > len(plain) and ids[0] == tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id is not None and len(ids) > len(plain) and ids[-1] == tokenizer.eos_token_id,
    }


def write_vocab(writer, tokenizer, n_vocab: int, work: Path) -> None:
    import gguf

    tok_dir = work / "tokenizer"
    tokenizer.save_pretrained(tok_dir)
    tokenizer_json = json.loads(tokenizer.backend_tokenizer.to_str()) if getattr(tokenizer, "is_fast", False) else {}
    kind = _tokenizer_kind(tokenizer_json)
    if kind not in VOCABS:
        raise UnsupportedModelError(f"GGUF export supports byte-level BPE and SentencePiece tokenizers; this one is {kind}")
    vocab = VOCABS[kind](tokenizer, tokenizer_json, tok_dir, n_vocab)
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    if vocab.space_prefix is not None:
        writer.add_add_space_prefix(vocab.space_prefix)
    special = gguf.SpecialVocab(tok_dir, load_merges=vocab.merges, n_vocab=n_vocab)
    special.add_special_token = adds_special(tokenizer)
    special.chat_template = getattr(tokenizer, "chat_template", None) or None
    special.add_to_gguf(writer, quiet=True)


