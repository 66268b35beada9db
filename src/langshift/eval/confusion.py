"""The `confusion` task: the Language Confusion Benchmark's rates, and English words inside Latin-script
answers, which LCB does not measure. (no judge, no network)

For the suite's responses in language L:

  lpr, wpr, lcpr  LCB's own procedure (`eval.lcb`: its normalization, token rule, fastText lid.176 at
                  > 0.3 and English word list), so the numbers sit next to published ones. WPR is
                  defined for ar, hi, ja, ko, ru and zh only; elsewhere LCPR is LPR.
  wpr_latin       = Σ latin_word_pass / #responses that passed LCB's line test, where
                  latin_word_pass(r) = [no English word intrudes into r's prose]   (`eval.word_confusion`,
                  whose lexicons spare L's own words and loanwords); for the Latin-script targets it
                  has a lexicon for (de, id, sw). Its denominator is WPR's, so the two read alike.

Per-response verdicts go to `confusion.<L>.jsonl`; k samples of a prompt average into its value.
"""

from __future__ import annotations

from collections.abc import Sequence

from langshift.eval import lcb, word_confusion
from langshift.eval.stats import item_values, metric_value
from langshift.files import write_jsonl
from langshift.languages import get_language


def latin_words_measured(lang: str) -> bool:
    """wpr_latin is reported where LCB has no WPR and a word lexicon exists (English is the reference
    language, never a target of intrusion)."""
    code = get_language(lang).code
    return code != "en" and code not in lcb.WPR_LANGS and word_confusion.covered(code)


def confusion_items(rows: Sequence[dict], lang: str) -> list[dict]:
    """LCB's per-response verdicts, plus `latin_word_pass` and the intruding words where measured."""
    items = lcb.lcb_items(rows, lang)
    latin = latin_words_measured(lang)
    for item, row in zip(items, rows, strict=True):
        item["latin_word_pass"] = None
        if latin and item["line_pass"]:
            words = word_confusion.english_intrusions(str(row.get("response") or ""), lang)
            item["latin_word_pass"], item["english_intrusions"] = not words, words
    return items


def summarize(items: Sequence[dict], lang: str) -> dict:
    summary = lcb.lcb_summary(items, lang)
    if latin_words_measured(lang):
        summary["metrics"]["wpr_latin"] = metric_value(item_values(items, "latin_word_pass").values())
    return summary


def run_task(ctx, lang: str) -> dict:
    """Score the suite's responses in `lang`; items to `confusion.<lang>.jsonl`."""
    items = confusion_items(ctx.responses[lang], lang)
    write_jsonl(ctx.out / f"confusion.{lang}.jsonl", items)
    return {**summarize(items, lang), "lid_model": lcb.lid_model_path().name}
