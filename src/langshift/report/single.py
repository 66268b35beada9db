"""The report of one evaluation (one model, one target language): report.md and results.png.

Tables follow the paper's "Target" / "English" rows; each task's columns are its declared metrics
(eval/tasks.py), `n`, and the task's extra details.
"""

from __future__ import annotations

import os
from pathlib import Path

from langshift.eval.tasks import TASKS
from langshift.files import atomic_write_text
from langshift.report.rows import pct
from langshift.report.tables import md_table

BACKEND_NAMES = {"hf": "torch", "llamacpp": "llama.cpp", "vllm": "vLLM"}


def eval_lang_label(lang: str, target: str) -> str:
    return f"{'English' if lang == 'en' and target != 'en' else 'Target'} ({lang})"


def _cell(metric_result: dict | None, unit: str) -> str:
    if not metric_result or metric_result.get("value") is None:
        return "–"
    if unit == "fraction":
        return pct(metric_result["value"], metric_result.get("stderr"))
    se = metric_result.get("stderr")
    return f"{metric_result['value']:.3f}" + (f" ± {se:.3f}" if se is not None else "")


def _category_table(by_lang: dict, target: str) -> list[str]:
    """Accuracy per MMLU category (App. H), one column per eval language, when a task reports one."""
    cats = sorted({c for r in by_lang.values() for c in r.get("per_category", {})})
    if not cats:
        return []
    langs = list(by_lang)
    body = [[cat] + [f"{pct(c['value'], c['stderr'])} (n={c['n']})" if (c := by_lang[lang].get("per_category", {})
                                                                          .get(cat)) else "–" for lang in langs]
            for cat in cats]
    return ["Accuracy (%) per MMLU category:", "",
            md_table(["Category", *(eval_lang_label(lang, target) for lang in langs)], body), ""]


def render_eval_report(state: dict) -> str:
    """report.md of one evaluation's results.json `state`."""
    meta = state["meta"]
    lines = [f"# Evaluation: {meta['model_name']} — target language {meta['lang']}", "",
             f"Model: `{meta['model']}`" + (f" (`{meta['gguf_file']}`)" if meta.get("gguf_file") else ""), ""]
    for name, task in TASKS.items():
        if name not in state:
            continue
        by_lang = state[name]
        title = task.title
        if task.needs_judge and by_lang:
            any_r = next(iter(by_lang.values()))
            title += f": {any_r['model_a']} vs {any_r['model_b']} (judge {any_r['judge_model']})"
        lines += [f"## {title}", ""]
        if not by_lang:
            lines += [f"_skipped: {state.get('skipped', {}).get(name, 'no result')}_", ""]
            continue
        header = ["Eval Lang", *(m.label for m in task.metrics), "n", *(d.header for d in task.details)]
        body = []
        for lang, r in by_lang.items():
            got = r["metrics"]
            body.append([eval_lang_label(lang, meta["lang"]),
                         *(_cell(got.get(m.name), m.unit) for m in task.metrics),
                         str(got[task.headline.name]["n"]), *(d.cell(r) for d in task.details)])
        lines += [md_table(header, body), ""]
        lines += _category_table(by_lang, meta["lang"])
    skipped = {k: v for k, v in state.get("skipped", {}).items() if "." in k}
    if skipped:
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()), ""]
    lines += ["Values are mean ± standard error over items, in percent for rates.", ""]
    for lang, chosen in meta.get("generation_backend", {}).items():
        lines += [f"Open responses ({lang}) generated with {BACKEND_NAMES.get(chosen['backend'], chosen['backend'])}: "
                  f"{chosen['reason']}.", ""]
    return "\n".join(lines)


def write_eval_report(state: dict, out_dir: str | os.PathLike) -> Path:
    """out/report.md and out/results.png for one evaluation."""
    from langshift.report.plots import eval_bars

    out = Path(out_dir)
    eval_bars(state, out / "results.png")
    return atomic_write_text(out / "report.md", render_eval_report(state))
