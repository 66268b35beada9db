"""A Hugging Face hub cache of tiny stand-ins, under the exact ids that `configs/paper/*.yaml` use.

`build_hub_cache(dir)` writes the on-disk layout of `HF_HUB_CACHE` (`models--org--name/` and
`datasets--org--name/`, each with `blobs/`, `refs/main` and `snapshots/<commit>/<file>` symlinks into
`blobs/`, blobs named by sha256 for LFS-type files and by git blob sha1 otherwise, as the hub names
them). With `HF_HUB_OFFLINE=1` the real `from_pretrained`, `hf_hub_download`, `snapshot_download`
and `load_dataset` code then resolves these ids from it, so a paper config runs end to end on a CPU.

What is real and what is not. File names, repo layout, configs, splits, column names and types,
tokenizer kinds and chat templates follow the real repos (sources below). The content is tiny: models
are random (2 layers, hidden 64) of the same architecture class; tokenizers are trained here on the
demo data (a few hundred tokens instead of 32k-152k); datasets hold a few rows per language (text from
`langshift/data/demo`, English text standing in where the demo has no such language); config.json
keeps the real keys and values except sizes and the token ids of the stand-in tokenizer. Only the
files our code reads are stood in (e.g. no `pytorch_model-*.bin` copies next to safetensors, no
`original/` folder, no per-subject MMLU configs). The commit hashes are made up (sha1 of the content).

Sources (looked up for this module; the hub pages as stored by public mirrors and code that cites them):
  * meta-llama/Meta-Llama-3-8B: config.json (LlamaForCausalLM, vocab 128256, GQA 32/8, rope_theta 5e5,
    untied) as reprinted in fine-tunes' configs, e.g. huggingface.co/mlfoundations/tabula-8b; tokenizer
    is a tiktoken-style byte-level BPE in tokenizer.json, tokenizer_class PreTrainedTokenizerFast,
    bos <|begin_of_text|>, eos <|end_of_text|>, <|eot_id|> among the added specials; tokenizer_config
    has no chat_template (50.6 kB in copies of the base repo vs 51 kB with the template in the Instruct
    one; only Instruct ships it); 4 safetensors shards model-0000N-of-00004.
  * meta-llama/Llama-2-7b-hf, -13b-hf: LlamaTokenizer (sentencepiece BPE with byte fallback,
    tokenizer.model + tokenizer.json), <unk>=0 <s>=1 </s>=2, add_bos_token true, no chat_template in
    the base repos; 2 and 3 shards.
  * mistralai/Mistral-7B-v0.1: tokenizer_config.json as copied into its fine-tunes (e.g.
    huggingface.co/hf-internal-testing/tiny-random-MistralModel, whose tokenizer_file points at
    models--mistralai--Mistral-7B-v0.1): LlamaTokenizer, legacy true, add_bos_token true, no
    chat_template; config.json MistralForCausalLM, sliding_window 4096, GQA 32/8; 2 shards.
  * Qwen/Qwen2.5-3B: config.json as reprinted in huggingface.co/BitStack/BitStack-Qwen2.5-3B
    (Qwen2ForCausalLM, tie_word_embeddings true, vocab 151936 padded past the tokenizer, eos
    <|endoftext|>); Qwen2Tokenizer (vocab.json + merges.txt + tokenizer.json); the base repo's
    tokenizer_config carries a ChatML chat_template whose default system prompt is "You are a helpful
    assistant." (as in copies of Qwen2.5 base tokenizers, e.g. Sakura-14B-Qwen2.5; the Instruct repos say
    "You are Qwen, created by Alibaba Cloud..."); its tool-calling branch is left out here; 2 shards.
  * facebook/m2m100_1.2B: file list of main (huggingface.co/facebook/m2m100_1.2B/tree/main): config.json,
    generation_config.json, pytorch_model.bin (model.safetensors exists only in the unmerged refs/pr/7),
    sentencepiece.bpe.model, vocab.json, tokenizer_config.json (271 B), special_tokens_map.json (1.14 kB,
    the 100 __xx__ language codes); config.json as reprinted by its fine-tunes (d_model 1024, 24+24
    layers, vocab 128112, scale_embedding, num_beams 5, max_length 200).
  * OpenAssistant/oasst1: README dataset_info (huggingface.co/datasets/OpenAssistant/oasst1/blob/main/
    README.md): 18 columns, types below; no `configs:` block, so splits come from the file names
    data/train-00000-of-00001-b42a775f407cee45.parquet and data/validation-00000-of-00001-
    134b8fd0c89408b6.parquet (revision fdf72ae0827c1cda404aff25b6603abec9e3399b, as pinned by projects
    that download them); the 2023-04-12_oasst_ready.{messages,trees}.jsonl.gz exports sit at the root.
  * facebook/belebele: README `configs:` one per FLORES-200 code, split `test`, data/<code>.jsonl
    (commit 72d7d68 "Modify config to enable downloading just one language/file at a time"); fields
    link, question_number, flores_passage, question, mc_answer1-4, correct_answer_num (a string,
    1-indexed), dialect, ds (data/README of the repo and its loading script unused/belebele.py).
  * openai/MMMLU: README `configs:` default (test/*.csv) and one per locale (AR_XY ... ZH_CN, split
    `test`, path test/mmlu_<XX-YY>.csv); CSVs written with pandas' index, so the first column reads back
    as "Unnamed: 0", then Question, A, B, C, D, Answer, Subject.
  * cais/mmlu (our English MMMLU, `load_mmmlu(..., "en")`): config `all`, splits test / validation /
    dev / auxiliary_train at all/<split>-00000-of-00001.parquet; question, subject, choices (sequence of
    strings), answer (class_label A-D) (README dataset_info and commit c30699e).
  * tatsu-lab/alpaca_eval: a loading script alpaca_eval.py (config alpaca_eval, split `eval`, _URLS
    "./alpaca_eval.json") plus JSON files; rows instruction, output, generator, dataset (805 in the real
    one); `datasets` >= 4 refuses the repo ("Dataset scripts are no longer supported",
    github.com/tatsu-lab/alpaca_eval/issues/454), so readers must fetch alpaca_eval.json directly.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from langshift.files import atomic_dir
from langshift.testing.hub_tokenizers import (
    BPE_VOCAB,
    corpus,
    demo_rows,
    tokenizer_llama2,
    tokenizer_llama3,
    tokenizer_qwen2,
    train_llama_spm,
    write_hub_json,
)

LFS_SUFFIXES = (".safetensors", ".bin", ".parquet", ".model", ".gz", ".json.gz")
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}

# Languages the paper configs name (and English); FLORES-200 codes for BELEBELE, locales for MMMLU.
BELEBELE_CODES = ("eng_Latn", "zho_Hans", "deu_Latn", "kor_Hang", "ind_Latn", "swh_Latn", "yor_Latn")
MMMLU_LOCALES = ("DE_DE", "ID_ID", "KO_KR", "SW_KE", "YO_NG", "ZH_CN")
DEMO_LANG = {"eng_Latn": "en", "deu_Latn": "de", "swh_Latn": "sw", "DE_DE": "de", "SW_KE": "sw"}


# ---------------------------------------------------------------------------------- cache layout


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _blob_name(path: str, data: bytes) -> str:
    """The hub names LFS blobs by their sha256 and plain git files by their git blob sha1."""
    return hashlib.sha256(data).hexdigest() if path.endswith(LFS_SUFFIXES) else _git_blob_sha1(data)


def repo_folder(cache_dir: str | os.PathLike, repo_type: str, repo_id: str) -> Path:
    return Path(cache_dir) / f"{repo_type}s--{repo_id.replace('/', '--')}"


def commit_repo(cache_dir: Path, repo_type: str, repo_id: str, staged: Path) -> str:
    """Move the files under `staged` into the cache as one commit of `repo_id`; returns the commit."""
    files = sorted(p for p in staged.rglob("*") if p.is_file())
    contents = {p.relative_to(staged).as_posix(): p.read_bytes() for p in files}
    commit = hashlib.sha1(
        b"".join(name.encode() + b"\0" + _blob_name(name, data).encode() for name, data in contents.items())
    ).hexdigest()
    with atomic_dir(repo_folder(cache_dir, repo_type, repo_id)) as folder:
        (folder / "blobs").mkdir()
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text(commit)
        snapshot = folder / "snapshots" / commit
        for name, data in contents.items():
            blob = folder / "blobs" / _blob_name(name, data)
            blob.write_bytes(data)
            link = snapshot / name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    return commit


# ------------------------------------------------------------------------------------------ models

# The real config.json of each base model (sizes and token ids are replaced by the stand-in's).
REAL_CONFIGS = {
    "meta-llama/Meta-Llama-3-8B": {
        "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
        "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192,
        "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 500000.0,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.40.0.dev0",
        "use_cache": True, "vocab_size": 128256,
    },
    "meta-llama/Llama-2-7b-hf": {
        "_name_or_path": "meta-llama/Llama-2-7b-hf", "architectures": ["LlamaForCausalLM"], "bos_token_id": 1,
        "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
        "intermediate_size": 11008, "max_position_embeddings": 4096, "model_type": "llama",
        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32, "pretraining_tp": 1,
        "rms_norm_eps": 1e-05, "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "float16",
        "transformers_version": "4.31.0.dev0", "use_cache": True, "vocab_size": 32000,
    },
    "meta-llama/Llama-2-13b-hf": {
        "_name_or_path": "meta-llama/Llama-2-13b-hf", "architectures": ["LlamaForCausalLM"], "bos_token_id": 1,
        "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 5120, "initializer_range": 0.02,
        "intermediate_size": 13824, "max_position_embeddings": 4096, "model_type": "llama",
        "num_attention_heads": 40, "num_hidden_layers": 40, "num_key_value_heads": 40, "pretraining_tp": 1,
        "rms_norm_eps": 1e-05, "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "float16",
        "transformers_version": "4.32.0.dev0", "use_cache": True, "vocab_size": 32000,
    },
    "mistralai/Mistral-7B-v0.1": {
        "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
        "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
        "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
        "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
        "sliding_window": 4096, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.34.0.dev0", "use_cache": True, "vocab_size": 32000,
    },
    "Qwen/Qwen2.5-3B": {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
        "intermediate_size": 11008, "max_position_embeddings": 32768, "max_window_layers": 36,
        "model_type": "qwen2", "num_attention_heads": 16, "num_hidden_layers": 36, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "transformers_version": "4.40.1", "use_cache": True,
        "use_sliding_window": False, "vocab_size": 151936,
    },
}
SHARDS = {
    "meta-llama/Meta-Llama-3-8B": 4,
    "meta-llama/Llama-2-7b-hf": 2,
    "meta-llama/Llama-2-13b-hf": 3,
    "mistralai/Mistral-7B-v0.1": 2,
    "Qwen/Qwen2.5-3B": 2,
}


def _seed(repo_id: str) -> int:
    return int(hashlib.sha256(repo_id.encode()).hexdigest()[:8], 16)


def _tiny_config(real: dict, tokens: dict) -> dict:
    """The real config with tiny sizes; grouped-query attention stays grouped, multi-head stays multi-head."""
    grouped = real["num_key_value_heads"] < real["num_attention_heads"]
    return {**real, **TINY, "num_key_value_heads": 1 if grouped else TINY["num_attention_heads"], **tokens}


def save_sharded(state: dict, folder: Path, shards: int) -> list[str]:
    """safetensors shards named as the hub names them, and model.safetensors.index.json."""
    from safetensors.torch import save_file

    names = list(state)
    per = -(-len(names) // shards)
    files, weight_map = [], {}
    for i in range(shards):
        chunk = names[i * per : (i + 1) * per]
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({k: state[k].contiguous() for k in chunk}, str(folder / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(chunk, fname))
        files.append(fname)
    total = sum(t.numel() * t.element_size() for t in state.values())
    write_hub_json(folder / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    return files


def _causal_lm(repo_id: str, stage: Path, tokens: dict, generation: dict) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    real = REAL_CONFIGS[repo_id]
    write_hub_json(stage / "config.json", _tiny_config(real, tokens))
    config = AutoConfig.from_pretrained(stage)  # through the loader, as a user's from_pretrained reads it
    torch.manual_seed(_seed(repo_id))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = model.state_dict()
    if real["tie_word_embeddings"]:
        state.pop("lm_head.weight", None)  # tied checkpoints store the embedding once
    save_sharded(state, stage, SHARDS[repo_id])
    write_hub_json(stage / "generation_config.json", {"_from_model_config": True, **generation,
                                                   "transformers_version": real["transformers_version"]})


class _Shared:
    """Artifacts several stand-ins reuse within one build (the Llama-style sentencepiece model)."""

    def __init__(self, work: Path):
        self.work = work
        self._spm: Path | None = None

    @property
    def spm(self) -> Path:
        if self._spm is None:
            self._spm = train_llama_spm(self.work / "llama-spm")
        return self._spm


def _llama3(repo_id: str, stage: Path, shared: _Shared) -> None:
    tokens = tokenizer_llama3(stage)
    _causal_lm(repo_id, stage, tokens, {"bos_token_id": tokens["bos_token_id"], "eos_token_id": tokens["eos_token_id"]})


def _llama2(repo_id: str, stage: Path, shared: _Shared) -> None:
    tokens = tokenizer_llama2(stage, shared.spm, legacy=False, mistral=False)
    _causal_lm(repo_id, stage, tokens, {"bos_token_id": 1, "do_sample": True, "eos_token_id": 2, "max_length": 4096,
                                        "pad_token_id": 0, "temperature": 0.6, "top_p": 0.9})


def _mistral(repo_id: str, stage: Path, shared: _Shared) -> None:
    tokens = tokenizer_llama2(stage, shared.spm, legacy=True, mistral=True)
    _causal_lm(repo_id, stage, tokens, {"bos_token_id": 1, "eos_token_id": 2})


def _qwen25(repo_id: str, stage: Path, shared: _Shared) -> None:
    tokens = tokenizer_qwen2(stage)
    _causal_lm(repo_id, stage, tokens, {"bos_token_id": tokens["bos_token_id"], "do_sample": False,
                                        "eos_token_id": tokens["eos_token_id"], "max_new_tokens": 2048})


def _m2m100(repo_id: str, stage: Path, shared: _Shared) -> None:
    """The tiny M2M100 of `tiny_mt` (fairseq vocab + sentencepiece + the 100 language tokens), re-saved
    in the repo's own layout: pytorch_model.bin and 4.x-style tokenizer files."""
    import torch
    from safetensors.torch import load_file
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

    from langshift.testing.tiny_mt import make_tiny_m2m100

    built = make_tiny_m2m100(shared.work / "m2m100", corpus=corpus()[:200], vocab_size=BPE_VOCAB, d_model=64,
                             ffn=128, seed=_seed(repo_id))
    for name in ("vocab.json", "sentencepiece.bpe.model"):
        shutil.copy(built / name, stage / name)
    config = json.loads((built / "config.json").read_text())
    real = {"_name_or_path": "hf_models/m2m100_1.2B", "activation_dropout": 0.0, "activation_function": "relu",
            "architectures": ["M2M100ForConditionalGeneration"], "attention_dropout": 0.1, "bos_token_id": 0,
            "decoder_layerdrop": 0.05, "decoder_start_token_id": 2, "dropout": 0.1, "early_stopping": True,
            "encoder_layerdrop": 0.05, "eos_token_id": 2, "gradient_checkpointing": False, "init_std": 0.02,
            "is_encoder_decoder": True, "max_length": 200, "max_position_embeddings": 1024,
            "model_type": "m2m_100", "num_beams": 5, "pad_token_id": 1, "scale_embedding": True,
            "torch_dtype": "float32", "transformers_version": "4.4.0.dev0", "use_cache": True}
    sizes = ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads", "decoder_attention_heads",
             "encoder_ffn_dim", "decoder_ffn_dim", "vocab_size")
    write_hub_json(stage / "config.json", {**real, **{k: config[k] for k in sizes}, "num_hidden_layers": config["encoder_layers"]})
    write_hub_json(stage / "generation_config.json", {"_from_model_config": True, "bos_token_id": 0,
                                                   "decoder_start_token_id": 2, "early_stopping": True,
                                                   "eos_token_id": 2, "max_length": 200, "num_beams": 5,
                                                   "pad_token_id": 1, "transformers_version": "4.27.0.dev0"})
    # The main branch has no safetensors: torch.save of the state dict, as the repo's pytorch_model.bin.
    torch.save(load_file(str(built / "model.safetensors")), stage / "pytorch_model.bin")
    langs = [f"__{c}__" for c in FAIRSEQ_LANGUAGE_CODES["m2m100"]]
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>", "pad_token": "<pad>"}
    write_hub_json(stage / "special_tokens_map.json", {**specials, "additional_special_tokens": langs})
    write_hub_json(stage / "tokenizer_config.json", {"src_lang": None, "tgt_lang": None, **specials,
                                                  "language_codes": "m2m100", "num_madeup_words": 8,
                                                  "model_max_length": 1024, "tokenizer_class": "M2M100Tokenizer"})


