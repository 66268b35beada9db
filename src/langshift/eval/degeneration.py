"""Degenerate responses: a repetition loop, the prompt echoed back, or nothing at all. (no judge)

A small model's answer in a new language is often "aku, aku, aku, ..." until max_new_tokens, or the
question repeated. A language detector calls both the right language, so language fidelity alone
rewards them; this detector is reported next to it ("fluent fidelity": right language and not
degenerate). Its rules and thresholds are measured against responses labelled by hand
(docs/metrics.md, tests/eval/data/degeneration_labels.jsonl). The checks, in order (the first that
fires is the reason):

  empty        the response has no word characters at all (blank, or only punctuation);
  prompt_echo  echo_share(prompt, response) >= ECHO_SURE_SHARE, or >= ECHO_MIN_SHARE in a response of
               >= ECHO_LONG_WORDS words, where
                   echo_share = |{response words inside a word ECHO_NGRAM-gram that occurs in the prompt}|
                                / |response words|
               over `normalized_words` (casefolded, punctuation dropped). Linear in the two lengths:
               a set of the prompt's n-grams, one pass over the response's;
  loop         L = `langshift.data.filters.loop_length(prose)`, the characters covered by the longest
               back-to-back repetition (>= LOOP_REPEATS times) of a 1-40 character unit with a letter
               (the data filters' detector, on the prose with code and URLs removed), and
                   L >= LOOP_MIN_CHARS and (L >= LOOP_MIN_SHARE · len(prose) or L >= LOOP_LONG_CHARS);
  repetitive   the phrase-level loops the character rule misses ("yamani kuwaarifu yamani yamani
               kuwaarifu", a sentence said twice then half again, a prompt restated with new junk between
               copies): the prose compresses well,
                   len(zlib(prose)) / len(prose) < REPETITIVE_MAX_RATIO,   for len(prose) >= REPETITIVE_MIN_BYTES
               (UTF-8 bytes). A real answer of 64 tokens says new things in each clause and compresses
               little; text that restates itself compresses to half or less.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Sequence

from langshift.data.filters import FilterConfig, loop_length, normalized_words
from langshift.data.segment import prose
from langshift.eval.stats import item_values, metric_value
from langshift.files import write_jsonl

# The data filters' loop: a unit repeated 4 times back to back, covering at least 12 characters
# (shorter runs are real words: "aaah", Swahili reduplication "polepole" is 2 repeats).
LOOP_REPEATS = FilterConfig.loop_repeats
LOOP_MIN_CHARS = FilterConfig.loop_min_chars
# A loop that fills 30% of the answer is its defining feature, not a stylistic repetition ...
LOOP_MIN_SHARE = 0.3
# ... and one of 80 characters (about 15 repeats of a short word) is a loop even at the end of a long
# answer cut off by max_new_tokens, where it is a smaller share.
LOOP_LONG_CHARS = 80
# Trigrams: two word sequences share a trigram by chance rarely, while an echo shares all of them.
# A prompt shorter than that is matched whole.
ECHO_NGRAM = 3
# "Mostly the prompt" (docs/metrics.md: an echo is over half the text). A real answer to a word problem
# restates its premises: the demo's written answers reach 0.53, so the line sits above that.
ECHO_MIN_SHARE = 0.6
# ... but a short answer restates the question as it answers ("When exposed to sunlight, the skin makes
# vitamin D"): under ECHO_LONG_WORDS words an echo must be nearly all prompt, as before the labels.
ECHO_SURE_SHARE = 0.8
ECHO_LONG_WORDS = 20
# Below this, a response's prose holds about as much repetition as new text (zlib: LZ77 back-references
# plus Huffman coding). The demo's written answers compress to 0.48 at the least (a jug puzzle's
# "mtungi wa lita 3 ... mtungi wa lita 5"), labelled fine responses of 64 tokens to 0.53.
REPETITIVE_MAX_RATIO = 0.45
# zlib's header and a short text's few repeats make the ratio of a short response meaningless.
REPETITIVE_MIN_BYTES = 64

REASONS = ("empty", "prompt_echo", "loop", "repetitive")


def echo_share(prompt: str, response: str) -> float:
    """Share of the response's words that lie inside a word n-gram also found in the prompt."""
    p, r = normalized_words(prompt), normalized_words(response)
    if not p or not r:
        return 0.0
    n = min(ECHO_NGRAM, len(p))
    grams = {tuple(p[i : i + n]) for i in range(len(p) - n + 1)}
    covered = [False] * len(r)
    for i in range(len(r) - n + 1):
        if tuple(r[i : i + n]) in grams:
            covered[i : i + n] = [True] * n
    return sum(covered) / len(r)


