"""Result rows: the one flat shape every report table and plot is built from.

A run directory holds `results.json` = {"experiment": str, "rows": [row, ...]}; one row is one number:

    {"model", "lang", "method", "size", "trainable", "nll", "task", "eval_lang", "metric",
     "value", "stderr", "n"}   (+ "baseline" for judged win rates, + "seed" for replicate training seeds,
      + "nll_reduction")

"nll_reduction" ("token" | "sequence", null for the base model) came later than the other fields: a row
without it reads as "token" (the only reduction there was before), or null for the base model.

"trained_langs" marks a multilingual model: the target languages it was trained on, joined by "+"
("sw+de"); absent (null) for a single-language model, so those rows read as before. A multilingual
model's evaluation gives a row per trained language with "lang" = that language and eval_lang "target",
and its English rows under "lang" = its first language: each row then sits beside the single-language
models' rows of the same language, as a variant of the same method ("CLO (one model for sw+de)").

`metric` is one of its task's metrics (eval/tasks.py); `value` and `stderr` of a "fraction" metric are
in 0..1 and tables and plots show them as percentages. Rows from several
runs are merged; two rows that measure the same thing must agree, otherwise the merge is refused
(a silent pick would put an arbitrary number in a table).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from langshift.eval.tasks import TASKS
from langshift.files import InputError, read_json
from langshift.languages import TARGET_LANGUAGES, UnknownLanguageError, get_language

METHODS = ("base", "sft-eng", "sft-tgt", "sft", "dpo", "sft+dpo", "clo")  # display order
METHOD_LABEL = {
    "base": "Base",
    "sft-eng": "SFT-eng",
    "sft-tgt": "SFT-tgt",
    "sft": "SFT",
    "dpo": "DPO",
    "sft+dpo": "SFT+DPO",
    "clo": "CLO",
}
EVAL_LANGS = ("target", "en")
TRAINABLE = ("attention", "full", "lora")
NLL = ("target", "both")
NLL_REDUCTION = ("token", "sequence")
REQUIRED = (
    "model",
    "lang",
    "method",
    "size",
    "trainable",
    "nll",
    "task",
    "eval_lang",
    "metric",
    "value",
    "stderr",
    "n",
)
KEY = ("model", "lang", "method", "size", "trainable", "nll", "nll_reduction", "task", "eval_lang", "metric",
       "baseline", "seed", "trained_langs")


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check(row, path: Path, i: int) -> None:
    """Raise InputError naming file, row index and field for the first thing wrong with `row`."""

    def bad(field: str | None, message: str):
        return InputError(path, f"rows[{i}]: {message}", field=field)

    if not isinstance(row, dict):
        raise bad(None, f"expected a JSON object, got {type(row).__name__}")
    for k in REQUIRED:
        if k not in row:
            raise bad(k, "missing required field")
    for k in ("model", "lang"):
        if not isinstance(row[k], str) or not row[k]:
            raise bad(k, f"expected a non-empty string, got {row[k]!r}")
    choices = {"method": METHODS, "task": tuple(TASKS), "eval_lang": EVAL_LANGS}
    for k, allowed in choices.items():
        if row[k] not in allowed:
            raise bad(k, f"{row[k]!r} is not one of {', '.join(allowed)}")
    task = TASKS[row["task"]]
    names = [m.name for m in task.metrics]
    if row["metric"] not in names:
        raise bad("metric", f"{row['metric']!r} is not a {task.name} metric ({', '.join(names)})")
    unit = task.metric(row["metric"]).unit
    for k, allowed in (("trainable", TRAINABLE), ("nll", NLL), ("nll_reduction", NLL_REDUCTION)):
        if row.get(k) is not None and row[k] not in allowed:
            raise bad(k, f"{row[k]!r} is not null or one of {', '.join(allowed)}")
    if row["size"] is not None and not (_is_int(row["size"]) and row["size"] > 0):
        raise bad("size", f"expected null or a positive integer, got {row['size']!r}")
    # A fraction above 1 is almost surely a percentage written by mistake.
    if not _is_number(row["value"]) or (unit == "fraction" and not 0.0 <= row["value"] <= 1.0):
        raise bad("value", f"expected {'a fraction in [0, 1]' if unit == 'fraction' else 'a number'}, "
                           f"got {row['value']!r}")
    if row["stderr"] is not None and not (_is_number(row["stderr"]) and row["stderr"] >= 0):
        raise bad("stderr", f"expected null or a non-negative number, got {row['stderr']!r}")
    if not (_is_int(row["n"]) and row["n"] > 0):
        raise bad("n", f"expected a positive integer, got {row['n']!r}")
    if row.get("seed") is not None and not (_is_int(row["seed"]) and row["seed"] >= 0):
        raise bad("seed", f"expected null or a non-negative integer, got {row['seed']!r}")
    if row.get("trained_langs") is not None and not (isinstance(row["trained_langs"], str) and row["trained_langs"]):
        raise bad("trained_langs", f"expected null or the trained languages ('sw+de'), got {row['trained_langs']!r}")
    if task.needs_judge and not (isinstance(row.get("baseline"), str) and row["baseline"]):
        raise bad("baseline", f"a {task.name} result needs the method it was judged against")


def read_run(path: str | Path) -> tuple[str, list[dict]]:
    """(experiment, validated rows) of one run directory (or its results.json itself).

    Each row gets "source" (the file it came from) unless it already names one (a merged report)."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.exists():
        raise InputError(file, "no results.json here (is this a run directory?)")
    doc = read_json(file)
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise InputError(
            file, 'expected {"experiment": ..., "rows": [...]} as written by `langshift run`', field="rows"
        )
    rows = []
    for i, row in enumerate(doc["rows"]):
        _check(row, file, i)
        rows.append({"nll_reduction": None if row["method"] == "base" else "token", **row,
                     "source": row.get("source", str(file.resolve())), "_at": (str(file), i)})
    return str(doc.get("experiment") or file.parent.name), rows


