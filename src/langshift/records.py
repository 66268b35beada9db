"""The cross-lingual quadruple (x_en, y_en, x_t, y_t) and its loading/validation.

One record per JSON line:
    {"id": str, "lang": str, "en_prompt": str, "en_response": str,
     "tgt_prompt": str, "tgt_response": str, "meta": {...}?}
A `datasets` directory (`save_to_disk`, a DatasetDict with train/validation, or a single Dataset)
or a hub dataset name with the same columns is accepted too. Every problem is reported as
`file:line: field 'x': message` before any model is loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

from langshift.files import InputError, atomic_dir, iter_jsonl, write_jsonl
from langshift.languages import UnknownLanguageError, canonical_code

TEXT_FIELDS = ("en_prompt", "en_response", "tgt_prompt", "tgt_response")


@dataclass
class Record:
    id: str
    lang: str
    en_prompt: str
    en_response: str
    tgt_prompt: str
    tgt_response: str
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def validate_record(obj: dict, *, file: str | os.PathLike, line: int | None) -> Record:
    """Check one raw object and return a Record with its language code made canonical."""
    for name in ("id", "lang", *TEXT_FIELDS):
        if name not in obj or obj[name] is None:
            raise InputError(file, "missing", line=line, field=name)
        if name == "id" and isinstance(obj[name], int):
            continue
        if not isinstance(obj[name], str):
            raise InputError(file, f"expected a string, got {type(obj[name]).__name__}", line=line, field=name)
        if not obj[name].strip():
            raise InputError(file, "empty", line=line, field=name)
    try:
        lang = canonical_code(obj["lang"])
    except UnknownLanguageError as e:
        raise InputError(file, str(e), line=line, field="lang") from None
    if lang == "en":
        raise InputError(file, "the target language cannot be English", line=line, field="lang")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise InputError(file, "expected an object", line=line, field="meta")
    return Record(str(obj["id"]), lang, *(obj[k] for k in TEXT_FIELDS), meta=meta)


def wanted_languages(lang: str | Collection[str] | None) -> list[str]:
    """Canonical codes of `lang`: one code, a comma-separated list ("sw,de") or a collection; [] for None."""
    if not lang:
        return []
    parts = lang.split(",") if isinstance(lang, str) else list(lang)
    return [canonical_code(p.strip()) for p in parts if p.strip()]


def source_id(rec: Record) -> str:
    """The English source a record translates: `meta.source_id`, else its `id`. Records of different
    target languages made from one English (prompt, response) share it (the demo data and `langshift data`
    reuse the English row's id in every language; a hub dataset with per-language ids sets meta.source_id)."""
    return str(rec.meta.get("source_id") or rec.id)


def _check_set(records: list[tuple[int | None, Record]], file, lang: str | Collection[str] | None) -> list[Record]:
    # An id is unique within a language: the same id in two languages marks one English source.
    seen: dict[tuple[str, str], int | None] = {}
    want = wanted_languages(lang)
    for line, rec in records:
        if (rec.lang, rec.id) in seen:
            first = f" (first at line {seen[rec.lang, rec.id]})" if seen[rec.lang, rec.id] is not None else ""
            raise InputError(file, f"duplicate id {rec.id!r}{first}", line=line, field="id")
        seen[rec.lang, rec.id] = line
        if want and rec.lang not in want:
            raise InputError(file, f"record language {rec.lang!r} differs from --lang {','.join(want)!r}", line=line,
                             field="lang")
    if not records:
        raise InputError(file, "no records")
    return [rec for _, rec in records]


def load_jsonl_records(path: str | os.PathLike, lang: str | Collection[str] | None = None) -> list[Record]:
    return _check_set([(i, validate_record(o, file=path, line=i)) for i, o in iter_jsonl(path)], path, lang)


def _from_row(row: dict, name: str, line: int) -> Record:
    row = dict(row)
    if isinstance(row.get("meta"), str):  # save_dataset_dir stores meta as JSON text (see there)
        try:
            row["meta"] = json.loads(row["meta"])
        except json.JSONDecodeError:
            raise InputError(name, "not a JSON object", line=line, field="meta") from None
    return validate_record(row, file=name, line=line)


def _rows_from_dataset(ds, name: str, lang):
    # `line` is the 1-based row index for datasets: still points the user at the bad row.
    return _check_set([(i, _from_row(row, name, i)) for i, row in enumerate(ds, 1)], name, lang)


def load_records(source: str | os.PathLike, lang: str | Collection[str] | None = None, split: str = "train") -> list[Record]:
    """Load records from a JSONL file, a `datasets` save_to_disk dir, or a hub dataset name; `lang` (one code,
    "sw,de" or a list) is what every record's language must be."""
    path = Path(source)
    if path.is_file():
        return load_jsonl_records(path, lang)
    if path.is_dir():
        if (path / "records.jsonl").is_file() and not (path / "dataset_dict.json").exists():
            return load_jsonl_records(path / "records.jsonl", lang)
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise InputError(path, f"no split {split!r} (has {sorted(ds)})")
            ds = ds[split]
        return _rows_from_dataset(ds, f"{path}[{split}]", lang)
    if str(source).endswith((".jsonl", ".json")) or os.sep in str(source):
        raise InputError(source, "file not found")
    import datasets  # hub name, e.g. "user/clo-sw"

    return _rows_from_dataset(datasets.load_dataset(str(source), split=split), f"{source}[{split}]", lang)


# `columns="trl"`: TRL's conversational prompt/completion form, one pair of columns per language.
TRL_COLUMNS = {"en_prompt": "prompt_en", "en_response": "completion_en", "tgt_prompt": "prompt_{lang}",
               "tgt_response": "completion_{lang}"}


def records_from(data, lang: str | Collection[str] | None = None, columns: dict | str | None = None, *,
                 split: str = "train", name: str | None = None) -> list[Record]:
    """Records from what a Python user has, checked as `langshift train` checks a file.

    `data`: a list of `Record`s or of dicts, a `datasets.Dataset` (a DatasetDict: its `split`), a records
    JSONL, a `save_to_disk` directory or a hub dataset id. `lang`: the target language every record must
    have, also filled in where a row has no `lang` column. `columns` maps a record field to the column
    that holds it, e.g. {"en_prompt": "question", "tgt_prompt": "swali"}; "trl" is TRL's conversational
    form per language: prompt_en / completion_en / prompt_sw / completion_sw, each a list of messages
    ({"role", "content"}; a prompt is its one user turn, a completion its assistant turn). A row without
    an id gets its row number. Errors name the row as a line: `train_dataset:3: field 'tgt_prompt': empty`."""
    if isinstance(data, (str, os.PathLike)) and columns is None:
        return load_records(data, lang, split)
    name = name or (str(data) if isinstance(data, (str, os.PathLike)) else "dataset")
    if isinstance(data, (str, os.PathLike)):
        import datasets

        path = Path(data)
        data = datasets.load_from_disk(str(path)) if path.is_dir() else datasets.load_dataset(str(data), split=split)
    if hasattr(data, "keys") and split in data and not isinstance(data, dict):  # a DatasetDict
        data, name = data[split], f"{name}[{split}]"
    if isinstance(data, list) and data and all(isinstance(r, Record) for r in data):
        return _check_set([(None, r) for r in data], name, lang)
    want = wanted_languages(lang)
    mapping = _column_map(columns, want)
    rows = []
    for i, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise InputError(name, f"expected a mapping of columns, got {type(row).__name__}", line=i)
        rows.append((i, _from_row(_mapped(row, mapping, want, name, i), name, i)))
    return _check_set(rows, name, lang)


def _column_map(columns: dict | str | None, want: list[str]) -> dict[str, str]:
    if columns is None:
        return {}
    if columns == "trl":
        if len(want) != 1:
            raise InputError("columns", "columns='trl' needs one target language: lang='sw'")
        return {ours: theirs.format(lang=want[0]) for ours, theirs in TRL_COLUMNS.items()}
    if not isinstance(columns, dict):
        raise InputError("columns", f"expected a mapping of record field -> column, or 'trl', got {columns!r}")
    unknown = set(columns) - {"id", "lang", "meta", *TEXT_FIELDS}
    if unknown:
        raise InputError("columns", f"not record fields: {', '.join(sorted(unknown))} (fields: id, lang, "
                         f"{', '.join(TEXT_FIELDS)}, meta)")
    return dict(columns)


def _mapped(row: dict, mapping: dict[str, str], want: list[str], name: str, line: int) -> dict:
    """One row as a record's fields: renamed columns, conversational cells as their text, id and lang filled."""
    out = {key: row.get(column) for key, column in mapping.items()}
    for key in ("id", "lang", "meta", *TEXT_FIELDS):
        if key not in out and key in row:
            out[key] = row[key]
    for key in TEXT_FIELDS:
        if isinstance(out.get(key), list):
            out[key] = _message_text(out[key], "user" if key.endswith("prompt") else "assistant",
                                     name, line, mapping.get(key, key))
    if out.get("id") is None and "id" not in mapping:
        out["id"] = str(line)
    if out.get("lang") is None and "lang" not in mapping and len(want) == 1:
        out["lang"] = want[0]
    return out


def _message_text(messages: list, role: str, name: str, line: int, column: str) -> str:
    """The text of the one `role` turn of a conversational cell (TRL's prompt/completion lists)."""
    turns = [m for m in messages if isinstance(m, dict) and m.get("role") == role]
    if len(turns) != 1 or len(messages) != 1:
        raise InputError(name, f"expected one {role!r} message, got roles {[m.get('role') if isinstance(m, dict) else m for m in messages]} "
                         "(records are single-turn)", line=line, field=column)
    return turns[0].get("content")


def save_records(path: str | os.PathLike, records: list[Record]) -> Path:
    return write_jsonl(path, (r.to_dict() for r in records))


def save_dataset_dir(path: str | os.PathLike, records: list[Record]) -> Path:
    """The same records as a `datasets.DatasetDict` (train, and validation when any record's meta.split
    says so), written under a temporary name and renamed into place.

    `meta` is stored as JSON text: Arrow wants one type per column across rows, and free-form meta
    (oasst1 ids, categories, filter reasons) has none; `load_records` decodes it back."""
    import datasets

    path = Path(path)
    splits = {}
    for split in ("train", "validation"):
        rows = [{**r.to_dict(), "meta": json.dumps(r.meta, ensure_ascii=False, sort_keys=True)}
                for r in records if r.meta.get("split", "train") == split]
        if rows:
            splits[split] = datasets.Dataset.from_list(rows)
    with atomic_dir(path) as tmp:
        datasets.DatasetDict(splits).save_to_disk(str(tmp))
    return path