# ---------------------------------------------------------------------------------------- datasets


def _readme(stage: Path, meta: dict, title: str) -> None:
    import yaml

    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    (stage / "README.md").write_text(
        f"---\n{front}---\n\n# {title} (langshift stand-in)\n\nTiny rows with the real schema, for offline tests.\n",
        encoding="utf-8",
    )


def oasst1_features():
    """OpenAssistant/oasst1's columns and types, from its README dataset_info."""
    from datasets import Features, Sequence, Value

    return Features(
        {
            "message_id": Value("string"), "parent_id": Value("string"), "user_id": Value("string"),
            "created_date": Value("string"), "text": Value("string"), "role": Value("string"),
            "lang": Value("string"), "review_count": Value("int32"), "review_result": Value("bool"),
            "deleted": Value("bool"), "rank": Value("int32"), "synthetic": Value("bool"),
            "model_name": Value("string"),
            "detoxify": {k: Value("float64") for k in ("toxicity", "severe_toxicity", "obscene", "identity_attack",
                                                       "insult", "threat", "sexual_explicit")},
            "message_tree_id": Value("string"), "tree_state": Value("string"),
            "emojis": Sequence({"name": Value("string"), "count": Value("int32")}),
            "labels": Sequence({"name": Value("string"), "value": Value("float64"), "count": Value("int32")}),
        }
    )


