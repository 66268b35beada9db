"""The evaluation suite: one model, its target language(s) (and English), the configured tasks.

    evaluate(cfg) loads the model once (only when a task needs it), generates the open-prompt
    responses once per eval language when a task reads them (out/responses.<L>.jsonl, resumable),
    then runs each task of `eval.tasks.TASKS` in each eval language and writes
      out/results.json   {"model", "meta", <task>: {<lang>: <the task result shape of eval/tasks.py>},
                          "skipped": {...}}
      out/<task>.<L>.jsonl  per-item rows
    and, through `langshift.report`, out/report.md and out/results.png.

Resuming: responses are reused from disk; a finished (task, language) result is reused when the task
declares the settings that make it reusable and they, and the model's weight files, are unchanged. A
different model in the same output directory is refused rather than mixed in.
"""

from __future__ import annotations

import json
import os
import time
from importlib import resources
from pathlib import Path

from langshift.eval.config import EvalConfig
from langshift.eval.tasks import TASKS, TaskContext
from langshift.files import InputError, iter_jsonl, stable_hash, write_json
from langshift.fingerprints import weight_files_fingerprint
from langshift.languages import get_language

# ------------------------------------------------------------------------------------------ inputs


# Open-prompt sets that ship with langshift, by name (`eval.prompts`): the demo's 50, written with its
# training data, and 150 written apart from it (data/demo/README.md) to check that a claim carries over.
PACKAGED_PROMPTS = {"demo": "prompts.jsonl", "demo-v2": "prompts_v2.jsonl"}


def demo_prompts_path(name: str = "demo") -> Path:
    return Path(str(resources.files("langshift.data") / "demo" / PACKAGED_PROMPTS[name]))


def load_prompts(
    source: str | os.PathLike | None, langs: list[str], default_lang: str, limit: int | None = None
) -> dict[str, list[dict]]:
    """{lang: [{"id","prompt"}]} from a JSONL of multilingual rows ({"id","en","sw",...}, the demo shape;
    Indonesian as "ind", since "id" is the row id) or of single prompts ({"id","prompt"}, with "lang" or
    else taken to be `default_lang`). An id may appear once per language: its responses are stored and
    compared by id."""
    path = demo_prompts_path(str(source or "demo")) if str(source or "demo") in PACKAGED_PROMPTS else Path(source)
    out: dict[str, list[dict]] = {lang: [] for lang in langs}
    seen: dict[tuple[str, str], int] = {}

    def add(lang: str, rid: str, text: str, line: int) -> None:
        if (lang, rid) in seen:
            raise InputError(path, f"duplicate id {rid!r} in {lang!r} (first at line {seen[lang, rid]})", line=line,
                             field="id")
        seen[lang, rid] = line
        if lang in out:
            out[lang].append({"id": rid, "prompt": text})

    for line, row in iter_jsonl(path):
        rid = str(row.get("id", f"line-{line}"))
        if "prompt" in row:
            if not isinstance(row["prompt"], str):
                raise InputError(path, "must be a string", line=line, field="prompt")
            try:
                lang = get_language(row.get("lang") or default_lang).code
            except ValueError as e:
                raise InputError(path, str(e), line=line, field="lang") from None
            add(lang, rid, row["prompt"], line)
            continue
        texts = {get_language(k).code: v for k, v in row.items() if _is_lang(k) and isinstance(v, str)}
        if not texts:
            raise InputError(path, "needs 'prompt' or one text per language code ('en', 'sw', ...)", line=line,
                             field="prompt")
        for lang, text in texts.items():
            add(lang, rid, text, line)
    return {lang: rows[:limit] if limit else rows for lang, rows in out.items()}


def _is_lang(key: str) -> bool:
    if key in ("id", "category", "lang", "prompt"):
        return False
    try:
        get_language(key)
        return True
    except ValueError:
        return False


