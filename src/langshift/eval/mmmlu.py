"""MMMLU by generation with answer extraction (paper §4.2, App. D, Table 6).

Each question is asked in the language's own instruction (Table 6, `Language.mmmlu_prompt`) in
simple-evals' layout

    <instruction>

    <question>

    A) <option A>
    B) <option B>
    C) <option C>
    D) <option D>

through the chat format (`generate_responses`). The answer letter is read with `extract_answer`
(last match wins). When nothing can be extracted the question is asked again with a new seed, up to
`retries` times; still nothing counts as wrong (App. D). Accuracy ± stderr overall, per subject, and
per MMLU category (STEM / humanities / social sciences / other).

Data: hub `openai/MMMLU` (subset `Language.mmmlu_config()`, columns Question, A-D, Answer, Subject),
English from MMLU itself (`cais/mmlu`, config `all`, split `test`), or a local JSONL in MMMLU's
schema; a `lang` column, when present, selects the language's rows. MMMLU has no Russian, Turkish
or Vietnamese: from the hub those raise NoMMMLUError; a local JSONL still serves them.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

from langshift.eval.extract import extract_answer
from langshift.eval.generate import generate_responses
from langshift.eval.stats import metric_value
from langshift.files import InputError, iter_jsonl, stable_hash, write_jsonl
from langshift.languages import get_language

HUB = "openai/MMMLU"
MMLU_HUB = "cais/mmlu"
LETTERS = "ABCD"

# MMLU's own grouping (hendrycks/test categories.py): subject -> subcategory -> category.
_SUBCATEGORY = {
    "abstract_algebra": "math",
    "anatomy": "health",
    "astronomy": "physics",
    "business_ethics": "business",
    "clinical_knowledge": "health",
    "college_biology": "biology",
    "college_chemistry": "chemistry",
    "college_computer_science": "computer science",
    "college_mathematics": "math",
    "college_medicine": "health",
    "college_physics": "physics",
    "computer_security": "computer science",
    "conceptual_physics": "physics",
    "econometrics": "economics",
    "electrical_engineering": "engineering",
    "elementary_mathematics": "math",
    "formal_logic": "philosophy",
    "global_facts": "other",
    "high_school_biology": "biology",
    "high_school_chemistry": "chemistry",
    "high_school_computer_science": "computer science",
    "high_school_european_history": "history",
    "high_school_geography": "geography",
    "high_school_government_and_politics": "politics",
    "high_school_macroeconomics": "economics",
    "high_school_mathematics": "math",
    "high_school_microeconomics": "economics",
    "high_school_physics": "physics",
    "high_school_psychology": "psychology",
    "high_school_statistics": "math",
    "high_school_us_history": "history",
    "high_school_world_history": "history",
    "human_aging": "health",
    "human_sexuality": "culture",
    "international_law": "law",
    "jurisprudence": "law",
    "logical_fallacies": "philosophy",
    "machine_learning": "computer science",
    "management": "business",
    "marketing": "business",
    "medical_genetics": "health",
    "miscellaneous": "other",
    "moral_disputes": "philosophy",
    "moral_scenarios": "philosophy",
    "nutrition": "health",
    "philosophy": "philosophy",
    "prehistory": "history",
    "professional_accounting": "other",
    "professional_law": "law",
    "professional_medicine": "health",
    "professional_psychology": "psychology",
    "public_relations": "politics",
    "security_studies": "politics",
    "sociology": "culture",
    "us_foreign_policy": "politics",
    "virology": "health",
    "world_religions": "philosophy",
}
_CATEGORY = {
    "STEM": ("physics", "chemistry", "biology", "computer science", "math", "engineering"),
    "humanities": ("history", "philosophy", "law"),
    "social sciences": ("politics", "culture", "economics", "geography", "psychology"),
    "other": ("other", "business", "health"),
}
CATEGORY = {
    subject: cat for subject, sub in _SUBCATEGORY.items() for cat, subs in _CATEGORY.items() if sub in subs
}


def category(subject: str) -> str:
    """MMLU category of a subject; subjects MMLU does not list count as "other"."""
    return CATEGORY.get(subject.strip().lower().replace(" ", "_"), "other")


# ------------------------------------------------------------------------------------------- data


def load_mmmlu(
    source: str | os.PathLike = HUB,
    lang: str = "en",
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[dict]:
    """Items `{"id", "question", "options" [4], "answer" ("A"-"D"), "subject"}` of one language.

    `sample` draws that many items stratified by subject (each subject's share kept, largest
    remainders rounded up), reproducibly from `seed`; `limit` then keeps the first items.
    """
    language = get_language(lang)
    path = Path(source)
    if path.exists():
        rows = list(iter_jsonl(path))
        if any("lang" in row for _, row in rows):
            rows = [(n, row) for n, row in rows if _lang_of(path, n, row) == language.code]
            if not rows:
                raise InputError(path, f"no rows for {language.name} ({language.code})", field="lang")
        items = [_item(path, n, row) for n, row in rows]
    else:
        subset = language.mmmlu_config()  # NoMMMLUError (naming the language) where MMMLU has none: ru, tr, vi
        from langshift.hub import load_split

        if subset is None:  # English: MMLU itself, normalised to MMMLU's columns
            ds = load_split(MMLU_HUB if str(source) == HUB else str(source), "all", split="test")
            rows = [
                {
                    "Question": r["question"],
                    **dict(zip(LETTERS, r["choices"], strict=True)),
                    "Answer": LETTERS[r["answer"]],
                    "Subject": r["subject"],
                }
                for r in ds
            ]
        else:
            rows = list(load_split(str(source), subset, split="test"))
        items = [_item(Path(str(source)), n, row) for n, row in enumerate(rows, start=1)]
    if sample:
        items = stratified_sample(items, sample, seed)
    return items[:limit] if limit else items


def _lang_of(path: Path, line: int, row: dict) -> str:
    try:
        return get_language(row.get("lang", "")).code
    except ValueError as e:
        raise InputError(path, str(e), line=line, field="lang") from None


def _item(path: Path, line: int, row: dict) -> dict:
    for field in ("Question", *LETTERS, "Answer"):
        if not isinstance(row.get(field), (str, int, float)) or str(row[field]).strip() == "":
            raise InputError(path, "missing or empty", line=line, field=field)
    answer = str(row["Answer"]).strip().upper()
    if answer not in LETTERS:
        raise InputError(path, f"must be one of A, B, C, D; got {row['Answer']!r}", line=line, field="Answer")
    subject = str(row.get("Subject") or "unknown")
    given = row.get("id", row.get("Unnamed: 0"))  # the hub's MMMLU keeps its row index as "Unnamed: 0"
    return {
        "id": str(given) if given is not None else stable_hash(row["Question"], subject, length=12),
        "question": str(row["Question"]),
        "options": [str(row[k]) for k in LETTERS],
        "answer": answer,
        "subject": subject,
    }


def stratified_sample(items: list[dict], n: int, seed: int = 0) -> list[dict]:
    """`n` items keeping each subject's share: floor of n·share each, remainders to the largest fractions."""
    if n >= len(items):
        return list(items)
    by_subject: dict[str, list[dict]] = {}
    for item in items:
        by_subject.setdefault(item["subject"], []).append(item)
    quota = {s: n * len(v) / len(items) for s, v in sorted(by_subject.items())}
    take = {s: int(q) for s, q in quota.items()}
    for s in sorted(quota, key=lambda s: (take[s] - quota[s], s))[: n - sum(take.values())]:
        take[s] += 1
    rng = random.Random(seed)
    chosen = {id(x) for s, v in sorted(by_subject.items()) for x in rng.sample(v, take[s])}
    return [x for x in items if id(x) in chosen]