def result_rows(results: dict, facts: dict, baseline: str | None = None) -> list[dict]:
    """One evaluation's results.json flattened into rows (one number each); `facts` names the model,
    method, size, ... it measured; `baseline` the method a judge compared it with. English results of a
    non-English target are the "en" rows."""
    rows = []
    several = bool(facts.get("trained_langs"))  # a multilingual model: a row per trained language
    for name, task in TASKS.items():
        for lang, result in (results.get(name) or {}).items():
            for metric in task.metrics:
                got = result["metrics"].get(metric.name) if metric.in_rows else None
                if not got or got.get("value") is None:
                    continue
                row = {**facts, "task": name, "eval_lang": "en" if lang == "en" and facts["lang"] != "en" else "target",
                       "metric": metric.name, "value": float(got["value"]), "stderr": got["stderr"], "n": got["n"]}
                if several and lang != "en":
                    row["lang"] = lang
                if task.needs_judge:
                    row["baseline"] = baseline or "sft"
                rows.append(row)
    return rows


def collapse_seeds(rows: list[dict]) -> list[dict]:
    """One row per configuration: rows that differ only in their training "seed" become their mean.

        value  = mean_s v_s
        stderr = max(sd_s(v) / √k, rms_s(se_s) / √k)    (k seeds; the spread between seeds, but never
                                                          less than the items' own noise averaged over k)
    and the row records "seeds" = k and "seed_sd" = sd_s(v) (None for one seed). Rows without a seed
    pass through unchanged."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    out = []
    for r in rows:
        if r.get("seed") is None:
            out.append(r)
        else:
            groups[tuple(r.get(k) for k in KEY if k != "seed")].append(r)
    for group in groups.values():
        k = len(group)
        values = [r["value"] for r in group]
        mean = sum(values) / k
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1)) if k > 1 else None
        item_se = math.sqrt(sum((r["stderr"] or 0.0) ** 2 for r in group) / k) / math.sqrt(k)
        stderr = max(sd / math.sqrt(k), item_se) if sd is not None else group[0]["stderr"]
        first = {key: v for key, v in group[0].items() if key not in ("seed", "source", "_at")}
        out.append({**first, "value": mean, "stderr": stderr, "n": group[0]["n"], "seeds": k, "seed_sd": sd})
    return out


def read_comparisons(path: str | Path, field: str = "comparisons") -> list[dict]:
    """The paired comparisons (or, with field="interactions", the differences of differences) a run's
    results.json holds (none in older runs)."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    doc = read_json(file)
    comparisons = doc.get(field, [])
    if not isinstance(comparisons, list) or not all(isinstance(c, dict) for c in comparisons):
        raise InputError(file, "expected a list of objects", field=field)
    return comparisons


def key(row: dict) -> tuple:
    return tuple(row.get(k) for k in KEY)