def _complete(path: Path, prompts: list[dict], samples: int, key: str) -> list[dict] | None:
    """The saved responses for exactly these prompts (each `samples` times, generated with the settings
    `key` names), or None if any is missing, answers another prompt or was made with other settings."""
    if not path.exists():
        return None
    saved = {(row.get("id"), row.get("sample", 0)): row for _, row in iter_jsonl(path, skip_torn_tail=True)}
    rows = [saved.get((p["id"], s)) for p in prompts for s in range(samples)]
    asked = [p["prompt"] for p in prompts for _ in range(samples)]
    if any(r is None or r.get("prompt") != prompt or r.get("settings") != key
           for r, prompt in zip(rows, asked, strict=True)):
        return None
    return rows


# ------------------------------------------------------------------------------------------ runner


class LazyModel:
    """(model, tokenizer), loaded on first use and once."""

    def __init__(self, cfg: EvalConfig):
        self.cfg, self.pair = cfg, None

    def get(self):
        if self.pair is None:
            from langshift.models import load

            self.pair = load(self.cfg.model, self.cfg.gguf_file, dtype=self.cfg.dtype, device=self.cfg.device,
                             trust_remote_code=self.cfg.trust_remote_code)
        return self.pair


def evaluate(cfg: EvalConfig | dict) -> dict:
    """Run the configured tasks; write results.json, per-item files, report.md and results.png to cfg.out."""
    cfg = cfg if isinstance(cfg, EvalConfig) else EvalConfig.from_dict(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = weight_files_fingerprint(cfg.model, cfg.gguf_file)
    previous = _previous_results(out, fingerprint)
    meta = {
        "model": cfg.model,
        "gguf_file": cfg.gguf_file,
        "model_name": cfg.model_name or Path(cfg.model).name,
        "model_fingerprint": fingerprint,
        "lang": cfg.lang,
        "langs": cfg.langs,
        "tasks": list(cfg.tasks),
        "config": cfg.model_dump(mode="json"),
        "seconds": {},
        "keys": {},  # "task.lang" -> inputs hash, to reuse a task's result on a rerun
        "versions": {t: TASKS[t].version for t in cfg.tasks},  # scoring procedures (see `rescore`)
    }
    state = {"model": cfg.model, "meta": meta, **{t: {} for t in cfg.tasks}, "skipped": {}}
    tasks = [TASKS[name] for name in cfg.tasks]
    for task in tasks:
        if task.needs_judge and (cfg.judge is None or cfg.baseline_responses is None):
            state["skipped"][task.name] = "needs both a judge and baseline_responses"
    tasks = [t for t in tasks if t.name not in state["skipped"]]
    ctx = TaskContext(cfg=cfg, out=out, model=LazyModel(cfg))
    if any(t.needs_responses for t in tasks):
        prompts = load_prompts(cfg.prompts, cfg.langs, cfg.targets[0], cfg.prompts_limit or cfg.limit)
        for lang in cfg.langs:
            if prompts[lang]:
                ctx.responses[lang] = _responses(ctx, lang, prompts[lang], meta)
            elif lang in cfg.targets:
                raise InputError(cfg.prompts or demo_prompts_path(), f"no prompts in {lang!r}")

    for task in tasks:
        for lang in cfg.langs:
            if task.needs_responses and lang not in ctx.responses:
                state["skipped"][f"{task.name}.{lang}"] = f"no prompts in {lang!r}"
                continue
            where = f"{task.name}.{lang}"
            key = stable_hash(task.name, lang, fingerprint, task.reuse_settings(cfg)) if task.reuse_settings else None
            old = previous.get(task.name, {}).get(lang)
            if key and old is not None and previous.get("meta", {}).get("keys", {}).get(where) == key:
                state[task.name][lang] = old  # same model and inputs as last time
            else:
                t0 = time.time()
                state[task.name][lang] = task.run(ctx, lang)
                meta["seconds"][where] = round(time.time() - t0, 2)
            if key:
                meta["keys"][where] = key
            write_json(out / "results.json", state)  # after each piece: a crash keeps what is done

    write_json(out / "results.json", state)
    from langshift.report.single import write_eval_report

    write_eval_report(state, out)
    return state


def rescore(out: str | os.PathLike, task_names: list[str]) -> list[str]:
    """Bring a finished evaluation's response-scored tasks up to date from its stored responses: each of
    `task_names` that only scores responses (`Task.scores_responses`) and is missing from results.json, or
    was scored by another version of its procedure, is scored again in every language whose responses are
    stored. No model is loaded. Returns the "task.lang" pieces rescored (results.json rewritten if any)."""
    out = Path(out)
    state = json.loads((out / "results.json").read_text(encoding="utf-8"))
    meta = state.setdefault("meta", {})
    versions = meta.setdefault("versions", {})
    stale = [TASKS[t] for t in task_names if TASKS[t].scores_responses
             and (t not in state or versions.get(t, "1") != TASKS[t].version)]
    done = []
    if not stale:
        return done
    responses = {lang: [row for _, row in iter_jsonl(out / f"responses.{lang}.jsonl")]
                 for lang in meta.get("langs", []) if (out / f"responses.{lang}.jsonl").is_file()}
    ctx = TaskContext(cfg=None, out=out, model=None, responses=responses)  # response scorers read no config
    for task in stale:
        state[task.name] = {lang: task.run(ctx, lang) for lang in responses}
        versions[task.name] = task.version
        meta["tasks"] = list(dict.fromkeys([*meta.get("tasks", []), task.name]))
        done += [f"{task.name}.{lang}" for lang in responses]
    write_json(out / "results.json", state)
    return done


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
        raise ValueError(f"{out} holds results of a different model ({previous['meta'].get('model')}); "
                         "use a new output directory")
    return previous


def _responses(ctx: TaskContext, lang: str, prompts: list[dict], meta: dict) -> list[dict]:
    cfg, out = ctx.cfg, ctx.out
    path = out / f"responses.{lang}.jsonl"
    system = get_language(lang).same_language_instruction if cfg.same_language_system else None
    # Responses sampled with other settings must not be mixed in: the settings live next to the file.
    settings = {"max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature, "top_p": cfg.top_p,
                "seed": cfg.seed, "system": system, **({"samples": cfg.samples} if cfg.samples > 1 else {})}
    sidecar = out / f"responses.{lang}.settings.json"
    if path.exists() and sidecar.exists():
        before = json.loads(sidecar.read_text(encoding="utf-8"))
        if before != settings:
            changed = ", ".join(f"{k}: {before.get(k)!r} -> {v!r}" for k, v in settings.items() if before.get(k) != v)
            raise ValueError(f"{path} was generated with other settings ({changed}); use a new output directory")
    write_json(sidecar, settings)
    from langshift.eval.backend_pick import resolve_backend
    from langshift.eval.generate import generate_responses, generation_key

    def key(backend: str) -> str:
        return generation_key(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                              seed=cfg.seed, system=system, backend=backend, samples=cfg.samples)

    # `auto` may have picked either backend when these responses were made: either one's complete set is kept.
    for backend in ("hf", "llamacpp") if cfg.generation_backend == "auto" else (cfg.generation_backend,):
        rows = _complete(path, prompts, cfg.samples, key(backend))
        if rows is not None:
            meta.setdefault("generation_backend", {})[lang] = {"backend": backend, "reason": f"read from {path.name}"}
            return rows
    t0 = time.time()
    model, tokenizer = ctx.model.get()
    chosen = resolve_backend(cfg.generation_backend, model, tokenizer, prompts, samples=cfg.samples,
                             max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                             temperature=cfg.temperature, top_p=cfg.top_p, system=system)
    rows = generate_responses(model, tokenizer, prompts, path, max_new_tokens=cfg.max_new_tokens,
                              temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed,
                              batch_size=cfg.batch_size, system=system, backend=chosen.backend,
                              samples=cfg.samples, torch_if_crash=cfg.generation_backend == "auto")
    made = chosen._asdict()
    if rows and rows[0]["settings"] != key(chosen.backend):  # auto's llama.cpp crashed, and torch generated
        made = {"backend": "hf", "reason": f"{chosen.backend} crashed (see the log), torch generated"}
    meta.setdefault("generation_backend", {})[lang] = made
    meta["seconds"][f"generate.{lang}"] = round(time.time() - t0, 2)
    return rows
