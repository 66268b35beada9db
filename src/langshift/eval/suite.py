"""The evaluation suite: one model, one target language (and English), every benchmark, one report.

    evaluate(cfg) loads the model once (only when something must run on it), then per eval language
    L in (target, English):
      fidelity  generate responses to the open prompts in L  -> out/responses.<L>.jsonl  (resumable),
                score language fidelity                       -> out/fidelity.<L>.jsonl
      belebele  log-likelihood multiple choice                -> out/belebele.<L>.jsonl
      mmmlu     generation + answer extraction                -> out/mmmlu.<L>.jsonl (its own files)
      alpaca    pairwise judge of these responses against a baseline run's responses.<L>.jsonl
                (only with a judge and a baseline)            -> out/alpaca.<L>.jsonl, out/judge_cache.sqlite
    and writes out/results.json, out/report.md (tables in the shapes of the paper's Tables 1-3:
    rows "Target" / "English") and out/results.png (per-language bars).

results.json: {"model", "meta", <task>: {<lang>: {...numbers with n and stderr...}}, "skipped": {...}}
-- the same results[task][lang] layout the single-benchmark `langshift eval` commands merge into.
Rates are fractions in [0, 1]; the report prints percentages.

Resuming: responses are reused from disk; a finished (task, language) result is reused when its
inputs (model fingerprint, data source, limits, seed, generation settings) are unchanged. A different
model in the same output directory is refused rather than mixed in.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from langshift.eval import alpaca, fidelity
from langshift.files import InputError, iter_jsonl, stable_hash, write_json, write_jsonl
from langshift.languages import get_language

TASKS = ("fidelity", "belebele", "mmmlu", "alpaca")
TASK_TITLES = {
    "alpaca": "AlpacaEval",
    "belebele": "BELEBELE",
    "mmmlu": "MMMLU",
    "fidelity": "Language fidelity",
}


@dataclass
class JudgeConfig:
    """An OpenAI-compatible chat endpoint; the key is read from the env var `api_key_env` (None: no key)."""

    model: str = "gpt-4o"
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str | None = "OPENAI_API_KEY"
    concurrency: int = 4
    max_tokens: int = 256
    structured: str | None = None  # "json_schema" (OpenAI) / "json_object" (llama.cpp, vLLM) / None


@dataclass
class EvalConfig:
    model: str
    lang: str
    out: str
    gguf_file: str | None = None
    tasks: tuple[str, ...] = TASKS
    english: bool = True  # also evaluate in English (the paper's "English" rows)
    prompts: str | None = None  # open prompts; None: the packaged demo prompts.jsonl
    belebele: str = "facebook/belebele"
    mmmlu: str = "openai/MMMLU"
    limit: int | None = None  # per language and task
    mmmlu_sample: int | None = None  # stratified by subject
    max_new_tokens: int = 256
    mmmlu_max_new_tokens: int | None = None  # None: mmmlu's own default
    mmmlu_retries: int = 3  # regenerations when no answer can be extracted (paper: up to 3)
    temperature: float = 0.6
    top_p: float = 0.9
    seed: int = 0
    batch_size: int = 8
    same_language_system: bool = False  # App. F / Table 8: "answer in the same language" system prompt
    generation_backend: str = "hf"
    judge: JudgeConfig | None = None
    baseline_responses: str | None = None  # a baseline run's out dir holding responses.<lang>.jsonl
    model_name: str | None = None
    baseline_name: str = "baseline"
    trust_remote_code: bool = False
    dtype: str | None = None
    device: str | None = None

    def __post_init__(self):
        if isinstance(self.tasks, str):
            self.tasks = tuple(t.strip() for t in self.tasks.split(",") if t.strip())
        self.tasks = tuple(self.tasks)
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"unknown task(s) {unknown or '(none given)'}; choose from {', '.join(TASKS)}")
        self.lang = get_language(self.lang).code
        if isinstance(self.judge, dict):
            self.judge = _from_dict(JudgeConfig, self.judge, "judge")
        self.model = str(self.model)
        self.out = str(self.out)

    @classmethod
    def from_dict(cls, d: dict) -> EvalConfig:
        return _from_dict(cls, d, "eval config")

    @property
    def langs(self) -> list[str]:
        return [self.lang] + (["en"] if self.english and self.lang != "en" else [])


def _from_dict(cls, d: dict, what: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**d)


# ------------------------------------------------------------------------------------------ inputs


def demo_prompts_path() -> Path:
    return Path(str(resources.files("langshift.data") / "demo" / "prompts.jsonl"))


def load_prompts(
    source: str | os.PathLike | None, langs: list[str], default_lang: str, limit: int | None = None
) -> dict[str, list[dict]]:
    """{lang: [{"id","prompt"}]} from a JSONL of multilingual rows ({"id","en","sw",...}, the demo shape)
    or of single prompts ({"id","prompt"}, with "lang" or else taken to be `default_lang`)."""
    path = Path(source) if source else demo_prompts_path()
    out: dict[str, list[dict]] = {lang: [] for lang in langs}
    for line, row in iter_jsonl(path):
        rid = str(row.get("id", f"line-{line}"))
        if "prompt" in row:
            if not isinstance(row["prompt"], str):
                raise InputError(path, "must be a string", line=line, field="prompt")
            lang = get_language(row.get("lang") or default_lang).code
            if lang in out:
                out[lang].append({"id": rid, "prompt": row["prompt"]})
            continue
        texts = {get_language(k).code: v for k, v in row.items() if _is_lang(k) and isinstance(v, str)}
        if not texts:
            raise InputError(
                path,
                "needs 'prompt' or one text per language code ('en', 'sw', ...)",
                line=line,
                field="prompt",
            )
        for lang in langs:
            if lang in texts:
                out[lang].append({"id": rid, "prompt": texts[lang]})
    return {lang: rows[:limit] if limit else rows for lang, rows in out.items()}


def _is_lang(key: str) -> bool:
    if key in ("id", "category", "lang", "prompt"):
        return False
    try:
        get_language(key)
        return True
    except ValueError:
        return False


def model_fingerprint(model: str, gguf_file: str | None) -> str:
    """Path plus (name, size, mtime) of local weight files: cheap, and changes when weights do."""
    p = Path(model)
    if model.lower() in ("smollm2", "embedded", "default") or not p.exists():
        return stable_hash(model, gguf_file)
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
    stats = [
        (str(q.relative_to(p) if p.is_dir() else q.name), q.stat().st_size, q.stat().st_mtime_ns)
        for q in files
    ]
    return stable_hash(str(p.resolve()), gguf_file, stats)


def _complete(path: Path, prompts: list[dict]) -> list[dict] | None:
    """The saved responses for exactly these prompts, or None if any is missing or differs."""
    if not path.exists():
        return None
    saved = {row.get("id"): row for _, row in iter_jsonl(path, skip_torn_tail=True)}
    rows = [saved.get(p["id"]) for p in prompts]
    if any(r is None or r.get("prompt") != p["prompt"] for r, p in zip(rows, prompts, strict=True)):
        return None
    return rows


# ------------------------------------------------------------------------------------------ runner


class _Model:
    """Loads on first use, once."""

    def __init__(self, cfg: EvalConfig):
        self.cfg, self.pair = cfg, None

    def get(self):
        if self.pair is None:
            from langshift.models import load

            self.pair = load(
                self.cfg.model,
                self.cfg.gguf_file,
                dtype=self.cfg.dtype,
                device=self.cfg.device,
                trust_remote_code=self.cfg.trust_remote_code,
            )
        return self.pair


def _task_key(cfg: EvalConfig, task: str, lang: str, fingerprint: str) -> str:
    settings = {
        "belebele": (cfg.belebele, cfg.limit),
        "mmmlu": (cfg.mmmlu, cfg.limit, cfg.mmmlu_sample, cfg.seed, cfg.mmmlu_max_new_tokens, cfg.mmmlu_retries),
    }[task]
    return stable_hash(task, lang, fingerprint, settings)


# Tasks rerun on the model are reused when their key matches; fidelity (cheap) and alpaca (its judgments
# are cached in SQLite) are always recomputed from the responses on disk, which may have been edited.
REUSABLE = ("belebele", "mmmlu")


def evaluate(cfg: EvalConfig | dict) -> dict:
    """Run the configured tasks; write results.json, report.md, results.png and per-item files to cfg.out."""
    cfg = cfg if isinstance(cfg, EvalConfig) else EvalConfig.from_dict(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = model_fingerprint(cfg.model, cfg.gguf_file)
    previous = _previous_results(out, fingerprint)
    meta = {
        "model": cfg.model,
        "gguf_file": cfg.gguf_file,
        "model_name": cfg.model_name or Path(cfg.model).name,
        "model_fingerprint": fingerprint,
        "lang": cfg.lang,
        "langs": cfg.langs,
        "tasks": list(cfg.tasks),
        "config": json.loads(json.dumps(dataclasses.asdict(cfg))),  # as it reads back from results.json
        "seconds": {},
    }
    meta["keys"] = {}  # (task, lang) -> inputs hash, to reuse model results on a rerun
    state = {"model": cfg.model, "meta": meta, **{t: {} for t in cfg.tasks}, "skipped": {}}
    model = _Model(cfg)

    responses: dict[str, list[dict]] = {}
    use_alpaca = "alpaca" in cfg.tasks and cfg.judge is not None and cfg.baseline_responses is not None
    if "alpaca" in cfg.tasks and not use_alpaca:
        state["skipped"]["alpaca"] = "needs both a judge and baseline_responses"
    if "fidelity" in cfg.tasks or use_alpaca:
        prompts = load_prompts(cfg.prompts, cfg.langs, cfg.lang, cfg.limit)
        for lang in cfg.langs:
            if prompts[lang]:
                responses[lang] = _responses(cfg, model, out, lang, prompts[lang], meta)
            elif lang == cfg.lang:
                raise InputError(cfg.prompts or demo_prompts_path(), f"no prompts in {lang!r}")

    for task in cfg.tasks:
        for lang in cfg.langs:
            if task == "alpaca" and not use_alpaca:
                break
            if task in ("fidelity", "alpaca") and lang not in responses:
                state["skipped"][f"{task}.{lang}"] = f"no prompts in {lang!r}"
                continue
            key = _task_key(cfg, task, lang, fingerprint) if task in REUSABLE else None
            old = previous.get(task, {}).get(lang)
            if (
                key
                and old is not None
                and previous.get("meta", {}).get("keys", {}).get(f"{task}.{lang}") == key
            ):
                state[task][lang] = old  # same model and inputs as last time
            else:
                t0 = time.time()
                state[task][lang] = _run_task(cfg, task, lang, model, out, responses)
                meta["seconds"][f"{task}.{lang}"] = round(time.time() - t0, 2)
            if key:
                meta["keys"][f"{task}.{lang}"] = key
            write_json(out / "results.json", state)  # after each piece: a crash keeps what is done

    write_json(out / "results.json", state)
    (out / "report.md").write_text(render_report(state), encoding="utf-8")
    plot(state, out / "results.png")
    return state


def _previous_results(out: Path, fingerprint: str) -> dict:
    path = out / "results.json"
    if not path.exists():
        return {}
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}
    old = previous.get("meta", {}).get("model_fingerprint")
    if old and old != fingerprint:
        raise ValueError(
            f"{out} holds results of a different model ({previous['meta'].get('model')}); "
            "use a new output directory"
        )
    return previous


def _responses(
    cfg: EvalConfig, model: _Model, out: Path, lang: str, prompts: list[dict], meta: dict
) -> list[dict]:
    path = out / f"responses.{lang}.jsonl"
    system = get_language(lang).same_language_instruction if cfg.same_language_system else None
    # Responses sampled with other settings must not be mixed in: the settings live next to the file.
    settings = {
        "max_new_tokens": cfg.max_new_tokens,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "seed": cfg.seed,
        "system": system,
    }
    sidecar = out / f"responses.{lang}.settings.json"
    if path.exists() and sidecar.exists():
        before = json.loads(sidecar.read_text(encoding="utf-8"))
        if before != settings:
            changed = ", ".join(
                f"{k}: {before.get(k)!r} -> {v!r}" for k, v in settings.items() if before.get(k) != v
            )
            raise ValueError(
                f"{path} was generated with other settings ({changed}); use a new output directory"
            )
    write_json(sidecar, settings)
    rows = _complete(path, prompts)
    if rows is None:
        from langshift.eval.generate import generate_responses

        t0 = time.time()
        mdl, tok = model.get()
        rows = generate_responses(
            mdl,
            tok,
            prompts,
            path,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=cfg.seed,
            batch_size=cfg.batch_size,
            system=system,
            backend=cfg.generation_backend,
        )
        meta["seconds"][f"generate.{lang}"] = round(time.time() - t0, 2)
    return rows


def _run_task(cfg: EvalConfig, task: str, lang: str, model: _Model, out: Path, responses: dict) -> dict:
    if task == "fidelity":
        scored = fidelity.score_fidelity(responses[lang], lang)
        write_jsonl(out / f"fidelity.{lang}.jsonl", scored.pop("items"))
        return scored
    if task == "belebele":
        from langshift.eval.belebele import evaluate_belebele, load_belebele

        items = load_belebele(cfg.belebele, lang, limit=cfg.limit)
        mdl, tok = model.get()
        return evaluate_belebele(mdl, tok, items, lang, out_dir=out, batch_size=cfg.batch_size)
    if task == "mmmlu":
        from langshift.eval.mmmlu import evaluate_mmmlu, load_mmmlu

        items = load_mmmlu(cfg.mmmlu, lang, limit=cfg.limit, sample=cfg.mmmlu_sample, seed=cfg.seed)
        mdl, tok = model.get()
        kw = {"max_new_tokens": cfg.mmmlu_max_new_tokens} if cfg.mmmlu_max_new_tokens else {}
        return evaluate_mmmlu(
            mdl,
            tok,
            items,
            lang,
            out_dir=out,
            seed=cfg.seed,
            batch_size=cfg.batch_size,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            retries=cfg.mmmlu_retries,
            **kw,
        )
    if task == "alpaca":
        from langshift.llm_client import ChatClient

        judge = cfg.judge
        baseline = alpaca.load_outputs(Path(cfg.baseline_responses) / f"responses.{lang}.jsonl")
        client = ChatClient(
            base_url=judge.base_url,
            model=judge.model,
            api_key_env=judge.api_key_env or "",
            concurrency=judge.concurrency,
        )
        got = alpaca.judge_pairwise(
            [{"id": r["id"], "instruction": r["prompt"]} for r in responses[lang]],
            {r["id"]: r["response"] for r in responses[lang]},
            {k: v["response"] for k, v in baseline.items()},
            lang,
            client,
            cache_path=out / "judge_cache.sqlite",
            model_a=cfg.model_name or Path(cfg.model).name,
            model_b=cfg.baseline_name,
            judgments_path=out / f"alpaca.{lang}.jsonl",
            max_tokens=judge.max_tokens,
            structured=judge.structured,
        )
        got.pop("items")
        return got
    raise ValueError(task)


# ------------------------------------------------------------------------------------------ report


def _pct(value, stderr=None) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f} ± {100 * stderr:.2f}" if stderr is not None else f"{100 * value:.1f}"


def _row_name(lang: str, target: str) -> str:
    return f"{'English' if lang == 'en' and target != 'en' else 'Target'} ({lang})"


# (column title, value key, stderr key) per task; n is always shown.
COLUMNS = {
    "alpaca": [("Win rate (%)", "win_rate", "win_rate_stderr")],
    "belebele": [("Accuracy (%)", "accuracy", "stderr")],
    "mmmlu": [("Accuracy (%)", "accuracy", "stderr")],
    "fidelity": [
        ("Response pass (%)", "response_pass_rate", "response_pass_rate_stderr"),
        ("Line pass, LPR (%)", "line_pass_rate", "line_pass_rate_stderr"),
        ("Line accuracy (%)", "line_accuracy", "line_accuracy_stderr"),
    ],
}


def _extra(task: str, r: dict) -> list[str]:
    if task == "mmmlu":
        return [_pct(r.get("extraction_failure_rate"))]
    if task == "alpaca":
        return [f"{r['wins']} / {r['ties']} / {r['losses']}", str(r["invalid"])]
    if task == "fidelity":
        return [str(r["line_excluded"]), ", ".join(f"{k}: {v}" for k, v in r["detected_as"].items())]
    return []


EXTRA_HEADERS = {
    "alpaca": ["W / T / L", "invalid"],
    "mmmlu": ["no answer extracted (%)"],
    "fidelity": ["no counted line", "detected as"],
}


def _category_table(by_lang: dict, target: str) -> list[str]:
    """MMMLU accuracy per MMLU category (App. H), one column per eval language."""
    cats = sorted({c for r in by_lang.values() for c in r.get("per_category", {})})
    if not cats:
        return []
    langs = list(by_lang)
    lines = [
        "MMMLU accuracy (%) per MMLU category:",
        "",
        "| Category | " + " | ".join(_row_name(lang, target) for lang in langs) + " |",
        "|" + "---|" * (len(langs) + 1),
    ]
    for cat in cats:
        cells = []
        for lang in langs:
            c = by_lang[lang].get("per_category", {}).get(cat)
            cells.append(f"{_pct(c['accuracy'], c['stderr'])} (n={c['n']})" if c else "–")
        lines.append(f"| {cat} | " + " | ".join(cells) + " |")
    return lines + [""]


def render_report(state: dict) -> str:
    meta, results = state["meta"], {t: state[t] for t in TASKS if t in state}
    lines = [f"# Evaluation: {meta['model_name']} — target language {meta['lang']}", ""]
    lines += [
        f"Model: `{meta['model']}`" + (f" (`{meta['gguf_file']}`)" if meta.get("gguf_file") else ""),
        "",
    ]
    for task in TASKS:
        if task not in results:
            continue
        title = TASK_TITLES[task]
        if task == "alpaca" and results[task]:
            any_r = next(iter(results[task].values()))
            title += f": {any_r['model_a']} vs {any_r['model_b']} (judge {any_r['judge_model']})"
        lines += [f"## {title}", ""]
        if not results[task]:
            lines += [f"_skipped: {state['skipped'].get(task, 'no result')}_", ""]
            continue
        headers = ["Eval Lang", *(c[0] for c in COLUMNS[task]), "n", *EXTRA_HEADERS.get(task, [])]
        lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        for lang, r in results[task].items():
            cells = [
                _row_name(lang, meta["lang"]),
                *(_pct(r.get(v), r.get(s)) for _, v, s in COLUMNS[task]),
                str(r.get("n")),
                *_extra(task, r),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if task == "mmmlu":
            lines += _category_table(results[task], meta["lang"])
    skipped = {k: v for k, v in state.get("skipped", {}).items() if "." in k}
    if skipped:
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()), ""]
    lines += ["Values are mean ± standard error over items, in percent.", ""]
    return "\n".join(lines)


def plot(state: dict, path: str | os.PathLike) -> Path | None:
    """Grouped bars: one group per metric, one bar per eval language, stderr as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, results = state["meta"], {t: state[t] for t in TASKS if t in state}
    groups = [
        (f"{TASK_TITLES[t]}\n{c[0].replace(' (%)', '')}", t, c[1], c[2])
        for t in TASKS
        if results.get(t)
        for c in COLUMNS[t][:2]
    ]
    if not groups:
        return None
    langs = meta["langs"]
    width = 0.8 / len(langs)
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(groups)), 3.6))
    for j, lang in enumerate(langs):
        # a missing number (task not run in this language, no counted line) is no bar, not a zero bar
        vals = [results[t].get(lang, {}).get(v) for _, t, v, _ in groups]
        errs = [results[t].get(lang, {}).get(s) for _, t, _, s in groups]
        heights = [100 * x if x is not None else float("nan") for x in vals]
        xs = [i + (j - (len(langs) - 1) / 2) * width for i in range(len(groups))]
        bars = ax.bar(
            xs,
            heights,
            width,
            yerr=[100 * (e or 0) for e in errs],
            capsize=3,
            label=_row_name(lang, meta["lang"]),
        )
        ax.bar_label(
            bars,
            labels=[f"{h:.1f}" if x is not None else "n/a" for h, x in zip(heights, vals, strict=True)],
            fontsize=7,
            padding=2,
        )
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 125)
    ax.set_title(f"{meta['model_name']} — {meta['lang']}", fontsize=10)
    ax.legend(fontsize=8, ncol=len(langs), loc="upper center", frameon=False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def read_results(out_dir: str | os.PathLike) -> dict:
    """The results.json of a finished run (for `langshift report` and the runner)."""
    return json.loads((Path(out_dir) / "results.json").read_text(encoding="utf-8"))