def merge(rows: Iterable[dict]) -> list[dict]:
    """Drop exact repeats (e.g. the base model's numbers in two runs); refuse rows that disagree."""
    seen: dict[tuple, dict] = {}
    for row in rows:
        k = key(row)
        if k in seen:
            old = seen[k]
            if (old["value"], old["stderr"], old["n"]) != (row["value"], row["stderr"], row["n"]):
                (f0, i0), (f1, i1) = old["_at"], row["_at"]
                raise InputError(
                    f1,
                    f"rows[{i1}]: measures the same thing as rows[{i0}] of {f0} "
                    f"({', '.join(f'{n}={v}' for n, v in zip(KEY, k, strict=True) if v is not None)}) "
                    f"but reports {row['value']} (n={row['n']}) instead of {old['value']} (n={old['n']})",
                )
            continue
        seen[k] = row
    return [{k: v for k, v in r.items() if k != "_at"} for r in seen.values()]


def load_rows(run_dirs: Iterable[str | Path]) -> list[dict]:
    """Merged, validated rows of several run directories."""
    return merge(row for d in run_dirs for row in read_run(d)[1])


# ---- ordering, labels, selection ----------------------------------------------------------------


def lang_name(code: str) -> str:
    try:
        return get_language(code).name
    except UnknownLanguageError:
        return code


def lang_order(code: str) -> tuple:
    """The paper's column order (high → medium → low resource), unknown codes last."""
    return (TARGET_LANGUAGES.index(code), "") if code in TARGET_LANGUAGES else (len(TARGET_LANGUAGES), code)


def method_order(method: str) -> int:
    return METHODS.index(method)


def eval_name(eval_lang: str, lang: str) -> str:
    return "English" if eval_lang == "en" else lang_name(lang)


# Preferred training variant for the main tables: the paper's setting (attention-only, target NLL) first.
_TRAINABLE_RANK = {"attention": 0, None: 1, "lora": 2, "full": 3}
_NLL_RANK = {None: 0, "target": 0, "both": 1}
_REDUCTION_RANK = {None: 0, "token": 0, "sequence": 1}


def variant(row: dict) -> tuple:
    return (row["trainable"], row["nll"], row.get("nll_reduction"), row.get("trained_langs"))


def variant_rank(v: tuple) -> tuple:
    """Preferred first: the single-language model, then the default reduction, NLL and trainable set."""
    return (v[3] is not None, _REDUCTION_RANK[v[2]], _NLL_RANK[v[1]], _TRAINABLE_RANK[v[0]])


def variant_label(v: tuple) -> str:
    trainable, nll, reduction, trained_langs = v
    parts = [{"attention": "attention", "full": "full", "lora": "LoRA"}[trainable]] if trainable else []
    if nll:
        parts.append(f"NLL {nll}")
    if reduction == "sequence":  # the default (per token) goes unsaid, as before the option existed
        parts.append("NLL summed per sequence")
    if trained_langs:
        parts.append(f"one model for {trained_langs}")
    return ", ".join(parts)


def size_order(size: int | None) -> int:
    return -1 if size is None else size


def main_rows(rows: list[dict]) -> list[dict]:
    """One configuration per (model, lang, method, task): the preferred variant, at its largest size.

    This is what the paper-shaped Tables 1-3 compare; the ablation tables show the other variants."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["lang"], r["method"], r["task"])].append(r)
    out = []
    for group in groups.values():
        best_v = min({variant(r) for r in group}, key=variant_rank)
        in_v = [r for r in group if variant(r) == best_v]
        best_size = max((r["size"] for r in in_v), key=size_order)
        out += [r for r in in_v if r["size"] == best_size]
    return out


def pct(value: float | None, stderr: float | None = None, decimals: int = 1) -> str:
    """'45.0 ± 3.2' from fractions; '–' for a missing number."""
    if value is None:
        return "–"
    s = f"{100 * value:.{decimals}f}"
    return s if stderr is None else f"{s} ± {100 * stderr:.{decimals}f}"


def delta(a: float | None, b: float | None, decimals: int = 1, unit: str = "fraction") -> str:
    """Signed difference a − b: in percentage points for a rate ('+11.3', '-0.2', '0.0'), else in the
    metric's own unit to 3 decimals ('+0.179' nats); '–' if either is missing."""
    if a is None or b is None:
        return "–"
    if unit != "fraction":
        decimals = 3
    d = round((100 if unit == "fraction" else 1) * (a - b), decimals)
    return f"{0.0:.{decimals}f}" if d == 0 else f"{d:+.{decimals}f}"
