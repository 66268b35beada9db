"""Evaluation prompts in the target language: AlpacaEval's instructions, translated (paper §4.2: the
authors used GPT-4o). A stage of `langshift run` when `eval.prompts: alpaca_eval`, so no paper config
needs a manual step.

    build_eval_prompts("alpaca_eval", "sw", translator, out)  ->  out/prompts.jsonl, out/data_card.md

`prompts.jsonl` has the suite's one-prompt-per-row shape, the English instruction and its translation:
    {"id": "alpaca-0042", "lang": "en", "prompt": <instruction>, "dataset": <AlpacaEval subset>}
    {"id": "alpaca-0042", "lang": "sw", "prompt": <its translation>, "dataset": ..., "filter_reasons": [...]}
(not the multilingual {"id", "en", "sw"} shape: Indonesian's code is "id", the row id's key.)
Translation goes through the same segmentation and SQLite cache as the training data (a killed run
translates nothing twice). The training data's quality filters are run on each translation and their
verdicts recorded and counted, but no instruction is dropped: a benchmark keeps its items, and a model
is compared with another on the same prompts.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from langshift.data.build import translate_texts
from langshift.data.filters import FilterConfig, field_reasons
from langshift.data.translators import Translator
from langshift.files import atomic_write_text, write_jsonl
from langshift.languages import get_language

SOURCES = {"alpaca_eval": "tatsu-lab/alpaca_eval"}


def build_eval_prompts(source: str, lang: str, translator: Translator, out_dir: str | os.PathLike,
                       limit: int | None = None) -> Path:
    from langshift.eval.alpaca_data import load_instructions

    target = get_language(lang)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hub_id = SOURCES.get(source, source)
    items = load_instructions(hub_id, "en", limit=limit)
    english = [item["instruction"] for item in items]
    translated, stats = translate_texts(english, target.code, translator, out / "translation_cache.sqlite")
    config = FilterConfig()
    rows, reasons = [], Counter()
    for item, en, tgt in zip(items, english, translated, strict=True):
        found = field_reasons(en, tgt, target.code, config)
        reasons.update(found)
        shared = {"id": item["id"], "dataset": item.get("dataset")}
        rows += [{**shared, "lang": "en", "prompt": en},
                 {**shared, "lang": target.code, "prompt": tgt, "filter_reasons": found}]
    write_jsonl(out / "prompts.jsonl", rows)
    described = translator.describe()
    lines = [f"# Evaluation prompts: {hub_id} in {target.name} ({target.code})", "",
             f"- Source: `{hub_id}` (English instructions), {len(items)} of them",
             f"- Translator: `{described['backend']}` `{described['model']}`",
             f"- Segments: {stats['segments']} ({stats['unique_segments']} unique; {stats['from_cache']} from "
             f"cache, {stats['translated']} translated in this run)",
             "- Filters (the training data's, run on each translation; nothing dropped, verdicts in "
             "`prompts.jsonl`): " + (", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none fired"),
             ""]
    atomic_write_text(out / "data_card.md", "\n".join(lines))
    return out