def _features_yaml(features) -> list[dict]:
    return features._to_yaml_list()


def _split_info(name: str, table) -> dict:
    """A README `splits:` entry; `datasets` checks num_examples against the data it prepares."""
    return {"name": name, "num_bytes": table.data.nbytes, "num_examples": len(table)}


class _Ids:
    """Deterministic UUIDs, as oasst1's message and tree ids are UUIDs."""

    def __init__(self):
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return str(uuid.UUID(int=_seed(f"oasst1-{self.n}") << 96 | self.n, version=4))


def oasst1_messages() -> dict[str, list[dict]]:
    """Message trees per split: English trees whose root has two ranked replies (the first with a
    follow-up turn), plus the cases the selection rule handles: a deleted root, a reply that failed
    review, an unranked reply, a non-English tree."""
    new_id = _Ids()
    seeds = demo_rows("seed_a.jsonl") + demo_rows("seed_b.jsonl")

    def message(tree, parent, role, text, *, lang="en", rank=None, deleted=False, review=True):
        return {
            "message_id": new_id(), "parent_id": parent, "user_id": new_id(),
            "created_date": f"2023-02-{1 + len(text) % 27:02d}T14:23:50.983374+00:00", "text": text, "role": role,
            "lang": lang, "review_count": 3, "review_result": review, "deleted": deleted, "rank": rank,
            "synthetic": False, "model_name": None,
            "detoxify": None if role == "assistant" and rank is None else {
                "toxicity": 0.0004, "severe_toxicity": 1e-05, "obscene": 0.0001, "identity_attack": 0.0001,
                "insult": 0.0002, "threat": 4e-05, "sexual_explicit": 3e-05},
            "message_tree_id": tree, "tree_state": "ready_for_export",
            "emojis": {"name": ["+1", "_skip_reply"], "count": [2, 1]},
            "labels": {"name": ["spam", "lang_mismatch", "quality"], "value": [0.0, 0.0, 0.75], "count": [3, 3, 3]},
        }

    def tree(k: int, **root_kw) -> list[dict]:
        tid = new_id()
        row, other = seeds[k], seeds[(k + 1) % len(seeds)]
        root = message(tid, None, "prompter", row["en_prompt"], **root_kw)
        root["message_tree_id"] = root["message_id"] = tid  # oasst1: the tree id is the root's message id
        best = message(tid, tid, "assistant", row["en_response"], rank=0)
        second = message(tid, tid, "assistant", other["en_response"], rank=1)
        follow = message(tid, best["message_id"], "prompter", "Thanks! Could you say that more briefly?")
        return [root, best, second, follow]

    train = [m for k in range(24) for m in tree(k)]
    validation = [m for k in range(24, 28) for m in tree(k)]
    train += tree(28, deleted=True)  # a deleted root drops its whole tree
    failed = tree(29)
    failed[1]["review_result"] = False  # the rank-0 reply failed review
    train += failed
    lone = tree(30)[:2]
    lone[1]["rank"] = None  # a single, unranked reply
    train += lone
    sw = seeds[31]["translations"]["sw"]
    swahili = tree(31, lang="sw")
    swahili[0]["text"], swahili[1]["text"] = sw["prompt"], sw["response"]
    for m in swahili:
        m["lang"] = "sw"
    train += swahili
    return {"train": train, "validation": validation}


