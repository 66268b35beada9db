"""AlpacaEval's data: the instructions to answer (the hub's English set, or a local file in any language)
and the responses to judge (ours or alpaca_eval's output format). The judging is `eval/alpaca.py`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from langshift.files import InputError, iter_jsonl, read_json, stable_hash
from langshift.languages import get_language

HUB_DATASET = "tatsu-lab/alpaca_eval"
# The repo is a loading-script dataset, which `datasets` >= 4 refuses (tatsu-lab/alpaca_eval#454); its
# evaluation set is this JSON list of {"instruction", "output", "generator", "dataset"} (805 rows).
HUB_FILE = "alpaca_eval.json"


def _first_value(obj: dict, keys: Sequence[str]):
    """The first of `keys` that `obj` holds a non-empty value under."""
    for k in keys:
        if obj.get(k) not in (None, ""):
            return obj[k]
    return None


def load_instructions(source: str | Path | None, lang: str, limit: int | None = None) -> list[dict]:
    """{"id","instruction"} rows in `lang`.

    `source`: None or "tatsu-lab/alpaca_eval" (English only, from the hub; rows also carry "dataset",
    the AlpacaEval subset a row comes from, e.g. "koala"); or a local JSONL/JSON whose
    rows hold the instruction under the language's code (demo prompts.jsonl: {"id","en","sw",...};
    Indonesian under "ind", as "id" is the row id), "instruction", "prompt" (with "lang": the rows of
    one language), or "tgt_prompt" (translated records); "id" is optional.
    """
    lang = get_language(lang).code
    if source in (None, HUB_DATASET):
        if lang != "en":
            raise ValueError(
                f"{HUB_DATASET} is English; for {lang!r} pass a translated copy (e.g. from `langshift data translate`)"
            )
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(HUB_DATASET, HUB_FILE, repo_type="dataset")
        out = []
        for index, row in _iter_rows(path):
            text = row.get("instruction")
            if not isinstance(text, str) or not text.strip():
                raise InputError(path, "missing or empty", line=index, field="instruction")
            out.append({"id": f"alpaca-{index - 1:04d}", "instruction": text, "dataset": row.get("dataset")})
        return out[:limit] if limit else out
    # A language's text is under its code, or its ISO 639-3 code where the code is a field name
    # (Indonesian's "id").
    lang_keys = [k for k in dict.fromkeys((lang, get_language(lang).iso3)) if k not in ("id", "lang")]
    out = []
    for line, row in _iter_rows(source):
        if row.get("lang") not in (None, lang) and not any(k in row for k in lang_keys):
            continue
        text = _first_value(row, (*lang_keys, "instruction", "prompt", "tgt_prompt"))
        if not isinstance(text, str):
            raise InputError(
                source,
                f"no instruction text (looked for '{lang}', 'instruction', 'prompt')",
                line=line,
                field=lang,
            )
        out.append({"id": str(row.get("id", f"line-{line}")), "instruction": text})
        if limit and len(out) >= limit:
            break
    return out


def _iter_rows(path: str | Path):
    """(line, row) from JSONL, or (index, row) from a JSON list (alpaca_eval's output format)."""
    path = Path(path)
    if path.suffix == ".json":
        rows = read_json(path)
        if not isinstance(rows, list):
            raise InputError(path, "expected a JSON list of objects")
        for i, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise InputError(path, "expected an object", line=i)
            yield i, row
    else:
        yield from iter_jsonl(path)


def load_outputs(path: str | Path) -> dict[str, dict]:
    """id -> {"prompt", "response"} from our responses JSONL ({"id","prompt","response"}) or alpaca_eval's
    JSON ({"instruction","output"}; id = hash of the instruction when absent). Of k sampled responses
    to one prompt ("sample" 0..k-1), the first is the one judged."""
    out, lines = {}, {}
    for line, row in _iter_rows(path):
        if row.get("sample", 0) != 0:
            continue
        prompt = _first_value(row, ("prompt", "instruction"))
        response = row.get("response", row.get("output"))
        if not isinstance(response, str):
            raise InputError(path, "missing or not a string", line=line, field="response")
        if "id" not in row and not isinstance(prompt, str):
            raise InputError(path, "needs an 'id' or the prompt text", line=line, field="id")
        rid = str(row["id"]) if "id" in row else stable_hash(prompt)
        if rid in out:  # which of two answers would be judged is not ours to guess
            raise InputError(path, f"duplicate id {rid!r} (first at line {lines[rid]})", line=line, field="id")
        out[rid], lines[rid] = {"prompt": prompt, "response": response}, line
    return out
