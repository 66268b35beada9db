"""Degenerate responses: a repetition loop, the prompt echoed back, or nothing at all. (no judge)

A small model's answer in a new language is often "aku, aku, aku, ..." until max_new_tokens, or the
question repeated. A language detector calls both the right language, so language fidelity alone
rewards them; this detector is reported next to it ("fluent fidelity": right language and not
degenerate). The checks, in order (the first that fires is the reason):

  empty        the response has no word characters at all (blank, or only punctuation);
  prompt_echo  echo_share(prompt, response) >= ECHO_MIN_SHARE, where
                   echo_share = |{response words inside a word ECHO_NGRAM-gram that occurs in the prompt}|
                                / |response words|
               over `normalized_words` (casefolded, punctuation dropped). Linear in the two lengths:
               a set of the prompt's n-grams, one pass over the response's;
  loop         L = `langshift.data.filters.loop_length(prose)`, the characters covered by the longest
               back-to-back repetition (>= LOOP_REPEATS times) of a 1-40 character unit with a letter
               (the data filters' detector, on the prose with code and URLs removed), and
                   L >= LOOP_MIN_CHARS and (L >= LOOP_MIN_SHARE · len(prose) or L >= LOOP_LONG_CHARS).
"""

from __future__ import annotations

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
# "Mostly the prompt": an answer that restates the question ("15% of 80 is 12") keeps well under this.
ECHO_MIN_SHARE = 0.8

REASONS = ("empty", "prompt_echo", "loop")


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
    return echo_share(prompt, response) >= ECHO_MIN_SHARE


def _loop(prompt: str, response: str) -> bool:
    text = prose(response)
    length = loop_length(text, LOOP_REPEATS)
    return length >= LOOP_MIN_CHARS and (length >= LOOP_MIN_SHARE * len(text) or length >= LOOP_LONG_CHARS)


CHECKS: dict[str, Callable[[str, str], bool]] = {"empty": _empty, "prompt_echo": _prompt_echo, "loop": _loop}


def degeneration_reason(prompt: str, response: str) -> str | None:
    """"empty", "prompt_echo" or "loop" (the first check, in that order, that fires), or None."""
    return next((name for name, check in CHECKS.items() if check(prompt, response)), None)


def score_degeneration(rows: Sequence[dict]) -> list[dict]:
    """Per-response verdicts for `{"id", "prompt", "response"}` rows (the shape of generated responses):
    `{"id", "degenerate", "reason", "loop_chars", "echo_share"}`, the last two for inspection."""
    items = []
    for row in rows:
        prompt, response = str(row.get("prompt") or ""), str(row.get("response") or "")
        reason = degeneration_reason(prompt, response)
        items.append(
            {
                "id": row.get("id"),
                "degenerate": reason is not None,
                "reason": reason,
                "loop_chars": loop_length(prose(response), LOOP_REPEATS),
                "echo_share": round(echo_share(prompt, response), 4),
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
