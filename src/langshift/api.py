"""Evaluation and comparison from Python: the code paths `langshift eval run` and `langshift compare` use.

    results = evaluate("runs/clo-sw", lang="sw", tasks=["fidelity", "langpref"], limit=20)
    for c in compare("runs/eval/clo-sw", "runs/eval/sft-sw"):
        print(c["verdict"])
"""

from __future__ import annotations

import os
from pathlib import Path

from langshift.files import InputError
from langshift.report.compare import RESAMPLES


def evaluate(model: str | os.PathLike, lang: str, tasks: list[str] | str | None = None, *,
             out: str | os.PathLike | None = None, **settings) -> dict:
    """Evaluate `model` (a training output, hub id, .gguf or "smollm2") in `lang` (and English) on `tasks`
    (default: every task that needs no judge); `settings` are `EvalConfig` fields (limit, samples,
    max_new_tokens, temperature, prompts, ...), checked as `langshift eval run` checks its flags. Writes
    results.json, the per-item files, report.md and results.png to `out` (default: MODEL/eval-<lang> for a
    local model directory, else runs/eval/<name>-<lang>) and returns what results.json holds."""
    from langshift.eval.config import EvalConfig
    from langshift.eval.suite import evaluate as run_suite
    from langshift.eval.tasks import TASKS

    if tasks is None:
        tasks = [name for name, task in TASKS.items() if not task.needs_judge]
    langs = lang.replace(",", "+")
    local = Path(str(model)).expanduser()
    out = out or (local / f"eval-{langs}" if local.is_dir() else Path("runs") / "eval" / f"{local.name}-{langs}")
    cfg = EvalConfig.parse({"model": str(model), "lang": lang, "tasks": tasks, "out": str(out), **settings},
                           source="evaluate()")
    return run_suite(cfg)


def _eval_dirs(side, what: str) -> list[Path]:
    """One side of a comparison as evaluation directories: a directory, a results dict (from `evaluate`),
    or a list of either (one per training seed)."""
    items = side if isinstance(side, (list, tuple)) else [side]
    dirs = []
    for item in items:
        if isinstance(item, dict):
            out = item.get("meta", {}).get("config", {}).get("out")
            if not out:
                raise InputError(what, "a results dict without meta.config.out: pass the evaluation directory")
            dirs.append(Path(out))
        else:
            dirs.append(Path(item))
    for d in dirs:
        if not (d / "results.json").is_file():
            raise InputError(d, "not an evaluation directory (no results.json)", field=what)
    return dirs


def compare(a, b, *, resamples: int = RESAMPLES, seed: int = 0, name_a: str = "A", name_b: str = "B") -> list[dict]:
    """A − B for every task, metric and language both evaluations scored item by item: the paired
    difference (`diff`), its 95% CI (`ci_low`, `ci_high`), sign-flip `p_value`, `detectable` difference
    and a `verdict` sentence, as the report prints them. `a`, `b`: an evaluation directory, a results dict
    from `evaluate`, or a list of either per side (replicate seeds: resampled hierarchically)."""
    from langshift.eval.tasks import TASKS
    from langshift.report.compare import compare_evals, verdict

    rows = compare_evals(sorted(_eval_dirs(a, "a")), sorted(_eval_dirs(b, "b")), resamples=resamples, seed=seed)
    for c in rows:
        task = TASKS[c["task"]]
        c["verdict"] = verdict(c, name_a, name_b, f"{task.metric(c['metric']).label.lower()} ({c['item_lang']})")
    return rows
