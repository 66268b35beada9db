"""Tiny random translators with real tokenizers, for tests and the benchmark (nothing is downloaded).

  * M2M100: a SentencePiece BPE model trained here, fairseq's vocab.json (<s> <pad> </s> <unk>, then
    the pieces), followed by the 100 `__xx__` language tokens and 8 made-up words the tokenizer appends;
  * Marian (opus-mt layout): source.spm/target.spm (one shared model) and vocab.json with </s>=0,
    <unk>=1 and <pad> last, which is where CTranslate2's converter expects it;
  * NLLB-200: the M2M100 network with NllbTokenizer and FLORES-200 codes (`swh_Latn`).
Weights are random, so translations are garbage: these exercise the machinery, not quality.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

MT_CORPUS = [
    "How can I keep my kitchen sink from getting clogged?",
    "Never pour grease or oil down the drain; let it cool and throw it in the bin.",
    "Sunlight contains all colors, and the air scatters blue light more than red light.",
    "Write a short poem about the sea. Use simple words.",
    "The capital of Kenya is Nairobi. It is a large city.",
    "Please explain how a binary search works, step by step.",
    "Ninawezaje kuzuia sinki la jikoni lisiziba? Tabia chache rahisi husaidia.",
    "Mji mkuu wa Kenya ni Nairobi. Ni mji mkubwa sana.",
    "Tafadhali eleza jinsi utafutaji wa binary unavyofanya kazi, hatua kwa hatua.",
    "Wie kann ich verhindern, dass mein Spülbecken verstopft? Ein paar Gewohnheiten helfen.",
    "Die Hauptstadt von Kenia ist Nairobi. Sie ist eine große Stadt.",
    "Bitte erkläre Schritt für Schritt, wie eine binäre Suche funktioniert.",
    "1. First item 2. Second item - a bullet point: with a colon, and a comma!",
    "Numbers 0 1 2 3 4 5 6 7 8 9 and symbols ( ) [ ] { } < > = + - * / % # @ & | ~ ' \" ? !",
]


def train_spm(prefix: Path, corpus: list[str], vocab_size: int, *, repeat: int = 4, **kw) -> Path:
    """A sentencepiece BPE model trained on `corpus` (seen `repeat` times); `kw` are further trainer
    options, or replace the defaults (full character coverage, a soft vocabulary limit)."""
    import sentencepiece as spm

    options = {"model_type": "bpe", "character_coverage": 1.0, "hard_vocab_limit": False, "minloglevel": 2, **kw}
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus * repeat), model_prefix=str(prefix), vocab_size=vocab_size, **options
    )
    return prefix.with_suffix(".model")


def _pieces(model_file: Path) -> list[str]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    return [
        sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))
    ]


def make_tiny_m2m100(
    out_dir: str | os.PathLike,
    *,
    corpus: list[str] | None = None,
    vocab_size: int = 400,
    d_model: int = 32,
    layers: int = 2,
    heads: int = 4,
    ffn: int = 64,
    seed: int = 0,
    init_std: float = 0.5,
    madeup_words: int = 8,
) -> Path:
    """`madeup_words` pads the vocabulary the way fairseq does (M2M100 has 8); the benchmark pads it to a
    real translator's size, since the output projection's cost grows with it."""
    from transformers import M2M100Tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_file = train_spm(
            Path(tmp) / "spm",
            (corpus or []) + MT_CORPUS,
            vocab_size,
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
        )
        vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
        for p in _pieces(model_file):
            vocab.setdefault(p, len(vocab))
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        shutil.copy(model_file, Path(tmp) / "sentencepiece.bpe.model")
        # The hub's tokenizer_config lists the language tokens as additional special tokens; so do we.
        from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

        langs = [f"__{c}__" for c in FAIRSEQ_LANGUAGE_CODES["m2m100"]]
        tok = M2M100Tokenizer(
            str(Path(tmp) / "vocab.json"),
            str(Path(tmp) / "sentencepiece.bpe.model"),
            additional_special_tokens=langs,
            num_madeup_words=madeup_words,
        )
        tok.save_pretrained(out)
    # fairseq layout: the pieces, then one token per language, then the made-up padding words.
    return _save_random_m2m100(out, len(vocab) + len(tok.lang_code_to_id) + tok.num_madeup_words, d_model,
                               layers, heads, ffn, init_std, seed)


def make_tiny_marian(
    out_dir: str | os.PathLike,
    *,
    corpus: list[str] | None = None,
    vocab_size: int = 400,
    d_model: int = 32,
    layers: int = 2,
    heads: int = 4,
    ffn: int = 64,
    seed: int = 0,
    init_std: float = 0.5,
    targets: tuple[str, ...] = (),
) -> Path:
    """`targets` (e.g. ("sw", "de")) makes a multi-target model like opus-mt-en-mul: `>>sw<<` tokens."""
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_file = train_spm(
            Path(tmp) / "spm",
            (corpus or []) + MT_CORPUS,
            vocab_size,
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
        )
        vocab = {"</s>": 0, "<unk>": 1}
        for p in _pieces(model_file):
            vocab.setdefault(p, len(vocab))
        for code in targets:
            vocab[f">>{code}<<"] = len(vocab)
        vocab["<pad>"] = len(vocab)
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        for name in ("source.spm", "target.spm"):
            shutil.copy(model_file, Path(tmp) / name)
        tok = MarianTokenizer(
            str(Path(tmp) / "source.spm"),
            str(Path(tmp) / "target.spm"),
            str(Path(tmp) / "vocab.json"),
            source_lang="en",
            target_lang="sw",
        )
        tok.save_pretrained(out)
    pad = vocab["<pad>"]
    config = MarianConfig(
        vocab_size=len(vocab),
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn,
        max_position_embeddings=512,
        pad_token_id=pad,
        eos_token_id=0,
        decoder_start_token_id=pad,
        forced_eos_token_id=None,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        init_std=init_std,
    )
    torch.manual_seed(seed)
    MarianMTModel(config).save_pretrained(out)
    return out


def make_tiny_nllb(
    out_dir: str | os.PathLike,
    *,
    corpus: list[str] | None = None,
    vocab_size: int = 400,
    d_model: int = 32,
    layers: int = 2,
    heads: int = 4,
    ffn: int = 64,
    seed: int = 0,
    init_std: float = 0.5,
) -> Path:
    """NLLB-200 layout: an M2M100 network with NllbTokenizer (SentencePiece-style BPE trained here; the
    202 FLORES-200 codes such as `swh_Latn` are special tokens after the pieces)."""
    from tokenizers import SentencePieceBPETokenizer
    from transformers import NllbTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe = SentencePieceBPETokenizer()
    bpe.train_from_iterator(
        ((corpus or []) + MT_CORPUS) * 4,
        vocab_size=vocab_size,
        show_progress=False,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
    )
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tok = NllbTokenizer(vocab=model["vocab"], merges=merges)
    tok.save_pretrained(out)
    return _save_random_m2m100(out, len(tok), d_model, layers, heads, ffn, init_std, seed)


def _save_random_m2m100(out: Path, vocab_size: int, d_model: int, layers: int, heads: int, ffn: int,
                        init_std: float, seed: int) -> Path:
    """A seeded random M2M100 (also NLLB's architecture) with fairseq's special-token ids, saved to `out`."""
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    config = M2M100Config(
        vocab_size=vocab_size,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn,
        max_position_embeddings=1024,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        scale_embedding=True,
        init_std=init_std,
    )
    torch.manual_seed(seed)
    M2M100ForConditionalGeneration(config).save_pretrained(out)
    return out
