"""English rows -> translated, filtered, split cross-lingual records (paper §3.2: (x_en, y_en, x_t, y_t)).

    rows --segment--> unique sentences --cache | translator--> translations --reassemble-->
    records --filters--> kept / rejected --split by prompt--> out_dir/
        records.jsonl        kept records (meta.split = "train" | "validation")
        dataset/             datasets.DatasetDict(train, validation) of the same records
        filter_report.json   counts per reason
        data_card.md         source, rule, backend, model, counts, filter report
        rejected.jsonl       with --keep-filtered: rejects with meta.filter_reasons

Resuming: every batch a model translates, and every request an API translator completes, is committed
to the SQLite cache at once, so a killed run restarted with the same arguments translates only what is
missing (an API run loses at most the requests in flight). Batches are fixed slices of the
length-sorted unique segments, so a resumed run feeds a batched model exactly the batches an
uninterrupted run would, and writes identical output. Outputs are written atomically at the end.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from langshift.data.cache import TranslationCache
from langshift.data.filters import FilterConfig, apply_filters
from langshift.data.segment import segment
from langshift.data.translators import Translator
from langshift.files import InputError, atomic_write_text, iter_jsonl, write_json
from langshift.languages import get_language
from langshift.progress import progress_bar
from langshift.records import Record, save_dataset_dir, save_records, validate_record

SRC = "en"
CORE = ("id", "en_prompt", "en_response", "tgt_prompt", "tgt_response", "meta", "translations", "lang")


def read_rows(path: str | os.PathLike) -> list[dict]:
    """English (or precomputed) rows from JSONL, checked with file:line:field errors."""
    return check_rows([{**obj, "_line": i} for i, obj in iter_jsonl(path)], file=path)


def check_rows(rows: Sequence[dict], file: str | os.PathLike = "<rows>") -> list[dict]:
    """Validate rows; each gets "_line" (its line in `file`, else its 1-based position) for later errors."""
    out, seen = [], {}
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(file, f"expected an object, got {type(row).__name__}", line=k + 1)
        line = row.get("_line", k + 1)
        if row.get("id") is None:
            raise InputError(file, "missing", line=line, field="id")
        for name in ("en_prompt", "en_response"):
            if not isinstance(row.get(name), str):
                got = "missing" if name not in row else f"expected a string, got {type(row[name]).__name__}"
                raise InputError(file, got, line=line, field=name)
            if not row[name].strip():
                raise InputError(file, "empty", line=line, field=name)
        meta = row.get("meta") or {}
        if not isinstance(meta, dict):
            raise InputError(file, "expected an object", line=line, field="meta")
        rid = str(row["id"])
        if rid in seen:
            raise InputError(file, f"duplicate id {rid!r} (first at line {seen[rid]})", line=line, field="id")
        seen[rid] = line
        # Extra scalar columns (e.g. "category") travel in meta.
        extra = {
            k: v
            for k, v in row.items()
            if k not in CORE and not k.startswith("_") and isinstance(v, (str, int, float, bool))
        }
        out.append({**row, "id": rid, "meta": {**extra, **meta}, "_line": line})
    return out


def _precomputed(row: dict, lang: str, file) -> tuple[str, str]:
    line = row["_line"]
    if "tgt_prompt" in row or "tgt_response" in row:
        pair = (row.get("tgt_prompt"), row.get("tgt_response"))
        names = ("tgt_prompt", "tgt_response")
    elif isinstance(row.get("translations"), dict):
        t = row["translations"].get(lang)
        if not isinstance(t, dict):
            raise InputError(
                file,
                f"no translation for {lang!r} (has {sorted(row['translations'])})",
                line=line,
                field="translations",
            )
        pair = (t.get("prompt"), t.get("response"))
        names = (f"translations.{lang}.prompt", f"translations.{lang}.response")
    else:
        raise InputError(
            file,
            "the precomputed translator needs tgt_prompt/tgt_response or translations[lang]",
            line=line,
            field="tgt_prompt",
        )
    for name, value in zip(names, pair, strict=True):
        if not isinstance(value, str):
            raise InputError(file, "missing" if value is None else "expected a string", line=line, field=name)
    return pair


def translate_segments(
    texts: list[str], translator: Translator, lang: str, cache: TranslationCache, chunk_size: int
) -> tuple[dict[str, str], dict]:
    """{segment: translation} for the unique `texts`, from the cache or the translator.

    The unique segments are sorted by length and cut into fixed chunks of `chunk_size` (a multiple of
    the translator's batch). A batched model gets whole batches, the same slices of a chunk that an
    uninterrupted run feeds it, whatever the cache already holds; an independent translator (one
    request per text) gets only the missing texts of a chunk. Whatever the translator completes - a
    batch, or one request - is committed to the cache at once, so a kill loses at most the batch or
    the requests in flight.
    """
    order = sorted(set(texts), key=lambda s: (len(s), s))
    done = cache.get_many(translator.identity, SRC, lang, order)
    stats = {"unique_segments": len(order), "from_cache": len(done), "translated": 0}
    batch = max(1, translator.batch_size)
    bar = progress_bar(
        total=len(order), initial=len(done), unit="seg", desc=f"translate {SRC}->{lang}", dynamic_ncols=True
    )
    try:
        for start in range(0, len(order), chunk_size):
            chunk = order[start : start + chunk_size]
            if translator.independent:
                feeds = [[s for s in chunk if s not in done]]
            else:
                feeds = [chunk[i : i + batch] for i in range(0, len(chunk), batch)]
            for feed in feeds:
                missing = {s for s in feed if s not in done}
                if not missing:
                    continue
                answered: set[int] = set()
                for group in translator.translate_stream(feed, SRC, lang):
                    pairs = [(feed[i], out) for i, out in group]
                    cache.put_many(translator.identity, SRC, lang, pairs)
                    new = [(s, out) for s, out in pairs if s in missing and s not in done]
                    done.update(new)  # a segment already cached keeps its stored translation
                    answered.update(i for i, _ in group)
                    stats["translated"] += len(new)
                    bar.update(len(new))
                if len(answered) != len(feed):
                    raise RuntimeError(f"translator returned {len(answered)} outputs for {len(feed)} inputs")
    finally:
        bar.close()  # ends the bar's line, also when the translator raises
    return done, stats


def _group(r: Record) -> str:
    return str(r.meta.get("prompt_id") or r.id)


def translate_texts(texts: list[str], lang: str, translator: Translator, cache_path: str | os.PathLike,
                    max_chars: int = 400) -> tuple[list[str], dict]:
    """English `texts` in `lang`: each segmented (markdown and code kept), its segments translated through
    the SQLite cache (`translate_segments`), and reassembled."""
    segmented = [segment(t, max_chars) for t in texts]
    all_segs = [s for seg in segmented for s in seg.segments]
    with TranslationCache(cache_path) as cache:
        table, stats = translate_segments(all_segs, translator, get_language(lang).code, cache,
                                          max(1, translator.batch_size) * 8)
    return [seg.reassemble([table[s] for s in seg.segments]) for seg in segmented], {"segments": len(all_segs), **stats}


def split_by_group(records: list[Record], val_size: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Validation = whole prompt groups (meta.prompt_id, else the id), shuffled with `seed`: two replies to
    one oasst1 prompt never straddle the split."""
    groups: dict[str, list[Record]] = {}
    for r in records:
        groups.setdefault(_group(r), []).append(r)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    want = round(val_size * len(records)) if len(records) > 1 else 0
    if val_size > 0 and want == 0 and len(groups) > 1:
        want = 1
    val_keys: set[str] = set()
    n_val = 0
    for k in keys:
        if n_val >= want or len(val_keys) == len(keys) - 1:
            break
        val_keys.add(k)
        n_val += len(groups[k])
    train = [r for r in records if _group(r) not in val_keys]
    val = [r for r in records if _group(r) in val_keys]
    return train, val


def build_dataset(
    rows: Sequence[dict],
    lang: str,
    translator: Translator,
    out_dir: str | os.PathLike,
    *,
    val_size: float = 0.05,
    seed: int = 0,
    keep_filtered: bool = False,
    limit: int | None = None,
    cache_path: str | os.PathLike | None = None,
    filter_config: FilterConfig | None = None,
    max_chars: int = 400,
    source: str | None = None,
    rows_file: str | os.PathLike = "<rows>",
) -> Path:
    """Translate `rows` into `lang`, filter, split and write `out_dir` (see the module docstring)."""
    t0 = time.time()
    target = get_language(lang)
    if target.code == SRC:
        raise ValueError("the target language cannot be English")
    if not 0 <= val_size < 1:
        raise ValueError(f"val_size must be in [0, 1), got {val_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = check_rows(rows, file=rows_file)
    rows = rows[:limit] if limit is not None else rows
    if not rows:
        raise InputError(rows_file, "no rows to translate")

    stats: dict = {"rows": len(rows)}
    if translator.backend == "precomputed":
        tgt = [_precomputed(r, target.code, rows_file) for r in rows]
    else:
        texts, seg_stats = translate_texts([t for r in rows for t in (r["en_prompt"], r["en_response"])], target.code,
                                           translator, cache_path or out / "translation_cache.sqlite", max_chars)
        stats.update(seg_stats)
        tgt = list(zip(texts[0::2], texts[1::2], strict=True))

    described = translator.describe()
    records = [
        Record(r["id"], target.code, r["en_prompt"], r["en_response"], tp, tr,
               meta={**r["meta"], "translator": translator.backend, "translator_model": translator.model})
        for r, (tp, tr) in zip(rows, tgt, strict=True)
    ]
    cfg = filter_config or FilterConfig()
    kept, rejected, report = apply_filters(records, target.code, cfg, progress=True)
    train, val = split_by_group(kept, val_size, seed)
    final = [replace(r, meta={**r.meta, "split": split}) for part, split in ((train, "train"), (val, "validation"))
             for r in part]
    for i, r in enumerate(final):  # the training engine's own validation must accept every record
        validate_record(r.to_dict(), file=out / "records.jsonl", line=i + 1)

    stats.update(
        kept=len(kept),
        rejected=len(rejected),
        train=len(train),
        validation=len(val),
        seconds=round(time.time() - t0, 1),
    )
    report_d = report.as_dict()
    save_records(out / "records.jsonl", final)
    if final:
        save_dataset_dir(out / "dataset", final)
    else:  # everything filtered out: no stale dataset from an earlier run may stay behind
        shutil.rmtree(out / "dataset", ignore_errors=True)
    if keep_filtered:
        save_records(out / "rejected.jsonl", rejected)
    else:
        (out / "rejected.jsonl").unlink(missing_ok=True)
    write_json(out / "filter_report.json", {**report_d, "stats": stats})
    src_name = source or next(
        (str(r["meta"]["source"]) for r in rows if r["meta"].get("source")), str(rows_file)
    )
    atomic_write_text(
        out / "data_card.md",
        data_card(target, src_name, described, stats, report_d, val_size, seed, keep_filtered),
    )
    return out


def data_card(
    target,
    source: str,
    translator: dict,
    stats: dict,
    report: dict,
    val_size: float,
    seed: int,
    keep_filtered: bool,
) -> str:
    reasons = "\n".join(f"| {k} | {v} |" for k, v in report["reasons"].items())
    by_field = "\n".join(f"| {k} | {v} |" for k, v in report["by_field"].items()) or "| (none) | 0 |"
    rule = (
        (
            "first-turn (prompt, reply) pairs of English trees, rank 0 first, then rank 1, ...; deleted or "
            "failed-review messages dropped (see `langshift.data.english`)"
        )
        if "oasst1" in source
        else "rows in file order (see `langshift.data.english`)"
    )
    if "segments" in stats:
        how = (
            f"- Cache identity: `{translator['identity']}`\n"
            f"- Segments: {stats['segments']} ({stats['unique_segments']} unique; {stats['from_cache']} from "
            f"cache, {stats['translated']} translated in this run)\n"
            "- Segmentation: sentences within markdown lines; code blocks, inline code, URLs and e-mail\n"
            "  addresses are never sent to the translator and are copied byte-for-byte."
        )
    else:
        how = "- The rows carried their translations; no model was called."
    extra = "".join(
        f"- {k}: {v}\n" for k, v in translator.items() if k not in ("backend", "model", "identity")
    )
    return f"""# Cross-lingual SFT data: English -> {target.name} ({target.code})

Records `(x_en, y_en, x_t, y_t)` for CLO (Lee et al., ACL 2025, §3.2): English pairs and their
machine translation into {target.name}.

## Source
- English source: `{source}`
- Selection rule: {rule}
- Rows used: {stats["rows"]}

## Translation
- Backend: `{translator["backend"]}`
- Model: `{translator["model"]}`
{extra}{how}

## Filters
Kept {stats["kept"]} of {report["total"]} ({stats["rejected"]} rejected{
        ", kept aside in rejected.jsonl" if keep_filtered else ""
    }).
A record can fail several checks; each is counted.

| reason | records |
|---|---|
{reasons}

| field:reason | count |
|---|---|
{by_field}

Settings: `{json.dumps(report["config"])}`

## Splits
- train: {stats["train"]}, validation: {stats["validation"]} (val_size={val_size}, seed={seed}; whole
  prompt groups go to one side)
- `records.jsonl` holds both (see `meta.split`); `dataset/` is a `datasets.DatasetDict`.

Built in {stats["seconds"]} s.
"""