# ------------------------------------------------------------------------------------------ prompt


def render_prompt(item: dict, lang: str) -> str:
    options = "\n".join(
        f"{letter}) {option.strip()}" for letter, option in zip(LETTERS, item["options"], strict=True)
    )
    return f"{get_language(lang).mmmlu_prompt}\n\n{item['question'].strip()}\n\n{options}"


# -------------------------------------------------------------------------------------- evaluation

GenerateFn = Callable[[list[dict], Path, int], list[dict]]


def evaluate_mmmlu(
    model,
    tokenizer,
    items: list[dict],
    lang: str,
    *,
    out_dir: str | os.PathLike | None = None,
    max_new_tokens: int = 512,
    retries: int = 3,
    seed: int = 0,
    batch_size: int = 8,
    temperature: float = 0.6,
    top_p: float = 0.9,
    generate_fn: GenerateFn | None = None,
) -> dict:
    """Accuracy of `model` on `items`; responses and per-item rows go to `out_dir`.

    Responses go to `mmmlu.<lang>.gen.jsonl` (with each row's attempts), so an interrupted run
    resumes where it stopped. `generate_fn(prompts, out_path, seed) -> rows` replaces
    `generate_responses` (a seam for other backends and for tests); attempt k then writes
    `mmmlu.<lang>.gen<k>.jsonl`.
    """
    if not items:
        raise ValueError("no MMMLU items to evaluate")
    code = get_language(lang).code
    work = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="mmmlu-"))
    prompts = {item["id"]: render_prompt(item, code) for item in items}
    if len(prompts) != len(items):
        raise ValueError("MMMLU item ids must be unique")
    asks = [{"id": i, "prompt": p} for i, p in prompts.items()]
    if generate_fn is None:  # regenerations sample again from each batch's prefilled prompt
        rows = generate_responses(
            model,
            tokenizer,
            asks,
            work / f"mmmlu.{code}.gen.jsonl",
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            batch_size=batch_size,
            accept=lambda text: extract_answer(text, code) is not None,
            retries=retries,
        )
        attempts = {row["id"]: row["attempts"] for row in rows}
        response = {row["id"]: row["response"] for row in rows}
        pred = {i: extract_answer(r, code) for i, r in response.items()}
    else:
        pred, response, attempts = _ask_with_retries(generate_fn, asks, work, code, seed, retries)

    per_item = []
    for item in items:
        p = pred.get(item["id"])
        per_item.append(
            {
                "id": item["id"],
                "subject": item["subject"],
                "category": category(item["subject"]),
                "gold": item["answer"],
                "pred": p,
                "correct": int(p == item["answer"]),
                "attempts": attempts[item["id"]],
                "response": response.get(item["id"], ""),
            }
        )
    if out_dir is not None:
        write_jsonl(work / f"mmmlu.{code}.jsonl", per_item)
    return {
        "metrics": {"accuracy": metric_value(r["correct"] for r in per_item)},
        "lang": code,
        "extraction_failure_rate": sum(r["pred"] is None for r in per_item) / len(per_item),
        "regenerations": sum(r["attempts"] - 1 for r in per_item),
        "per_subject": _breakdown(per_item, "subject"),
        "per_category": _breakdown(per_item, "category"),
    }


