"""The embedded demo seed set: hand-written English pairs with their sw/de translations.

Rows in `demo/train.jsonl` (or, until it exists, `seed_a.jsonl` + `seed_b.jsonl`) have the shape
    {"id", "category", "en_prompt", "en_response", "translations": {"sw": {"prompt", "response"}, ...}}
`demo_english(lang)` projects them onto one language, ready for the `precomputed` translator.
"""

from __future__ import annotations

from pathlib import Path

from langshift.files import InputError, iter_jsonl
from langshift.languages import get_language

SEED_FILES = ("seed_a.jsonl", "seed_b.jsonl")


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


def demo_english(lang: str) -> list[dict]:
    """Rows {"id","en_prompt","en_response","tgt_prompt","tgt_response","meta"} for `lang`."""
    code = get_language(lang).code
    rows = []
    for path in demo_files():
        for line, obj in iter_jsonl(path):
            for name in ("id", "en_prompt", "en_response"):
                if not isinstance(obj.get(name), str) or not obj[name].strip():
                    raise InputError(path, "missing or empty", line=line, field=name)
            t = (obj.get("translations") or {}).get(code)
            if not isinstance(t, dict):
                raise InputError(path, f"no {code!r} translation", line=line, field=f"translations.{code}")
            for name in ("prompt", "response"):
                if not isinstance(t.get(name), str) or not t[name].strip():
                    raise InputError(path, "missing or empty", line=line, field=f"translations.{code}.{name}")
            rows.append(
                {
                    "id": obj["id"],
                    "en_prompt": obj["en_prompt"],
                    "en_response": obj["en_response"],
                    "tgt_prompt": t["prompt"],
                    "tgt_response": t["response"],
                    "meta": {"source": f"demo/{path.name}", "category": obj.get("category")},
                }
            )
    return rows
