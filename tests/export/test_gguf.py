"""GGUF export, checked against llama.cpp itself (llama-cpp-python, in a child process through
`langshift.native`, so a llama.cpp build this CPU cannot run fails a test naming the signal instead of
killing the test session): tiny random models of each supported family load, tokenize like their HF
tokenizer and give the same logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from langshift import native

# Contractions, digits, several languages, runs of spaces and newlines, and a special token in text.
TEXT = "Habari za asubuhi? I'll pay 12345 shillings.\n\n  Wasser kocht bei 100 Grad!<|im_end|>"


def _tokenize(path, *texts: str, add_bos: bool = False, special: bool = True) -> list[list[int]]:
    return native.call("tokenize", model=str(path), texts=list(texts), add_bos=add_bos, special=special)


def _logits(path, ids: list[int]) -> np.ndarray:
    return np.array(native.call("logits", model=str(path), ids=ids))


def _sharpen_attention(model, factor: float = 8.0) -> None:
    """Random tiny models attend almost uniformly, so rope (and a wrong Q/K row order) would barely
    show in the logits; larger Q/K weights make attention depend on position. Measured: with this,
    an export without the Q/K reordering is off by 0.11 in the logits, with it by 0.0002."""
    with torch.no_grad():
        for name, w in model.named_parameters():
            if "q_proj" in name or "k_proj" in name:
                w.mul_(factor)


def _compare_logits(gguf_path, model, tok, atol: float) -> None:
    ids = tok(TEXT, add_special_tokens=False).input_ids
    assert _tokenize(gguf_path, TEXT) == [ids]
    theirs = _logits(gguf_path, ids)
    with torch.no_grad():
        ours = model(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(theirs, ours, atol=atol, rtol=0)
    assert (theirs.argmax(-1) == ours.argmax(-1)).all()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """family -> (dir, model with sharpened attention, tokenizer)."""
    from langshift.models import load
    from langshift.testing.tiny import make_tiny_model

    made = {}

    def get(family: str):
        if family not in made:
            path = make_tiny_model(tmp_path_factory.mktemp(f"tiny-{family}"), family)
            model, tok = load(path, dtype="float32")
            _sharpen_attention(model)
            made[family] = (path, model, tok)
        return made[family]

    return get


@pytest.mark.parametrize(("family", "out_type", "atol"), [
    ("llama", "f16", 5e-3), ("mistral", "f16", 5e-3), ("qwen2", "f16", 5e-3), ("llama", "q8_0", 3e-2),
])
def test_export_loads_in_llama_cpp_with_the_same_tokens_and_logits(tiny, tmp_path, family, out_type, atol):
    from langshift.export.gguf import export_gguf

    path, model, tok = tiny(family)
    out = export_gguf(path, tmp_path / f"{family}.gguf", out_type, loaded=(model, tok))
    _compare_logits(out, model, tok, atol)


def test_metadata_carries_tokenizer_and_chat_template(tiny, tmp_path):
    import gguf

    from langshift.export.gguf import export_gguf

    path, model, tok = tiny("llama")
    out = export_gguf(path, tmp_path / "m.gguf", loaded=(model, tok), meta={"license": "apache-2.0", "languages": ["sw", "en"]})
    fields = gguf.GGUFReader(out).fields

    def value(key):
        return fields[key].contents()

    assert value("general.architecture") == "llama"
    assert value("tokenizer.ggml.model") == "gpt2"
    assert value("tokenizer.ggml.pre") == "gpt-2"
    assert value("tokenizer.chat_template") == tok.chat_template
    assert value("tokenizer.ggml.eos_token_id") == tok.eos_token_id
    assert value("tokenizer.ggml.add_bos_token") is False  # the tiny tokenizer adds none; llama.cpp must not either
    assert len(value("tokenizer.ggml.tokens")) == model.config.vocab_size
    assert value("general.license") == "apache-2.0"
    assert value("general.languages") == ["sw", "en"]
    names = {t.name for t in gguf.GGUFReader(out).tensors}
    assert "output.weight" not in names  # tied head: llama.cpp reuses token_embd
    assert {"token_embd.weight", "blk.1.attn_q.weight", "output_norm.weight"} <= names


def _tokenizer_with(pre_tokenizer, tmp_path):
    """A tiny byte-level BPE like `langshift.testing.tiny.make_tokenizer`, with another pre-tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from langshift.testing.tiny import CHATML, SEED_CORPUS

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SEED_CORPUS * 3, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                   pad_token="<pad>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


def _pre_tokenizers():
    from tokenizers import Regex, pre_tokenizers

    from langshift.export.gguf_vocab import LLAMA3_SPLIT, QWEN2_SPLIT

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return {
        "smollm": pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                           pre_tokenizers.ByteLevel(add_prefix_space=False)]),
        "llama-bpe": pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_SPLIT), "isolated"), byte_level]),
        "qwen2": pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_SPLIT), "isolated"), byte_level]),
    }


@pytest.mark.parametrize("name", ["smollm", "llama-bpe", "qwen2"])
def test_each_known_pre_tokenizer_splits_text_in_llama_cpp_as_in_hf(tiny, tmp_path, name):
    """The table's names are checked against llama.cpp's own implementation of each: the same text must
    become the same token ids (digits, contractions, whitespace runs and newlines differ between them)."""
    import gguf

    from langshift.export.gguf import export_gguf

    tok = _tokenizer_with(_pre_tokenizers()[name], tmp_path)
    _, model, _ = tiny("llama")
    out = export_gguf("tiny", tmp_path / f"{name}.gguf", loaded=(model, tok))
    assert gguf.GGUFReader(out).fields["tokenizer.ggml.pre"].contents() == name
    text = TEXT + "\n\nIt's 2025 -- they've   paid\t9876543 (ok)?"
    assert _tokenize(out, text) == [tok(text, add_special_tokens=False).input_ids]