def _ask_with_retries(generate_fn: GenerateFn, asks: list[dict], work: Path, code: str, seed: int, retries: int):
    """Through a `generate_fn`: attempt k (seed + k) asks again what is still unanswered."""
    pred: dict[str, str | None] = {}
    response: dict[str, str] = {}
    attempts: dict[str, int] = {a["id"]: 0 for a in asks}
    pending = asks
    for attempt in range(retries + 1):  # the first generation, then up to `retries` regenerations
        if not pending:
            break
        for row in generate_fn(pending, work / f"mmmlu.{code}.gen{attempt}.jsonl", seed + attempt):
            attempts[row["id"]] += 1
            response[row["id"]] = row["response"]
            pred[row["id"]] = extract_answer(row["response"], code)
        pending = [a for a in pending if pred.get(a["id"]) is None]
    return pred, response, attempts


def _breakdown(rows: list[dict], key: str) -> dict:
    """Accuracy per subject or category, each {"value", "stderr", "n"}."""
    groups: dict[str, list[int]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r["correct"])
    return {name: metric_value(values) for name, values in sorted(groups.items())}


def run_task(ctx, lang: str) -> dict:
    """The `mmmlu` task: the config's (sampled) items in `lang`, generated with the suite's model."""
    cfg = ctx.cfg
    items = load_mmmlu(cfg.mmmlu, lang, limit=cfg.limit, sample=cfg.mmmlu_sample, seed=cfg.seed)
    model, tokenizer = ctx.model.get()
    kw = {"max_new_tokens": cfg.mmmlu_max_new_tokens} if cfg.mmmlu_max_new_tokens else {}
    return evaluate_mmmlu(model, tokenizer, items, lang, out_dir=ctx.out, seed=cfg.seed, batch_size=cfg.batch_size,
                          temperature=cfg.temperature, top_p=cfg.top_p, retries=cfg.mmmlu_retries, **kw)