def _empty(prompt: str, response: str) -> bool:
    return not normalized_words(response)


def _prompt_echo(prompt: str, response: str) -> bool:
    share = echo_share(prompt, response)
    return share >= ECHO_SURE_SHARE or (share >= ECHO_MIN_SHARE and len(normalized_words(response)) >= ECHO_LONG_WORDS)


def _loop(prompt: str, response: str) -> bool:
    text = prose(response)
    length = loop_length(text, LOOP_REPEATS)
    return length >= LOOP_MIN_CHARS and (length >= LOOP_MIN_SHARE * len(text) or length >= LOOP_LONG_CHARS)


def compression_ratio(text: str) -> float:
    """len(zlib(text)) / len(text) in UTF-8 bytes (1.0 for no text)."""
    raw = text.encode("utf-8")
    return len(zlib.compress(raw, 9)) / len(raw) if raw else 1.0


def _repetitive(prompt: str, response: str) -> bool:
    text = prose(response)
    return len(text.encode("utf-8")) >= REPETITIVE_MIN_BYTES and compression_ratio(text) < REPETITIVE_MAX_RATIO


CHECKS: dict[str, Callable[[str, str], bool]] = {
    "empty": _empty, "prompt_echo": _prompt_echo, "loop": _loop, "repetitive": _repetitive,
}


def degeneration_reason(prompt: str, response: str) -> str | None:
    """The first of `REASONS` (in that order) whose check fires, or None."""
    return next((name for name, check in CHECKS.items() if check(prompt, response)), None)


def score_degeneration(rows: Sequence[dict]) -> list[dict]:
    """Per-response verdicts for `{"id", "prompt", "response"}` rows (the shape of generated responses):
    `{"id", "degenerate", "reason", "loop_chars", "echo_share", "compression"}`, the last three for
    inspection."""
    items = []
    for row in rows:
        prompt, response = str(row.get("prompt") or ""), str(row.get("response") or "")
        reason, text = degeneration_reason(prompt, response), prose(response)
        items.append(
            {
                "id": row.get("id"),
                "degenerate": reason is not None,
                "reason": reason,
                "loop_chars": loop_length(text, LOOP_REPEATS),
                "echo_share": round(echo_share(prompt, response), 4),
                "compression": round(compression_ratio(text), 4),
            }
        )
    return items


def summarize(items: Sequence[dict]) -> dict:
    """The task result: the share of degenerate responses and of fluent passes (right language, not
    degenerate; present when the items carry `fluent_pass`), per prompt over its k samples, and the
    count of each reason."""
    if not items:
        raise ValueError("no responses to summarize")
    counts = Counter(it["reason"] for it in items if it["reason"])
    metrics = {"degenerate_rate": metric_value(item_values(items, "degenerate").values())}
    if any("fluent_pass" in it for it in items):
        metrics["fluent_pass_rate"] = metric_value(item_values(items, "fluent_pass").values())
    return {"metrics": metrics, "reasons": {r: counts[r] for r in REASONS}}


def run_task(ctx, lang: str) -> dict:
    """The `degeneration` task: the suite's responses in `lang`, each checked for a loop, an echo or
    nothing, and joined with fidelity's verdict on its language; items to `degeneration.<lang>.jsonl`."""
    from langshift.eval.fidelity import items_for

    rows = ctx.responses[lang]
    items = score_degeneration(rows)
    for item, row, verdict in zip(items, rows, items_for(ctx, lang), strict=True):
        if "sample" in row:
            item["sample"] = row["sample"]
        item["fluent_pass"] = bool(verdict["response_pass"]) and not item["degenerate"]
    write_jsonl(ctx.out / f"degeneration.{lang}.jsonl", items)
    return {**summarize(items), "lang": lang}
