"""Tokenizers of the hub stand-ins (`testing/hub.py`), of the real repos' kinds, trained here on the demo
data: Llama-3's and Qwen2's tiktoken-style byte-level BPE (their split regexes, specials after the learned
vocabulary, Qwen2.5's base chat template), and Llama-2's / Mistral's sentencepiece BPE with byte fallback
beside the tokenizer.json transformers' LlamaConverter writes. Each writes its repo's tokenizer files into a
staging folder and returns the token ids the model config must carry. Sources: `testing/hub.py`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from langshift.testing.tiny_mt import train_spm

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
BPE_VOCAB = 1024  # byte-level / sentencepiece vocab of the stand-in tokenizers


def write_hub_json(path: Path, obj) -> None:
    """A JSON file as the hub repos ship them: indented, UTF-8, newline-terminated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def demo_rows(name: str) -> list[dict]:
    """The rows of one of the demo data's JSONL files (`langshift/data/demo/`)."""
    return [json.loads(line) for line in (DEMO / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def corpus() -> list[str]:
    """Text the stand-in tokenizers are trained on: the demo's training pairs in en, sw and de."""
    out = []
    for row in demo_rows("seed_a.jsonl") + demo_rows("seed_b.jsonl"):
        out += [row["en_prompt"], row["en_response"]]
        for t in row["translations"].values():
            out += [t["prompt"], t["response"]]
    return out + ["中文 한국어 Yorùbá Bahasa Indonesia 0123456789 ( ) [ ] { } < > = + - * / % # @ & | ~ ' \" ? !"]


# ------------------------------------------------------------------------------------ tokenizers

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = (
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|reserved_special_token_2|>", "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|reserved_special_token_4|>", "<|eot_id|>",
)  # the first ten of Llama-3's 256 added specials (128000-128009)
QWEN2_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>")
QWEN25_BASE_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _added(tok_id: int, content: str, special: bool = True) -> tuple[str, dict]:
    flags = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": special}
    return str(tok_id), {"content": content, **flags}


def _byte_level_bpe(split_regex: str, specials: Iterable[str], *, nfc: bool = False):
    """A byte-level BPE (the tiktoken-style family of Llama-3 and Qwen2) trained on `corpus()`, with
    `specials` appended after the learned vocabulary, as both real tokenizers place them."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    tok = Tokenizer(models.BPE(ignore_merges=True))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split_regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def tokenizer_llama3(stage: Path) -> dict:
    from tokenizers import processors

    tok = _byte_level_bpe(LLAMA3_SPLIT, LLAMA3_SPECIALS)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A:0",
                pair="<|begin_of_text|> $A:0 <|begin_of_text|> $B:1",
                special_tokens=[("<|begin_of_text|>", bos)],
            ),
        ]
    )
    tok.save(str(stage / "tokenizer.json"))
    write_hub_json(
        stage / "tokenizer_config.json",
        {
            "added_tokens_decoder": dict(_added(tok.token_to_id(s), s) for s in LLAMA3_SPECIALS),
            "bos_token": "<|begin_of_text|>",
            "clean_up_tokenization_spaces": True,
            "eos_token": "<|end_of_text|>",
            "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": 1000000000000000019884624838656,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )
    write_hub_json(stage / "special_tokens_map.json", {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"})
    return {"vocab_size": tok.get_vocab_size(), "bos_token_id": bos, "eos_token_id": tok.token_to_id("<|end_of_text|>")}


def tokenizer_qwen2(stage: Path) -> dict:
    tok = _byte_level_bpe(QWEN2_SPLIT, QWEN2_SPECIALS, nfc=True)
    tok.save(str(stage / "tokenizer.json"))
    tok.model.save(str(stage))  # vocab.json + merges.txt, as the repo ships them beside tokenizer.json
    eot = tok.token_to_id("<|endoftext|>")
    write_hub_json(
        stage / "tokenizer_config.json",
        {
            "add_prefix_space": False,
            "added_tokens_decoder": dict(_added(tok.token_to_id(s), s) for s in QWEN2_SPECIALS),
            "additional_special_tokens": list(QWEN2_SPECIALS[1:]),
            "bos_token": None,
            "chat_template": QWEN25_BASE_CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|endoftext|>",
            "errors": "replace",
            "model_max_length": 131072,
            "pad_token": "<|endoftext|>",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        },
    )
    # Qwen pads its embedding matrix past the tokenizer (151936 rows for 151665 tokens): keep a gap.
    padded = -(-(tok.get_vocab_size() + 1) // 64) * 64
    return {"vocab_size": padded, "bos_token_id": eot, "eos_token_id": eot}


def train_llama_spm(prefix: Path) -> Path:
    """A Llama-style sentencepiece model: BPE with byte fallback, <unk>=0 <s>=1 </s>=2, digits split."""
    return train_spm(
        prefix, corpus(), BPE_VOCAB, repeat=1, byte_fallback=True, split_digits=True, character_coverage=0.9995,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, normalization_rule_name="identity", remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
    )


def tokenizer_llama2(stage: Path, spm_model: Path, *, legacy: bool, mistral: bool) -> dict:
    """tokenizer.model (sentencepiece) and the tokenizer.json the repos ship beside it (the layout
    transformers 4.x's LlamaConverter wrote: Prepend/Replace normalizer, byte-fallback BPE, <s> prepended)."""
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers.tokenization_utils_base import generate_merges

    shutil.copy(spm_model, stage / "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    merges = generate_merges(vocab)  # pieces of a BPE model are in merge order
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ("<unk>", "<s>", "</s>")])
    tok.save(str(stage / "tokenizer.json"))
    plain = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": dict(_added(i, s) for i, s in enumerate(("<unk>", "<s>", "</s>"))),
        "bos_token": "<s>" if mistral else {"__type": "AddedToken", "content": "<s>", **plain},
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>" if mistral else {"__type": "AddedToken", "content": "</s>", **plain},
        "legacy": legacy,
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": None,
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>" if mistral else {"__type": "AddedToken", "content": "<unk>", **plain},
        "use_default_system_prompt": False,
    }
    if mistral:
        config["additional_special_tokens"] = []
    else:
        config["padding_side"] = "right"
    write_hub_json(stage / "tokenizer_config.json", config)
    write_hub_json(stage / "special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    return {"vocab_size": tok.get_vocab_size(), "bos_token_id": 1, "eos_token_id": 2}