def _nest(messages: list[dict]) -> list[dict]:
    """The `.trees.jsonl` export: one object per tree, replies nested under each message."""
    by_parent: dict[str | None, list[dict]] = {}
    for m in messages:
        by_parent.setdefault(m["parent_id"], []).append(m)

    def node(m):
        out = {k: v for k, v in m.items() if k not in ("parent_id", "message_tree_id", "tree_state")}
        kids = [node(c) for c in by_parent.get(m["message_id"], [])]
        return {**out, "replies": kids} if kids else out

    return [{"message_tree_id": r["message_tree_id"], "tree_state": r["tree_state"], "prompt": node(r)}
            for r in by_parent.get(None, [])]


def _gz_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _oasst1(repo_id: str, stage: Path, shared: _Shared) -> None:
    from datasets import Dataset

    features = oasst1_features()
    splits = oasst1_messages()
    names = {"train": "data/train-00000-of-00001-b42a775f407cee45.parquet",
             "validation": "data/validation-00000-of-00001-134b8fd0c89408b6.parquet"}
    (stage / "data").mkdir()
    tables = {split: Dataset.from_list(rows, features=features) for split, rows in splits.items()}
    for split, table in tables.items():
        table.to_parquet(str(stage / names[split]))
    everything = splits["train"] + splits["validation"]
    _gz_jsonl(stage / "2023-04-12_oasst_ready.messages.jsonl.gz", everything)
    _gz_jsonl(stage / "2023-04-12_oasst_ready.trees.jsonl.gz", _nest(everything))
    _readme(stage, {
        "license": "apache-2.0",
        "dataset_info": {
            "features": _features_yaml(features),
            "splits": [_split_info(s, tables[s]) for s in splits],
        },
        "language": ["en", "sw"],
        "tags": ["human-feedback"],
        "pretty_name": "OpenAssistant Conversations",
    }, "OpenAssistant Conversations Dataset (OASST1)")


