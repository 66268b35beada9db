"""Translation backends behind one interface: `translate(texts, src, tgt) -> list[str]`.

  * `hf`           any transformers seq2seq translator (M2M100 — the paper's `facebook/m2m100_1.2B`,
                   NLLB-200, Marian/opus-mt), length-sorted batches, beam search, CPU or GPU;
  * `ctranslate2`  the same models converted to CTranslate2 (int8 on CPU, float16 on GPU): the fast path;
  * `openai`       any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp server) with a prompt;
  * `precomputed`  the rows already hold the translation; nothing is called.

Language codes come from `langshift.languages` (M2M100 `sw`, NLLB `swh_Latn`, opus `sw`): the source
is announced through the tokenizer's `src_lang`, the target by forcing the first decoded token to the
target-language token (`__sw__` / `swh_Latn`), or for multi-target Marian models by a `>>sw<<` prefix.
`identity` names everything that changes the output, and keys the translation cache.

Output length is capped relative to the input (`capped_length`): a model stuck in a loop stops at
`OUTPUT_RATIO` times the input's length plus `OUTPUT_SLACK`, never later than `max_length`, so one
degenerate segment can neither run for minutes nor hand the filters a 100k-character string.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from langshift.files import atomic_dir, write_json
from langshift.fingerprints import model_dir_identity
from langshift.languages import Language, get_language
from langshift.models import cache_dir
from langshift.redact import redact_url

log = logging.getLogger(__name__)

DEFAULT_HF_MODEL = "facebook/m2m100_1.2B"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

# A translation is at most OUTPUT_RATIO x its input (tokens for a seq2seq model, UTF-8 bytes for an API
# model, an upper bound on its tokens) + OUTPUT_SLACK: real translations stay far below (the length
# filter rejects a byte ratio above 3), loops stop early.
OUTPUT_RATIO, OUTPUT_SLACK = 3, 16
CAP = f"cap={OUTPUT_RATIO}x+{OUTPUT_SLACK}"  # in every identity: the rule changes degenerate outputs


def capped_length(input_length: int, max_length: int) -> int:
    """New tokens allowed for an input of `input_length` units: min(max_length, RATIO * n + SLACK)."""
    return max(1, min(max_length, OUTPUT_RATIO * input_length + OUTPUT_SLACK))


class Translator:
    backend = "base"
    model = ""
    batch_size = 16
    # True when each text is translated on its own (one request per text), so a resumed run may send
    # just the texts still missing. A batched model's output can depend on its batch (padding), so it
    # is always given whole batches.
    independent = False

    @property
    def identity(self) -> str:
        """Backend, model and every output-changing option: the cache key prefix."""
        return f"{self.backend}|{self.model}"

    def describe(self) -> dict:
        return {"backend": self.backend, "model": self.model, "identity": self.identity}

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        raise NotImplementedError

    def translate_stream(self, texts: Sequence[str], src: str, tgt: str) -> Iterator[list[tuple[int, str]]]:
        """Translations in groups as they complete, each group [(index into texts, translation)] ready
        to be committed on its own. Default: one group, the whole `translate` call."""
        out = self.translate(texts, src, tgt)
        if len(out) != len(texts):
            raise RuntimeError(f"translator returned {len(out)} outputs for {len(texts)} inputs")
        yield list(enumerate(out))


def make_translator(backend: str, **options) -> Translator:
    """`options` that are None are ignored, so CLI flags left unset fall back to each backend's default."""
    options = {k: v for k, v in options.items() if v is not None}
    if backend not in TRANSLATORS:
        raise ValueError(f"unknown translator {backend!r}; one of {sorted(TRANSLATORS)}")
    try:
        return TRANSLATORS[backend](**options)
    except TypeError as e:
        raise ValueError(f"translator {backend!r}: {e}") from None