def _sentencepiece_style_tokenizer():
    """A tiny tokenizer shaped like Llama 2's / Mistral 7B's tokenizer.json: BPE with byte fallback,
    spaces as "▁" with one prepended (normalizer), BOS added, no pre-tokenizer at run time."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from langshift.testing.tiny import SEED_CORPUS

    tok = Tokenizer(models.BPE(byte_fallback=True, fuse_unk=True, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)  # training only
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256))])
    tok.train_from_iterator(SEED_CORPUS * 3, trainer=trainer)
    tok.pre_tokenizer = None
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.chat_template = "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"
    return fast


def test_sentencepiece_style_tokenizer_exports_as_llama_vocab(tmp_path):
    """Mistral 7B / Llama 2 tokenizers: llama.cpp's SentencePiece tokenizer, fed scores from the merge
    ranks, splits text as HF does (leading space, byte fallback for unseen characters, BOS) and the
    model gives the same logits."""
    import gguf
    from transformers import AutoModelForCausalLM

    from langshift.export.gguf import export_gguf
    from langshift.testing.tiny import make_config

    tok = _sentencepiece_style_tokenizer()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(make_config("mistral", len(tok))).eval()
    _sharpen_attention(model)
    out = export_gguf("tiny-spm", tmp_path / "spm.gguf", loaded=(model, tok))
    fields = gguf.GGUFReader(out).fields
    assert fields["tokenizer.ggml.model"].contents() == "llama"
    assert fields["tokenizer.ggml.add_bos_token"].contents() is True
    texts = ["Habari za asubuhi? 123 ü€", " leading space", "Wasser  kocht!\nErkläre, warum."]
    assert _tokenize(out, *texts, add_bos=True, special=False) == [tok(text).input_ids for text in texts]
    ids = tok(TEXT).input_ids
    theirs = _logits(out, ids)
    with torch.no_grad():
        ours = model(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(theirs, ours, atol=5e-3, rtol=0)


def test_unknown_pre_tokenizer_is_refused_by_name(tiny, tmp_path):
    from tokenizers import pre_tokenizers

    from langshift.export.gguf import UnsupportedModelError, export_gguf

    tok = _tokenizer_with(pre_tokenizers.Sequence([pre_tokenizers.Punctuation(), pre_tokenizers.ByteLevel()]), tmp_path)
    _, model, _ = tiny("llama")
    with pytest.raises(UnsupportedModelError, match="Punctuation"):
        export_gguf("tiny", tmp_path / "x.gguf", loaded=(model, tok))
    assert not (tmp_path / "x.gguf").exists()


def test_unsupported_architecture_is_one_clear_error(tmp_path):
    from langshift.cli import app
    from langshift.testing.tiny import make_tiny_model

    path = make_tiny_model(tmp_path / "gpt2", "gpt2")
    result = CliRunner().invoke(app, ["export", str(path), "--gguf", str(tmp_path / "g.gguf")])
    assert result.exit_code == 2
    assert "GPT2LMHeadModel" in result.output and "LlamaForCausalLM" in result.output
    assert not list(tmp_path.glob("*.gguf*"))


def test_llama3_rope_scaling_matches_llama_cpp(tmp_path):
    """Llama 3.1's rope scaling travels as the `rope_freqs` tensor; llama.cpp must rotate as HF does."""
    from langshift.export.gguf import export_gguf
    from langshift.models import load
    from langshift.testing.tiny import make_tiny_model

    path = make_tiny_model(tmp_path / "tiny", "llama", hidden=64, heads=2)  # head_dim 32: 16 frequencies
    config = json.loads((path / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    (path / "config.json").write_text(json.dumps(config))
    model, tok = load(path, dtype="float32")
    _sharpen_attention(model)
    out = export_gguf(path, tmp_path / "r.gguf", loaded=(model, tok))
    _compare_logits(out, model, tok, 5e-3)


def test_lora_adapter_is_merged_before_export(tmp_path, tiny):
    """A LoRA run's `OUT/adapter` exports as base + adapter: llama.cpp's logits are the merged model's."""
    from langshift.data.seed import demo_english
    from langshift.export.gguf import export_gguf
    from langshift.files import write_jsonl
    from langshift.models import load
    from langshift.train.config import TrainConfig
    from langshift.train.recipe import train

    base, _, _ = tiny("llama")
    write_jsonl(tmp_path / "r.jsonl", [{**r, "lang": "sw"} for r in demo_english("sw")[:4]])
    out = train(TrainConfig(method="sft", model=str(base), data=str(tmp_path / "r.jsonl"), lang="sw", out=str(tmp_path / "lora"),
                            trainable="lora", lora_r=4, lr=5e-2, max_steps=1, batch_size=2, max_length=64, progress=False,
                            cache_dir=str(tmp_path / "cache")))
    merged, tok = load(out / "adapter", dtype="float32")
    plain, _ = load(base, dtype="float32")
    delta = max((a - b).abs().max().item() for a, b in zip(merged.state_dict().values(), plain.state_dict().values(), strict=True))
    assert delta > 1e-3  # the adapter changed something, so the comparison below can tell
    gguf_path = export_gguf(out / "adapter", tmp_path / "lora.gguf")
    _compare_logits(gguf_path, merged, tok, 5e-3)
