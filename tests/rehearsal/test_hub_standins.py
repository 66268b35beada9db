"""Every hub id of configs/paper loads offline, through our real loaders, from the stand-in hub cache.

The stand-ins (langshift.testing.hub) have the real repos' file names, configs, splits and columns;
these tests read them the way a GPU user's run reads the real ones: `from_pretrained`,
`hf_hub_download`, `load_dataset` with HF_HUB_OFFLINE=1, and nothing may reach the network.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from langshift.languages import get_language
from langshift.testing.hub import (
    LFS_SUFFIXES,
    REAL_CONFIGS,
    REPOS,
    build_hub_cache,
    oasst1_features,
    oasst1_messages,
)

ROOT = Path(__file__).resolve().parents[2]
PAPER_LANGS = ("zh", "de", "ko", "id", "sw", "yo")


@pytest.fixture(autouse=True)
def offline(hub_cache, no_network):
    """Offline on the stand-ins, and no attempt to reach the network, swallowed or not."""
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE
    yield
    assert no_network.all() == []


def paper_ids() -> set[str]:
    """The hub ids the paper configs read: models, translator, eval data (English MMMLU = cais/mmlu)."""
    ids = set()
    for path in sorted((ROOT / "configs" / "paper").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        ids |= {m["model"] for m in cfg["models"]}
        ids.add(cfg["data"]["translator_options"]["model"])
        if cfg["data"]["source"] == "oasst1":
            ids.add("OpenAssistant/oasst1")
        tasks = cfg["eval"]["tasks"]
        ids |= {cfg["eval"][t] for t in ("belebele", "mmmlu") if t in tasks}
        if "mmmlu" in tasks:
            ids.add("cais/mmlu")
        if "alpaca" in tasks:
            ids.add("tatsu-lab/alpaca_eval")
    return ids


# Files each repo has on the hub (a subset: what our loaders read), as listed in its file tree.
REAL_FILES = {
    "meta-llama/Meta-Llama-3-8B": ["config.json", "generation_config.json", "model.safetensors.index.json",
                                   *(f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)),
                                   "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"],
    "meta-llama/Llama-2-7b-hf": ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                 "tokenizer.model", "tokenizer.json", "tokenizer_config.json"],
    "meta-llama/Llama-2-13b-hf": [f"model-0000{i}-of-00003.safetensors" for i in range(1, 4)],
    "mistralai/Mistral-7B-v0.1": ["model-00002-of-00002.safetensors", "tokenizer.model", "tokenizer.json"],
    "Qwen/Qwen2.5-3B": ["model-00002-of-00002.safetensors", "vocab.json", "merges.txt", "tokenizer.json"],
    "facebook/m2m100_1.2B": ["config.json", "generation_config.json", "pytorch_model.bin", "sentencepiece.bpe.model",
                             "special_tokens_map.json", "tokenizer_config.json", "vocab.json"],
    "OpenAssistant/oasst1": ["README.md", "data/train-00000-of-00001-b42a775f407cee45.parquet",
                             "data/validation-00000-of-00001-134b8fd0c89408b6.parquet",
                             "2023-04-12_oasst_ready.trees.jsonl.gz"],
    "facebook/belebele": ["README.md", *(f"data/{get_language(c).belebele_config}.jsonl" for c in ("en", *PAPER_LANGS))],
    "openai/MMMLU": ["README.md", "test/mmlu_SW-KE.csv", "test/mmlu_ZH-CN.csv", "test/mmlu_KO-KR.csv"],
    "cais/mmlu": ["README.md", "all/test-00000-of-00001.parquet", "all/auxiliary_train-00000-of-00001.parquet"],
    "tatsu-lab/alpaca_eval": ["alpaca_eval.json", "alpaca_eval.py"],
}


def test_cache_holds_every_paper_id_in_the_hub_layout(hub_cache):
    from huggingface_hub import scan_cache_dir

    assert paper_ids() <= set(REPOS), "a paper config names an id without a stand-in"
    info = scan_cache_dir(hub_cache)
    assert info.warnings == []
    found = {r.repo_id: r for r in info.repos}
    assert {(r.repo_type, r.repo_id) for r in info.repos} == {(t, i) for i, (t, _) in REPOS.items()}
    for repo_id, files in REAL_FILES.items():
        (revision,) = found[repo_id].revisions
        assert revision.refs == frozenset({"main"})
        names = {f.file_path.relative_to(revision.snapshot_path).as_posix() for f in revision.files}
        assert set(files) <= names, (repo_id, sorted(set(files) - names))
        for f in revision.files:  # snapshot entries are links into blobs/, named as the hub names them
            assert f.file_path.is_symlink() and f.blob_path.parent.name == "blobs"
            assert len(f.blob_path.name) == (64 if f.file_name.endswith(LFS_SUFFIXES) else 40)


def test_build_only_what_is_asked(tmp_path):
    build_hub_cache(tmp_path, ["tatsu-lab/alpaca_eval"])
    assert [p.name for p in tmp_path.iterdir()] == ["datasets--tatsu-lab--alpaca_eval"]
    with pytest.raises(ValueError, match="no stand-in"):
        build_hub_cache(tmp_path, ["org/unknown"])


# ------------------------------------------------------------------------------------------ models

# id -> (architecture class, tokenizer kind, adds BOS, has a chat template) as the real repos have them
BASE_MODELS = {
    "meta-llama/Meta-Llama-3-8B": ("LlamaForCausalLM", "byte-level", True, False),
    "meta-llama/Llama-2-7b-hf": ("LlamaForCausalLM", "sentencepiece", True, False),
    "meta-llama/Llama-2-13b-hf": ("LlamaForCausalLM", "sentencepiece", True, False),
    "mistralai/Mistral-7B-v0.1": ("MistralForCausalLM", "sentencepiece", True, False),
    "Qwen/Qwen2.5-3B": ("Qwen2ForCausalLM", "byte-level", False, True),
}


@pytest.mark.parametrize("model_id", list(BASE_MODELS))
def test_base_model_loads_with_its_tokenizer_and_chat_format(model_id, hub_cache):
    import torch
    from huggingface_hub import try_to_load_from_cache

    from langshift import models

    arch, kind, adds_bos, has_template = BASE_MODELS[model_id]
    model, tok = models.load(model_id)
    real = REAL_CONFIGS[model_id]
    assert type(model).__name__ == arch
    assert model.config.tie_word_embeddings == real["tie_word_embeddings"]
    assert (model.config.num_key_value_heads < model.config.num_attention_heads) == (
        real["num_key_value_heads"] < real["num_attention_heads"]
    )
    index = try_to_load_from_cache(model_id, "model.safetensors.index.json")
    assert isinstance(index, str) and Path(index).is_relative_to(hub_cache)

    pieces = tok.convert_ids_to_tokens(tok("hello world", add_special_tokens=False).input_ids)
    marker = {"sentencepiece": "▁", "byte-level": "Ġ"}[kind]  # how each kind spells a word-initial space
    assert any(p.startswith(marker) for p in pieces), pieces
    ids = tok("hello").input_ids
    assert (ids[0] == tok.bos_token_id) == adds_bos

    fmt = models.chat_format(tok)
    assert (fmt.template is not None) == has_template
    if has_template:
        assert fmt.end == "<|im_end|>" and len(tok("<|im_end|>", add_special_tokens=False).input_ids) == 1
        assert fmt.prompt_text(tok, "Habari?").endswith("<|im_start|>assistant\n")
    else:
        assert fmt.end == tok.eos_token
    batch = tok([fmt.prompt_text(tok, "Habari?")], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch.input_ids.shape[1], model.config.vocab_size)
    assert model.config.vocab_size >= len(tok)


def test_m2m100_translator_from_the_hub_id(hub_cache):
    from huggingface_hub import try_to_load_from_cache

    from langshift.data.translators import make_translator

    translator = make_translator("hf", model="facebook/m2m100_1.2B", beam_size=1, max_length=6, device="cpu")
    assert translator.family == "m2m100" and type(translator.tokenizer).__name__ == "M2M100Tokenizer"
    vocab = translator.tokenizer.get_vocab()
    assert all(f"__{get_language(code).m2m100}__" in vocab for code in ("en", *PAPER_LANGS))
    assert isinstance(try_to_load_from_cache("facebook/m2m100_1.2B", "pytorch_model.bin"), str)
    out = translator.translate(["Hello there.", "How are you today?"], "en", "sw")
    assert len(out) == 2 and all(isinstance(t, str) for t in out)


# ---------------------------------------------------------------------------------------- datasets


def test_oasst1_through_the_hub_path(hub_cache):
    from langshift.data.english import load_english
    from langshift.hub import load_split

    train = load_split("OpenAssistant/oasst1", split="train")
    assert train.features == oasst1_features()

    messages = oasst1_messages()
    all_messages = messages["train"] + messages["validation"]
    by_id = {m["message_id"]: m for m in all_messages}
    rows = load_english("oasst1")
    assert rows and load_english("oasst1", 5) == rows[:5]
    for row in rows:
        prompt, reply = by_id[row["meta"]["prompt_id"]], by_id[row["meta"]["reply_id"]]
        assert prompt["parent_id"] is None and reply["parent_id"] == prompt["message_id"]
        assert prompt["lang"] == reply["lang"] == "en" and not prompt["deleted"]
        assert reply["review_result"] and reply["role"] == "assistant"
    ranks = [r["meta"]["rank"] for r in rows]
    assert ranks == sorted(ranks, key=lambda r: (r is None, r or 0))
    roots = {r["meta"]["prompt_id"] for r in rows}
    assert {m["message_id"] for m in messages["validation"] if m["parent_id"] is None} <= roots  # both splits read
    assert not any(m["deleted"] or m["lang"] != "en" for m in all_messages if m["message_id"] in roots)


@pytest.mark.parametrize("lang", ("en", *PAPER_LANGS))
def test_belebele_config_per_language(lang, hub_cache):
    from langshift.eval.belebele import load_belebele

    items = load_belebele("facebook/belebele", lang)
    assert items and {i["dialect"] for i in items} == {get_language(lang).belebele_config}
    for item in items:
        assert len(item["options"]) == 4 and item["answer"] in range(4) and item["passage"] and item["question"]


@pytest.mark.parametrize("lang", ("en", *PAPER_LANGS))
def test_mmmlu_config_per_language(lang, hub_cache):
    from langshift.eval.mmmlu import load_mmmlu

    items = load_mmmlu("openai/MMMLU", lang)  # English comes from cais/mmlu, config all, split test
    assert items
    for item in items:
        assert len(item["options"]) == 4 and item["answer"] in "ABCD" and item["subject"] != "unknown"
    if lang != "en":  # MMMLU's CSVs keep pandas' index column: it becomes the item id
        assert [i["id"] for i in items] == [str(n) for n in range(len(items))]


def test_alpaca_eval_instructions_from_its_json(hub_cache):
    from langshift.eval.alpaca_data import load_instructions

    rows = load_instructions("tatsu-lab/alpaca_eval", "en")
    assert rows == load_instructions(None, "en")
    assert [r["id"] for r in rows] == [f"alpaca-{i:04d}" for i in range(len(rows))]
    assert all(r["instruction"].strip() for r in rows)
    assert {r["dataset"] for r in rows} <= {"helpful_base", "koala", "oasst", "selfinstruct", "vicuna"}
    assert load_instructions("tatsu-lab/alpaca_eval", "en", limit=3) == rows[:3]


def test_offline_reads_the_cached_snapshot_where_a_plain_hub_call_cannot(hub_cache):
    """Why `langshift.hub.load_split` exists: offline, `load_dataset("org/name")` only finds data an
    earlier online call prepared, not the repo sitting in the hub cache (`hf download`)."""
    import datasets

    from langshift.hub import load_split

    with pytest.raises(ConnectionError, match="facebook/belebele"):
        datasets.load_dataset("facebook/belebele", "kor_Hang", split="test")
    assert len(load_split("facebook/belebele", "kor_Hang", split="test")) > 0


def test_the_guard_stops_a_connection(no_network):
    import socket

    with pytest.raises(AssertionError, match="network access attempted"):
        socket.socket().connect(("192.0.2.1", 443))  # TEST-NET-1: never routed
    with pytest.raises(AssertionError, match="name resolution attempted"):
        socket.getaddrinfo("huggingface.co", 443)
    assert len(no_network) == 2
    no_network.clear()  # the autouse check after the test must not count these deliberate attempts


def test_the_guard_stops_a_child_process(no_network):
    """A process the test starts (a `jobs: N` stage, an `accelerate launch` worker) is guarded too, and
    its attempt is logged even where the child swallows the error."""
    import subprocess
    import sys

    swallowed = "import socket\ntry:\n    socket.getaddrinfo('huggingface.co', 443)\nexcept AssertionError:\n    pass"
    subprocess.run([sys.executable, "-c", swallowed], check=True)
    assert no_network == [] and [a["attempt"] for a in no_network.all()] == ["'huggingface.co'"]
    no_network.log.unlink()
