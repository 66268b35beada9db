"""Tiny random causal LMs with a real (trained) tokenizer, for tests, smoke runs and benchmarks.

No weights can be downloaded on CI machines, so every test builds its models here: a byte-level BPE
tokenizer trained in seconds on a small multilingual corpus, with a ChatML chat template, and a
randomly initialised model of a chosen family saved next to it with `save_pretrained`.
"""

from __future__ import annotations

import os
from pathlib import Path

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SEED_CORPUS = [
    "The quick brown fox jumps over the lazy dog. Answer: A",
    "Explain why the sky is blue in two sentences.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Eleza kwa nini anga ni la buluu kwa sentensi mbili. Jibu: B",
    "Maji huchemka kwa nyuzi joto mia moja kwenye usawa wa bahari.",
    "Habari za asubuhi? Ninaomba msaada kuandika barua fupi.",
    "Erkläre, warum der Himmel blau ist, in zwei Sätzen. Antwort: C",
    "Wasser kocht auf Meereshöhe bei hundert Grad Celsius.",
    "Jawaban: D. Air mendidih pada suhu seratus derajat Celsius.",
    "Passage Question Hati Swali Jibu Dokument Frage Antwort 1 2 3 4 5 6 7 8 9 0 + - = ( ) : ; , . ? !",
    "def add(a, b):\n    return a + b\n",
]

FAMILIES = ("llama", "gpt2", "qwen2", "gpt_neox", "gemma", "gemma3", "mistral")


def make_tokenizer(out_dir: str | os.PathLike | None = None, corpus: list[str] | None = None, vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator((corpus or []) + SEED_CORPUS * 3, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<pad>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML
    if out_dir is not None:
        fast.save_pretrained(out_dir)
    return fast


def make_config(family: str, vocab_size: int, *, hidden: int = 32, layers: int = 2, heads: int = 4):
    import transformers as tf

    common = dict(vocab_size=vocab_size, bos_token_id=0, eos_token_id=2, pad_token_id=3)
    if family in ("llama", "mistral", "qwen2"):
        cls = {"llama": tf.LlamaConfig, "mistral": tf.MistralConfig, "qwen2": tf.Qwen2Config}[family]
        return cls(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                   num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), max_position_embeddings=1024,
                   tie_word_embeddings=True, **common)
    if family == "gemma":
        return tf.GemmaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                              num_attention_heads=heads, num_key_value_heads=1, head_dim=hidden // heads,
                              max_position_embeddings=1024, **common)
    if family == "gemma3":  # Gemma-3's layout in small: a sliding-window layer (window 8) before a global one
        return tf.Gemma3TextConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                                   num_attention_heads=heads, num_key_value_heads=1, head_dim=hidden // heads,
                                   max_position_embeddings=1024, sliding_window=8,
                                   layer_types=["sliding_attention" if (i + 1) % 2 else "full_attention"
                                                for i in range(layers)], **common)
    if family == "gpt2":
        return tf.GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, n_positions=1024, **common)
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                                num_attention_heads=heads, max_position_embeddings=1024, **common)
    raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")


def make_tiny_model(out_dir: str | os.PathLike, family: str = "llama", *, seed: int = 0, corpus: list[str] | None = None,
                    hidden: int = 32, layers: int = 2, heads: int = 4) -> Path:
    """Write a random tiny model of `family` and its tokenizer to `out_dir`; return the directory."""
    import torch
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    tok = make_tokenizer(out, corpus)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(make_config(family, len(tok), hidden=hidden, layers=layers, heads=heads))
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    return out
