"""The embedded demo data: hand-written English pairs with their sw/de translations.

Rows in `demo/train.jsonl` (or, until it exists, `seed_a.jsonl` + `seed_b.jsonl`), and in the held-out
`demo/heldout_pairs.jsonl`, have the shape
    {"id", "category", "en_prompt", "en_response", "translations": {"sw": {"prompt", "response"}, ...}}
`demo_english(lang)` projects the training rows onto one language, ready for the `precomputed`
translator; `heldout_records(lang)` gives the held-out quadruples (never trained on) that the
judge-free metrics score, and `check_disjoint` proves a held-out set shares nothing with training data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from langshift.data.filters import normalized_words
from langshift.files import InputError, iter_jsonl
from langshift.languages import get_language
from langshift.records import TEXT_FIELDS, Record

SEED_FILES = ("seed_a.jsonl", "seed_b.jsonl")
HELDOUT_FILE = "heldout_pairs.jsonl"


def demo_dir() -> Path:
    return Path(__file__).resolve().parent / "demo"


def demo_files() -> list[Path]:
    d = demo_dir()
    if (d / "train.jsonl").is_file():
        return [d / "train.jsonl"]
    files = [d / name for name in SEED_FILES if (d / name).is_file()]
    if not files:
        raise InputError(d, "no demo seed data (train.jsonl or seed_a.jsonl + seed_b.jsonl)")
    return files


def _seed_rows(path: Path, code: str) -> Iterator[dict]:
    """Validated rows of one seed-shaped file, projected onto language `code`; ids must be unique."""
    seen: dict[str, int] = {}
    for line, obj in iter_jsonl(path):
        for name in ("id", "en_prompt", "en_response"):
            if not isinstance(obj.get(name), str) or not obj[name].strip():
                raise InputError(path, "missing or empty", line=line, field=name)
        if obj["id"] in seen:
            raise InputError(path, f"duplicate id {obj['id']!r} (first at line {seen[obj['id']]})", line=line, field="id")
        seen[obj["id"]] = line
        t = (obj.get("translations") or {}).get(code)
        if not isinstance(t, dict):
            raise InputError(path, f"no {code!r} translation", line=line, field=f"translations.{code}")
        for name in ("prompt", "response"):
            if not isinstance(t.get(name), str) or not t[name].strip():
                raise InputError(path, "missing or empty", line=line, field=f"translations.{code}.{name}")
        yield {
            "id": obj["id"],
            "en_prompt": obj["en_prompt"],
            "en_response": obj["en_response"],
            "tgt_prompt": t["prompt"],
            "tgt_response": t["response"],
            "meta": {"source": f"demo/{path.name}", "category": obj.get("category")},
        }


def demo_english(lang: str) -> list[dict]:
    """Rows {"id","en_prompt","en_response","tgt_prompt","tgt_response","meta"} for `lang`."""
    code = get_language(lang).code
    return [row for path in demo_files() for row in _seed_rows(path, code)]


def heldout_records(lang: str, path: str | os.PathLike | None = None) -> list[Record]:
    """The held-out quadruples (x_en, y_en, x_t, y_t) for `lang`, from `demo/heldout_pairs.jsonl`
    (or `path`, a file of the same shape). Written apart from the training pairs and never trained on;
    a caller scoring a model checks them against its own training records with `check_disjoint`."""
    code = get_language(lang).code
    path = Path(path) if path is not None else demo_dir() / HELDOUT_FILE
    records = [Record(lang=code, **row) for row in _seed_rows(path, code)]
    if not records:
        raise InputError(path, "no held-out pairs")
    return records


def normalized_text(text: str) -> str:
    """Casefolded, punctuation dropped, whitespace folded: "Why is the sky  blue?" -> "why is the sky blue"."""
    return " ".join(normalized_words(text))


def check_disjoint(heldout: list[Record], train: list[Record], file: str | os.PathLike) -> None:
    """Refuse a held-out set that overlaps the training data: the same id, or the same normalised text
    (`normalized_text`) in any prompt or response field of either side, in any of their languages.
    The error names the held-out id, the training id and the fields; `file` is the held-out file."""
    train_ids = {rec.id for rec in train}
    texts: dict[str, tuple[str, str]] = {}
    for rec in train:
        for name in TEXT_FIELDS:
            key = normalized_text(getattr(rec, name))
            if key:  # a text with no words at all matches nothing
                texts.setdefault(key, (rec.id, name))
    for rec in heldout:
        if rec.id in train_ids:
            raise InputError(file, f"held-out id {rec.id!r} is also a training id", field="id")
        for name in TEXT_FIELDS:
            hit = texts.get(normalized_text(getattr(rec, name)))
            if hit:
                raise InputError(
                    file,
                    f"held-out {rec.id!r} overlaps training {hit[0]!r}: its {name} is the same text as that "
                    f"record's {hit[1]} (compared casefolded, without punctuation)",
                    field="id",
                )
