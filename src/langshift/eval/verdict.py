"""Reading an AlpacaEval judge's reply: which identifier it ranked first, and the pair's score.

The judge ranks two outputs named "m" and "M" (eval/alpaca.py renders the prompt). Only its final answer
is read (`parse_judgment`): a reply that is one verdict whole (structured output); otherwise the last
verdict after the judge's own text, with copies of the judged responses blanked out, so a response
holding a ranking literal cannot become the verdict when a judge quotes its prompt. Cost is bounded:
no span longer than MAX_VERDICT_CHARS is decoded.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence

IDENTS = ("m", "M")


MAX_VERDICT_CHARS = 2000  # a verdict is ~60-200 characters; longer spans are never tried (bounded cost)


def _json_values(text: str):
    """Every JSON (or Python-literal) list/dict of at most MAX_VERDICT_CHARS characters that starts
    somewhere in `text`, leftmost first."""
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch not in "[{":
            continue
        window = text[i : i + MAX_VERDICT_CHARS]
        try:
            yield decoder.raw_decode(window)[0]
            continue
        except (ValueError, RecursionError):  # deep nesting: not a verdict either
            pass
        close = "]" if ch == "[" else "}"
        for j in (k for k in range(1, len(window)) if window[k] == close):
            try:  # judges often answer with Python dicts: [{'model': 'm', 'rank': 1}, ...]
                value = ast.literal_eval(window[: j + 1])
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, (list, dict)):
                yield value
                break


def _winner_from_ranking(value) -> str | None:
    """The winner ("m", "M" or "tie") of [{"model","rank"},...], {"ordered_models": [...]} or {"m": 1, ...}."""
    if isinstance(value, dict):
        if isinstance(value.get("ordered_models"), list):
            value = value["ordered_models"]
        elif set(value) == set(IDENTS) and all(isinstance(v, (int, float)) for v in value.values()):
            value = [{"model": k, "rank": v} for k, v in value.items()]
        else:
            return None
    if not isinstance(value, list) or not all(isinstance(x, dict) and "model" in x for x in value):
        return None
    models = [str(x["model"]).strip() for x in value]
    if sorted(models) != sorted(IDENTS) or not all("rank" in x for x in value):
        return None  # without ranks it may be an echo of the outputs block, not a verdict
    try:
        ranks = [float(x["rank"]) for x in value]
    except (TypeError, ValueError):
        return None
    best = min(ranks)
    winners = [m for m, r in zip(models, ranks, strict=True) if r == best]
    return winners[0] if len(winners) == 1 else "tie"


_PAIR = re.compile(r"""['"]?model['"]?\s*[:=]\s*['"]?(m|M)\b['"]?\s*,\s*['"]?rank['"]?\s*[:=]\s*(\d+)""")
_BARE = re.compile(r"""^\W*(m|M)\W*$""")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


def _whole_verdict(text: str) -> str | None:
    """The winner when the entire reply is one verdict (structured output; a bare or fenced JSON list)."""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    if not body or len(body) > MAX_VERDICT_CHARS or body[0] not in "[{":
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            return _winner_from_ranking(parse(body))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return None


def _reads_as_verdict(text: str) -> bool:
    return any(_winner_from_ranking(v) for v in _json_values(text)) or len(set(_PAIR.findall(text))) >= 2


def _mask_quotes(text: str, quoted: Sequence[str]) -> str:
    """`text` with every verbatim copy of a quoted text that itself reads as a verdict blanked out, as
    sent and as it appears JSON-escaped in the prompt. Other quoted texts are left alone."""
    forms = set()
    for q in quoted:
        if q and _reads_as_verdict(q):
            forms |= {q, json.dumps(q, ensure_ascii=False)[1:-1], json.dumps(q)[1:-1]}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, " [quoted text] ")
    return text


def parse_judgment(text: str, quoted: Sequence[str] = ()) -> str | None:
    """The judge's winner, "m", "M" or "tie"; None when nothing usable can be read.

    Only the judge's own final answer counts, so a response cannot steer its verdict from inside:
      1. a reply that is one verdict and nothing else (structured output, a fenced JSON list) is read whole;
      2. otherwise every copy of a `quoted` text (the instruction and the two outputs) that itself
         holds something verdict-like is blanked out: a judge that quotes its prompt must not hand a
         response's own "ranking" to the parser;
      3. of what is left, the *last* well-formed verdict wins: a judge gives its answer after its reasoning.
    """
    text = (text or "").strip()
    whole = _whole_verdict(text)
    if whole:
        return whole
    own = _mask_quotes(text, quoted)
    winner = None
    for value in _json_values(own):
        winner = _winner_from_ranking(value) or winner
    if winner:
        return winner
    pairs = {m: int(r) for m, r in _PAIR.findall(own)}  # broken JSON that still names model and rank (last wins)
    if set(pairs) == set(IDENTS):
        return "tie" if pairs["m"] == pairs["M"] else min(pairs, key=pairs.get)
    bare = _BARE.match(text)  # a judge that answers with the identifier alone
    return bare.group(1) if bare else None


def combine(verdict_1: str | None, verdict_2: str | None) -> float | None:
    """A's score from the two orders' verdicts ("A", "B", "tie"); None when either is unparsable."""
    if verdict_1 is None or verdict_2 is None:
        return None
    if verdict_1 != verdict_2:
        return 0.5  # the judge changed its mind with the order: FastChat calls it a tie
    return {"A": 1.0, "B": 0.0, "tie": 0.5}[verdict_1]