def length_sorted_batches(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length: less padding, fewer wasted decoder steps."""
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    return [order[i : i + batch_size] for i in range(0, len(order), max(1, batch_size))]


# ------------------------------------------------------------------------- language-code families


def tokenizer_family(tokenizer) -> str:
    name = type(tokenizer).__name__.lower()
    vocab = tokenizer.get_vocab()
    if "nllb" in name or "eng_Latn" in vocab:
        return "nllb"
    if "m2m" in name or "__en__" in vocab:
        return "m2m100"
    if "marian" in name:
        return "marian"
    return "generic"


def _marian_prefix(tokenizer, tgt: Language) -> str:
    """'>>sw<< ' for multi-target opus-mt models (their vocab lists >>xx<< tokens), '' otherwise."""
    targets = [t for t in tokenizer.get_vocab() if t.startswith(">>") and t.endswith("<<")]
    if not targets:
        return ""
    for code in (tgt.opus, tgt.iso3, tgt.nllb):
        if f">>{code}<<" in targets:
            return f">>{code}<< "
    raise ValueError(
        f"this multi-target Marian model has no token for {tgt.name}; it knows {sorted(targets)[:20]}"
    )


def _codes(family: str, src: Language, tgt: Language) -> tuple[str | None, str | None]:
    """(source code for tokenizer.src_lang, target token forced at the first decoding step)."""
    if family == "m2m100":
        return src.m2m100, f"__{tgt.m2m100}__"
    if family == "nllb":
        return src.nllb, tgt.nllb
    return None, None


# ------------------------------------------------------------------------------------------- hf


class HFTranslator(Translator):
    backend = "hf"

    def __init__(
        self,
        model: str = DEFAULT_HF_MODEL,
        beam_size: int = 4,
        max_length: int = 256,
        batch_size: int = 16,
        device: str = "auto",
        dtype: str = "auto",
        max_input_length: int = 1024,
        min_length: int = 0,
    ):
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.model, self.beam_size, self.max_length, self.batch_size = (
            model,
            beam_size,
            max_length,
            batch_size,
        )
        self.max_input_length, self.min_length = max_input_length, min_length
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        torch_dtype = (
            (torch.float16 if self.device.startswith("cuda") else torch.float32)
            if dtype == "auto"
            else getattr(torch, dtype)
        )
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.net = AutoModelForSeq2SeqLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()
        self.family = tokenizer_family(self.tokenizer)
        self.fingerprint = model_dir_identity(model)
        self.truncated = 0

    @property
    def identity(self) -> str:
        return (
            f"hf|{self.fingerprint}|beam={self.beam_size}|max={self.max_length}|in={self.max_input_length}"
            + (f"|min={self.min_length}" if self.min_length else "") + f"|{CAP}"
        )

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        import torch

        s, t = get_language(src), get_language(tgt)
        src_code, tgt_token = _codes(self.family, s, t)
        prefix = _marian_prefix(self.tokenizer, t) if self.family == "marian" else ""
        if src_code is not None:
            self.tokenizer.src_lang = src_code
        gen = dict(num_beams=self.beam_size, do_sample=False)
        if tgt_token is not None:
            gen["forced_bos_token_id"] = self.tokenizer.convert_tokens_to_ids(tgt_token)
        out: list[str] = [""] * len(texts)
        for idx in length_sorted_batches(texts, self.batch_size):
            batch = [prefix + texts[i] for i in idx]
            enc = self.tokenizer(
                batch, return_tensors="pt", padding=True, truncation=True, max_length=self.max_input_length
            )
            self.truncated += sum(
                int(n >= self.max_input_length) for n in enc["attention_mask"].sum(1).tolist()
            )
            cap = capped_length(int(enc["attention_mask"].sum(1).max()), self.max_length)
            with torch.inference_mode():
                ids = self.net.generate(**enc.to(self.device), **gen, max_new_tokens=cap,
                                        min_new_tokens=min(self.min_length, cap))
            for i, text in zip(idx, self.tokenizer.batch_decode(ids, skip_special_tokens=True), strict=True):
                out[i] = text.strip()
        return out


# ---------------------------------------------------------------------------------- ctranslate2

CT2_SIDECAR = "langshift_ct2.json"


def convert(model: str, out_dir: str | os.PathLike, quantization: str = "int8", force: bool = False) -> Path:
    """Convert a transformers translator (hub id or dir) to CTranslate2 and save its tokenizer alongside,
    so the output dir is self-contained. Same as `ct2-transformers-converter --model M --output_dir D
    --quantization int8 --copy_files <tokenizer files>`."""
    from ctranslate2.converters import TransformersConverter
    from transformers import AutoTokenizer

    out = Path(out_dir)
    if (out / "model.bin").exists() and not force:
        return out
    with atomic_dir(out) as tmp:
        TransformersConverter(str(model)).convert(str(tmp), quantization=quantization, force=True)
        tok = AutoTokenizer.from_pretrained(model)
        # CTranslate2 writes its own config.json; the tokenizer must not need the HF one to load.
        tok.save_pretrained(tmp)
        write_json(tmp / CT2_SIDECAR, {
            "source": str(model),
            "quantization": quantization,
            "fingerprint": model_dir_identity(str(model)),
            "tokenizer_class": type(tok).__name__,
        })
    return out


class CT2Translator(Translator):
    backend = "ctranslate2"

    def __init__(
        self,
        model: str = DEFAULT_HF_MODEL,
        beam_size: int = 4,
        max_length: int = 256,
        batch_size: int = 16,
        device: str = "auto",
        compute_type: str = "auto",
        quantization: str = "int8",
        max_input_length: int = 1024,
        threads: int = 0,
        min_length: int = 0,
    ):
        import ctranslate2
        from transformers import AutoTokenizer

        self.device = (
            ("cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu") if device == "auto" else device
        )
        path = Path(model)
        if not (path / "model.bin").exists():
            # An HF model (hub id or dir): convert once into the cache, reuse afterwards.
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "--", str(model).strip("/"))[-80:]
            target = cache_dir() / "ct2" / f"{slug}-{quantization}-{model_dir_identity(str(model))[-12:]}"
            path = convert(str(model), target, quantization=quantization)
        self.path = path
        self.model, self.beam_size, self.max_length, self.batch_size = (
            str(model),
            beam_size,
            max_length,
            batch_size,
        )
        self.max_input_length, self.min_length = max_input_length, min_length
        self.compute_type = (
            ("int8" if self.device == "cpu" else "float16") if compute_type == "auto" else compute_type
        )
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.family = tokenizer_family(self.tokenizer)
        self.net = ctranslate2.Translator(
            str(path), device=self.device, compute_type=self.compute_type, intra_threads=threads
        )
        sidecar = path / CT2_SIDECAR
        self.fingerprint = (
            json.loads(sidecar.read_text())["fingerprint"]
            if sidecar.exists()
            else model_dir_identity(str(path))
        )

    @property
    def identity(self) -> str:
        return (
            f"ctranslate2|{self.fingerprint}|{self.compute_type}|beam={self.beam_size}|max={self.max_length}"
            f"|in={self.max_input_length}" + (f"|min={self.min_length}" if self.min_length else "") + f"|{CAP}"
        )

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        s, t = get_language(src), get_language(tgt)
        src_code, tgt_token = _codes(self.family, s, t)
        prefix = _marian_prefix(self.tokenizer, t) if self.family == "marian" else ""
        if src_code is not None:
            self.tokenizer.src_lang = src_code
        out: list[str] = [""] * len(texts)
        for idx in length_sorted_batches(texts, self.batch_size):
            source = [
                self.tokenizer.convert_ids_to_tokens(self.tokenizer.encode(prefix + texts[i])) for i in idx
            ]
            # +1: CTranslate2 counts the forced target-language token among the decoded ones
            longest = min(max(map(len, source)), self.max_input_length)
            cap = min(self.max_length, capped_length(longest, self.max_length) + bool(tgt_token))
            results = self.net.translate_batch(
                source,
                target_prefix=[[tgt_token]] * len(idx) if tgt_token else None,
                beam_size=self.beam_size,
                max_decoding_length=cap,
                max_input_length=self.max_input_length,
                max_batch_size=self.batch_size,
                min_decoding_length=min(self.min_length, cap),
            )
            for i, r in zip(idx, results, strict=True):
                tokens = r.hypotheses[0]
                if tgt_token and tokens and tokens[0] == tgt_token:
                    tokens = tokens[1:]
                ids = self.tokenizer.convert_tokens_to_ids(tokens)
                out[i] = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return out


# --------------------------------------------------------------------------------------- openai

SYSTEM_PROMPT = (
    "You are a professional translator. Translate the text the user sends from {src} into {tgt} ({native}). "
    "Keep the meaning, tone and punctuation. Reply with the translation only: no explanations, notes or quotes."
)


class OpenAITranslator(Translator):
    backend = "openai"
    independent = True

    def __init__(
        self,
        model: str = DEFAULT_OPENAI_MODEL,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 120.0,
        max_length: int = 512,
        temperature: float = 0.0,
        batch_size: int = 64,
        backoff: float = 1.0,
    ):
        from langshift.llm_client import ChatClient

        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.model, self.base_url, self.max_length, self.temperature = (
            model,
            base_url,
            max_length,
            temperature,
        )
        self.batch_size = batch_size
        self.client = ChatClient(
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            concurrency=concurrency,
            backoff=backoff,
        )

    @property
    def identity(self) -> str:
        prompt = hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:8]
        return (
            f"openai|{redact_url(self.base_url)}|{self.model}|t={self.temperature}|max={self.max_length}"
            f"|prompt={prompt}|{CAP}"
        )

    def describe(self) -> dict:
        return {**super().describe(), "base_url": redact_url(self.base_url), "usage": self.client.usage.as_dict()}

    def translate_stream(self, texts: Sequence[str], src: str, tgt: str) -> Iterator[list[tuple[int, str]]]:
        """One request per text, `concurrency` in flight; each translation is yielded (to be committed)
        as soon as its answer arrives."""
        s, t = get_language(src), get_language(tgt)
        system = SYSTEM_PROMPT.format(src=s.name, tgt=t.name, native=t.native_name)
        convs = [[{"role": "system", "content": system}, {"role": "user", "content": x}] for x in texts]
        # UTF-8 bytes bound the tokens of any tokenizer from above, so the cap never cuts a real translation.
        caps = [{"max_tokens": capped_length(len(x.encode("utf-8")), self.max_length)} for x in texts]
        for i, reply in self.client.chat_stream(convs, caps, temperature=self.temperature):
            yield [(i, clean_llm_translation(reply, texts[i], t))]

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        out = [""] * len(texts)
        for group in self.translate_stream(texts, src, tgt):
            for i, text in group:
                out[i] = text
        return out


def clean_llm_translation(reply: str, source: str, tgt: Language) -> str:
    """Strip what chat models wrap around a translation: a 'Swahili:'/'Translation:' label, and quotes
    the source did not have."""
    out = reply.strip()
    out = re.sub(
        rf"^(?:translation|{re.escape(tgt.name)}|{re.escape(tgt.native_name)})\s*(?:\([^)]*\))?\s*:\s*",
        "",
        out,
        flags=re.IGNORECASE,
    )
    for q1, q2 in (('"', '"'), ("“", "”"), ("'", "'")):
        if len(out) >= 2 and out[0] == q1 and out[-1] == q2 and not source.strip().startswith(q1):
            out = out[1:-1].strip()
    return out


# ---------------------------------------------------------------------------------- precomputed


class PrecomputedTranslator(Translator):
    """The rows carry tgt_prompt/tgt_response already; `build_dataset` reads them and calls nothing."""

    backend = "precomputed"
    model = "precomputed"

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        raise RuntimeError(
            "the precomputed translator translates nothing: the rows must hold "
            "tgt_prompt/tgt_response (or translations[lang])"
        )


TRANSLATORS: dict[str, type[Translator]] = {
    "hf": HFTranslator,
    "ctranslate2": CT2Translator,
    "openai": OpenAITranslator,
    "precomputed": PrecomputedTranslator,
}