def _belebele(repo_id: str, stage: Path, shared: _Shared) -> None:
    items = demo_rows("belebele.jsonl")
    (stage / "data").mkdir()
    for code in BELEBELE_CODES:
        source = DEMO_LANG.get(code, "en")
        rows = [r for r in items if r["dialect"] == {"en": "eng_Latn", "de": "deu_Latn", "sw": "swh_Latn"}[source]][:8]
        lines = [json.dumps({**r, "dialect": code, "ds": "2023-05-03"}, ensure_ascii=False) for r in rows]
        (stage / "data" / f"{code}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _readme(stage, {
        "configs": [{"config_name": c, "data_files": [{"split": "test", "path": f"data/{c}.jsonl"}]}
                    for c in BELEBELE_CODES],
        "license": "cc-by-sa-4.0",
    }, "The Belebele Benchmark for Massively Multilingual NLU Evaluation")


def _mmmlu(repo_id: str, stage: Path, shared: _Shared) -> None:
    import pandas as pd

    items = demo_rows("mmmlu.jsonl")
    (stage / "test").mkdir()
    for locale in MMMLU_LOCALES:
        lang = DEMO_LANG.get(locale, "en")
        rows = [{k: r[k] for k in ("Question", "A", "B", "C", "D", "Answer", "Subject")}
                for r in items if r["lang"] == lang][:8]
        file = f"test/mmlu_{locale.replace('_', '-')}.csv"
        pd.DataFrame(rows).to_csv(stage / file)  # with pandas' index column, as OpenAI wrote them
    _readme(stage, {
        "task_categories": ["question-answering"],
        "configs": [{"config_name": "default", "data_files": [{"split": "test", "path": "test/*.csv"}]}]
        + [{"config_name": loc, "data_files": [{"split": "test", "path": f"test/mmlu_{loc.replace('_', '-')}.csv"}]}
           for loc in MMMLU_LOCALES],
        "license": "mit",
    }, "Multilingual Massive Multitask Language Understanding (MMMLU)")


