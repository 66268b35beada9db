"""Language fidelity: does the model answer in the language it was asked in? (no judge, no network)

Two pass rates over a set of responses that should be in language L:

  response_pass_rate = (1/N) * sum_i [ lang(prose_i) == L ]
      the share of responses whose prose as a whole (code blocks, inline code and URLs removed) is
      detected as L. An empty response, or one with no letters left, is detected as "none" and fails.

  line_pass_rate (LPR, Marchisio et al. 2024, "Understanding and Mitigating Language Confusion in
  LLMs") = (1/N') * sum_{i counted} [ for all counted lines l of i: lang(l) == L ]
      a line counts when it has >= MIN_WORDS words once fenced code blocks, inline code and URLs are
      removed (so a bare URL line never counts). Responses with no counted line are excluded from
      LPR's denominator N' (as in the reference implementation, which skips them) and reported as
      `line_excluded`; they still count in response_pass_rate.

  line_accuracy = counted lines in L / all counted lines (micro-average; a diagnostic).

Words are whitespace tokens that contain a letter; a token of Chinese characters (or kana) counts one
word per character, since those scripts do not separate words by spaces (the reference tokenizes
Chinese with jieba; one character per word is the dependency-free approximation).
Languages are chosen among `candidates` (default: `langid.FIDELITY_CANDIDATES`, plus the target and English).
Each rate comes with its standard error and n (0/1 outcomes: sqrt(p(1-p)/(n-1)) via `mean_stderr`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from langshift.eval import langid
from langshift.eval.stats import item_values, metric_value
from langshift.files import InputError, file_hash, iter_jsonl, write_jsonl
from langshift.languages import get_language

MIN_WORDS = 5

_FENCE = re.compile(r"^\s*(```|~~~)")
_URL = re.compile(r"\b(?:https?://|ftp://|www\.)\S+", re.IGNORECASE)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def prose_lines(response: str) -> list[str]:
    """Non-blank lines outside fenced code blocks, with inline code and URLs removed.

    An unclosed fence hides everything after it: generated code is often cut off by max_new_tokens.
    """
    lines, in_code = [], False
    for line in response.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        line = _URL.sub(" ", _INLINE_CODE.sub(" ", line)).strip()
        if line:
            lines.append(line)
    return lines


def word_count(line: str) -> int:
    n = 0
    for token in line.split():
        n_cjk = len(_CJK.findall(token))
        rest = [piece for piece in _CJK.split(token) if any(ch.isalpha() for ch in piece)]
        n += n_cjk + len(rest)
    return n


def counted_lines(response: str, min_words: int = MIN_WORDS) -> list[str]:
    return [line for line in prose_lines(response) if word_count(line) >= min_words]


def fidelity_items(
    rows: Sequence[dict], lang: str, *, candidates: Iterable[str] | None = None, backend: str = "lingua"
) -> list[dict]:
    """Per-response verdicts: the language of the whole and of each counted line."""
    lang = get_language(lang).code
    codes = langid.candidate_codes(candidates, lang, "en")
    prose = ["\n".join(prose_lines(str(r.get("response") or ""))) for r in rows]
    whole = langid.detect_many(prose, codes, backend=backend)
    per_row = [counted_lines(str(r.get("response") or "")) for r in rows]
    flat = [line for lines in per_row for line in lines]
    flat_langs = iter(langid.detect_many(flat, codes, backend=backend))
    items = []
    for i, (row, detected, lines) in enumerate(zip(rows, whole, per_row, strict=True)):
        line_langs = [next(flat_langs) for _ in lines]
        items.append(
            {
                "id": row.get("id", f"row-{i}"),  # rows without ids are items of their own
                **({"sample": row["sample"]} if "sample" in row else {}),
                "detected": detected,
                "response_pass": detected == lang,
                "counted_lines": len(lines),
                "line_langs": line_langs,
                # None: no counted line, so the response is outside LPR's denominator.
                "line_pass": all(x == lang for x in line_langs) if lines else None,
            }
        )
    return items


def summarize(items: Sequence[dict], lang: str) -> dict:
    """The three rates (`metrics`, each value/stderr/n), plus what the responses were detected as.

    The unit is the prompt: with k sampled responses per prompt (rows sharing an id), a prompt's pass
    rate is passes / k, and n counts prompts."""
    code = get_language(lang).code
    lpr = item_values(items, "line_pass")
    return {
        "metrics": {
            "response_pass_rate": metric_value(item_values(items, "response_pass").values()),
            "line_pass_rate": metric_value(lpr.values()),
            "line_accuracy": metric_value(float(x == code) for it in items for x in it["line_langs"]),
        },
        "lang": code,
        "line_excluded": len({it["id"] for it in items}) - len(lpr),
        "detected_as": dict(Counter(it["detected"] or "none" for it in items).most_common()),
    }


def score_fidelity(
    rows: Sequence[dict], lang: str, *, candidates: Iterable[str] | None = None, backend: str = "lingua"
) -> dict:
    """`summarize(fidelity_items(...))`, with the per-response verdicts under "items"."""
    items = fidelity_items(rows, lang, candidates=candidates, backend=backend)
    return {**summarize(items, lang), "backend": langid.resolve_backend(backend), "items": items}


def read_responses(path: str | Path) -> list[dict]:
    """`{"prompt","response"}` lines (an "id" is optional); bad lines raise file:line:field errors."""
    rows, seen = [], {}
    for line, row in iter_jsonl(path):
        for field in ("prompt", "response"):
            if not isinstance(row.get(field), str):
                what = "missing" if field not in row else f"must be a string, got {type(row[field]).__name__}"
                raise InputError(path, what, line=line, field=field)
        key = (str(row.get("id", f"line-{line}")), row.get("sample", 0))  # k samples of a prompt share its id
        if key in seen:
            raise InputError(path, f"duplicate id {key[0]!r} (first at line {seen[key]})", line=line, field="id")
        seen[key] = line
        rows.append(
            {"id": row.get("id", f"line-{line}"), "prompt": row["prompt"], "response": row["response"]}
        )
    return rows


def score_file(
    responses: str | Path,
    lang: str,
    out_dir: str | Path,
    *,
    candidates: Iterable[str] | None = None,
    backend: str = "lingua",
) -> dict:
    """Score a responses JSONL: per-response verdicts to `out_dir/fidelity.<lang>.jsonl`; returns the
    result (the caller files it in results.json)."""
    rows = read_responses(responses)
    if not rows:
        raise InputError(responses, "no responses to score")
    summary = score_fidelity(rows, lang, candidates=candidates, backend=backend)
    write_jsonl(Path(out_dir) / f"fidelity.{summary['lang']}.jsonl", summary.pop("items"))
    summary.update(
        responses=str(responses),
        responses_hash=file_hash(responses),
        candidates=list(langid.candidate_codes(candidates, lang, "en")),
    )
    return summary


def items_for(ctx, lang: str) -> list[dict]:
    """Per-response verdicts of the suite's responses in `lang`, computed once per evaluation (the
    degeneration task reads them too)."""
    key = ("fidelity_items", lang)
    if key not in ctx.cache:
        ctx.cache[key] = fidelity_items(ctx.responses[lang], lang)
    return ctx.cache[key]


def run_task(ctx, lang: str) -> dict:
    """The `fidelity` task: score the suite's responses in `lang`; items to `fidelity.<lang>.jsonl`."""
    items = items_for(ctx, lang)
    write_jsonl(ctx.out / f"fidelity.{lang}.jsonl", items)
    return {**summarize(items, lang), "backend": langid.resolve_backend("lingua")}
