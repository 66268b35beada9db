"""`demo/prompts_v2.jsonl`: the second, independently written set of open-ended prompts (en/sw/de).

Checks its shape, that it shares no text and no word 8-gram with the demo training pairs, the held-out
pairs or the first prompt set (`prompts.jsonl`), and that each language column is identified as that
language by the evaluation's own language-ID."""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import lru_cache

import pytest

from langshift.data.seed import demo_dir, normalized_text
from langshift.eval.langid import detect
from langshift.files import iter_jsonl

V2_FILE = "prompts_v2.jsonl"
LANGS = ("en", "sw", "de")
CATEGORIES = ("advice", "how-to", "explanation", "creative", "reasoning", "everyday-facts")
MIN_PROMPTS = 150
MIN_PER_CATEGORY = 25
NGRAM = 8
MAX_MISIDENTIFIED = 3
# Every file the set must not overlap (train.jsonl, when a checkout has one, is seed_a + seed_b combined).
REFERENCE_FILES = ("seed_a.jsonl", "seed_b.jsonl", "heldout_pairs.jsonl", "prompts.jsonl")


@lru_cache(maxsize=1)
def v2_rows() -> tuple[dict, ...]:
    return tuple(row for _, row in iter_jsonl(demo_dir() / V2_FILE))


def reference_texts(name: str) -> list[tuple[str, str, str]]:
    """(row id, field, text) for every prompt and response text of one reference file, in every language."""
    out = []
    for line, row in iter_jsonl(demo_dir() / name):
        rid = str(row.get("id", f"line {line}"))
        if "en_prompt" in row:  # seed-shaped: training pairs and held-out pairs
            out += [(rid, "en_prompt", row["en_prompt"]), (rid, "en_response", row["en_response"])]
            for code, t in (row.get("translations") or {}).items():
                out += [(rid, f"translations.{code}.{k}", t[k]) for k in ("prompt", "response") if k in t]
        else:  # prompts.jsonl: one field per language
            out += [(rid, k, v) for k, v in row.items() if k not in ("id", "category") and isinstance(v, str)]
    return out


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = normalized_text(text).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def present_reference_files() -> list[str]:
    return [name for name in REFERENCE_FILES if (demo_dir() / name).is_file()]


def test_the_reference_files_are_there():
    assert {"seed_a.jsonl", "seed_b.jsonl", "heldout_pairs.jsonl", "prompts.jsonl"} <= set(
        present_reference_files()
    )


def test_size_ids_and_fields():
    lines = [x for x in (demo_dir() / V2_FILE).read_text(encoding="utf-8").splitlines() if x.strip()]
    assert len(lines) >= MIN_PROMPTS, f"{V2_FILE} has {len(lines)} lines, expected at least {MIN_PROMPTS}"
    for i, line in enumerate(lines, 1):
        assert json.loads(line)["id"] == f"v2-{i:03d}", (
            f"line {i} of {V2_FILE}: ids must run v2-001, v2-002, ..."
        )
    rows = v2_rows()
    ids = [row["id"] for row in rows]
    assert all(re.fullmatch(r"v2-\d{3}", i) for i in ids), [
        i for i in ids if not re.fullmatch(r"v2-\d{3}", i)
    ]
    dupes = [i for i, c in Counter(ids).items() if c > 1]
    assert not dupes, f"duplicate ids in {V2_FILE}: {dupes}"
    for row in rows:
        assert set(row) == {"id", "category", *LANGS}, f"{row['id']}: fields {sorted(row)}"
        assert row["category"] in CATEGORIES, f"{row['id']}: unknown category {row['category']!r}"
        for lang in LANGS:
            assert isinstance(row[lang], str) and row[lang].strip(), f"{row['id']}: empty or missing {lang!r}"
    counts = Counter(row["category"] for row in rows)
    short = {c: counts[c] for c in CATEGORIES if counts[c] < MIN_PER_CATEGORY}
    assert not short, f"categories with fewer than {MIN_PER_CATEGORY} prompts: {short}"


@pytest.mark.parametrize("lang", LANGS)
def test_no_duplicate_prompts_within_the_set(lang):
    seen: dict[str, str] = {}
    dupes = []
    for row in v2_rows():
        key = normalized_text(row[lang])
        if key in seen:
            dupes.append(f"{row['id']} repeats {seen[key]} ({lang})")
        seen.setdefault(key, row["id"])
    assert not dupes, "\n".join(dupes)


@pytest.mark.parametrize("name", REFERENCE_FILES)
def test_no_text_or_8gram_shared_with_earlier_data(name):
    assert (demo_dir() / name).is_file(), name
    exact: dict[str, tuple[str, str]] = {}
    grams: dict[tuple[str, ...], tuple[str, str]] = {}
    for rid, field, text in reference_texts(name):
        key = normalized_text(text)
        if key:
            exact.setdefault(key, (rid, field))
        for g in ngrams(text):
            grams.setdefault(g, (rid, field))
    assert exact, f"no texts read from {name}"
    problems = []
    for row in v2_rows():
        for lang in LANGS:
            hit = exact.get(normalized_text(row[lang]))
            if hit:
                problems.append(f"{row['id']} ({lang}) is the same text as {name} {hit[0]} ({hit[1]})")
                continue
            shared = sorted((g, grams[g]) for g in ngrams(row[lang]) if g in grams)
            if shared:
                g, (rid, field) = shared[0]
                problems.append(
                    f"{row['id']} ({lang}) shares {len(shared)} word {NGRAM}-gram(s) with {name} {rid} ({field}), "
                    f"e.g. {' '.join(g)!r}"
                )
    assert not problems, f"{V2_FILE} overlaps {name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_each_column_is_identified_as_its_language(lang):
    wrong = [(row["id"], detect(row[lang]), row[lang]) for row in v2_rows()]
    wrong = [w for w in wrong if w[1] != lang]
    assert len(wrong) <= MAX_MISIDENTIFIED, f"{len(wrong)} {lang!r} prompts misidentified:\n" + "\n".join(
        f"{rid}: detected {found!r}: {text}" for rid, found, text in wrong
    )


def test_the_set_is_asked_for_by_name():
    from langshift.eval.suite import load_prompts

    got = load_prompts("demo-v2", ["sw", "en"], "sw")
    assert len(got["sw"]) == len(got["en"]) >= 150 and got["sw"][0]["id"] == "v2-001"
    assert len(load_prompts(None, ["sw"], "sw")["sw"]) == 50  # the default stays the demo's own