def _mmlu(repo_id: str, stage: Path, shared: _Shared) -> None:
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    features = Features({"question": Value("string"), "subject": Value("string"),
                         "choices": Sequence(Value("string")), "answer": ClassLabel(names=["A", "B", "C", "D"])})
    english = [r for r in demo_rows("mmmlu.jsonl") if r["lang"] == "en"]
    rows = [{"question": r["Question"], "subject": r["Subject"], "choices": [r[c] for c in "ABCD"],
             "answer": "ABCD".index(r["Answer"])} for r in english]
    splits = {"test": rows[:12], "validation": rows[12:16], "dev": rows[16:21], "auxiliary_train": rows[21:24]}
    (stage / "all").mkdir()
    tables = {split: Dataset.from_list(part, features=features) for split, part in splits.items()}
    for split, table in tables.items():
        table.to_parquet(str(stage / "all" / f"{split}-00000-of-00001.parquet"))
    _readme(stage, {
        "language": ["en"],
        "license": ["mit"],
        "dataset_info": [{"config_name": "all", "features": _features_yaml(features),
                          "splits": [_split_info(s, t) for s, t in tables.items()]}],
        "configs": [{"config_name": "all", "data_files": [{"split": s, "path": f"all/{s}-*"} for s in splits]}],
    }, "Measuring Massive Multitask Language Understanding (MMLU)")


def _alpaca_eval(repo_id: str, stage: Path, shared: _Shared) -> None:
    prompts = demo_rows("prompts.jsonl")[:12]
    sources = ("helpful_base", "koala", "oasst", "selfinstruct", "vicuna")
    rows = [{"instruction": p["en"], "output": "(reference output)", "generator": "text_davinci_003",
             "dataset": sources[i % len(sources)]} for i, p in enumerate(prompts)]
    (stage / "alpaca_eval.json").write_text(json.dumps(rows, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
    # The repo is a loading-script dataset; only the script's presence matters here (datasets >= 4
    # refuses any repo that has one), so the stand-in script is a stub.
    (stage / "alpaca_eval.py").write_text(
        '"""Stand-in for the repo\'s loading script (config alpaca_eval, split eval -> ./alpaca_eval.json)."""\n'
    )
    _readme(stage, {"license": "cc-by-nc-4.0"}, "AlpacaEval")


# ------------------------------------------------------------------------------------------- build

Builder = Callable[[str, Path, _Shared], None]
REPOS: dict[str, tuple[str, Builder]] = {
    "meta-llama/Meta-Llama-3-8B": ("model", _llama3),
    "meta-llama/Llama-2-7b-hf": ("model", _llama2),
    "meta-llama/Llama-2-13b-hf": ("model", _llama2),
    "mistralai/Mistral-7B-v0.1": ("model", _mistral),
    "Qwen/Qwen2.5-3B": ("model", _qwen25),
    "facebook/m2m100_1.2B": ("model", _m2m100),
    "OpenAssistant/oasst1": ("dataset", _oasst1),
    "facebook/belebele": ("dataset", _belebele),
    "openai/MMMLU": ("dataset", _mmmlu),
    "cais/mmlu": ("dataset", _mmlu),
    "tatsu-lab/alpaca_eval": ("dataset", _alpaca_eval),
}
BASE_MODELS = tuple(REAL_CONFIGS)


def build_hub_cache(cache_dir: str | os.PathLike, ids: Iterable[str] | None = None) -> Path:
    """Write the stand-ins of `ids` (default: all of REPOS) into `cache_dir` laid out as HF_HUB_CACHE."""
    cache = Path(cache_dir)
    wanted = list(REPOS) if ids is None else list(ids)
    unknown = [i for i in wanted if i not in REPOS]
    if unknown:
        raise ValueError(f"no stand-in for {unknown}; known: {sorted(REPOS)}")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="langshift-hub-") as tmp:
        shared = _Shared(Path(tmp))
        for repo_id in wanted:
            repo_type, builder = REPOS[repo_id]
            stage = Path(tmp) / "stage" / repo_id.replace("/", "--")
            stage.mkdir(parents=True)
            builder(repo_id, stage, shared)
            commit_repo(cache, repo_type, repo_id, stage)
    return cache


# ------------------------------------------------------------------------------------- environment


def hub_env(hf_home: str | os.PathLike) -> dict[str, str]:
    """Environment for a process that reads the stand-ins offline: hub cache at HF_HOME/hub (where
    `build_hub_cache` should have written), `datasets`' prepared-data cache at HF_HOME/datasets."""
    home = Path(hf_home)
    return {
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_DATASETS_CACHE": str(home / "datasets"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def _module_constants(home: Path) -> list[tuple[object, str, object]]:
    """(module, attribute, value) for the libraries that read their cache paths once, at import."""
    from datasets import config
    from huggingface_hub import constants

    hub, datasets_cache = home / "hub", home / "datasets"
    return [
        (constants, "HF_HOME", str(home)),
        (constants, "HF_HUB_CACHE", str(hub)),
        (constants, "HF_HUB_OFFLINE", True),
        (config, "HF_CACHE_HOME", str(home)),
        (config, "HF_DATASETS_CACHE", datasets_cache),
        (config, "HF_MODULES_CACHE", home / "modules"),
        (config, "DOWNLOADED_DATASETS_PATH", datasets_cache / "downloads"),
        (config, "EXTRACTED_DATASETS_PATH", datasets_cache / "downloads" / "extracted"),
        (config, "HF_HUB_OFFLINE", True),
        (config, "HF_DATASETS_OFFLINE", True),
    ]


@contextmanager
def offline_hub(hf_home: str | os.PathLike) -> Iterator[Path]:
    """Inside the block, this process reads the hub from `hf_home` offline: the environment of
    `hub_env`, and the same paths patched into huggingface_hub and datasets if they are already
    imported (both read their cache paths once, at import; they are imported here so the patch always
    applies and is undone). Restores everything on exit."""
    home = Path(hf_home)
    saved_env = {k: os.environ.get(k) for k in hub_env(home)}
    os.environ.update(hub_env(home))
    patches = _module_constants(home)
    saved = [(m, a, getattr(m, a)) for m, a, _ in patches]
    for module, attr, value in patches:
        setattr(module, attr, value)
    try:
        yield home / "hub"
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
