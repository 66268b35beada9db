"""Markdown tables and sentences of paired differences (`report/compare.py`): A − B per contrast, and the
interactions (A − B at one setting) − (A − B at another), each `diff [95% CI] p`, points for rates."""

from __future__ import annotations

from langshift.eval.tasks import TASKS
from langshift.report.rows import EVAL_LANGS, METHOD_LABEL, lang_name, lang_order, size_order
from langshift.report.tables import EVAL_LABEL, md_table, name_once, size_label

__all__ = ["comparison_table", "comparison_words", "interaction_table", "interaction_words"]


def _contrast_label(c: dict) -> str:
    """'CLO − SFT' for methods; an ablation names its method: 'SFT: attention − full'."""
    label = {**METHOD_LABEL, "attention": "attention", "full": "full", "target": "NLL target", "both": "NLL both",
             "token": "NLL per token", "sequence": "NLL per sequence"}
    method = f"{METHOD_LABEL.get(c['method'], c['method'])}: " if c["axis"] != "method" and c.get("method") else ""
    return f"{method}{label.get(c['a'], c['a'])} − {label.get(c['b'], c['b'])}"


def _setting(c: dict) -> str:
    parts = [] if c["axis"] == "trainable" else [c["trainable"]]
    if c["axis"] != "nll" and c.get("nll") and c.get("method") == "clo":
        parts.append(f"NLL {c['nll']}")
    if c["axis"] != "nll_reduction" and c.get("nll_reduction") not in (None, "token"):
        parts.append(f"NLL per {c['nll_reduction']}")
    return ", ".join(p for p in parts if p)


def comparison_table(comparisons: list[dict], headline_only: bool = True) -> str | None:
    """A − B, one line per (model, language, contrast, size, setting), a column per task metric and eval
    language: `diff [95% CI] p` (points for rates)."""
    from langshift.report.compare import cell

    comps = [c for c in comparisons if not headline_only or c["metric"] == TASKS[c["task"]].headline.name]
    if not comps:
        return None
    columns = sorted({(c["task"], c["metric"], c["eval_lang"]) for c in comps},
                     key=lambda k: (list(TASKS).index(k[0]), [m.name for m in TASKS[k[0]].metrics].index(k[1]),
                                    EVAL_LANGS.index(k[2])))
    lines = sorted({(c["model"], c["lang"], c["axis"], _contrast_label(c), c["size"], _setting(c)) for c in comps},
                   key=lambda x: (x[0], lang_order(x[1]), x[2], x[3], size_order(x[4]), x[5]))
    by = {(c["model"], c["lang"], c["axis"], _contrast_label(c), c["size"], _setting(c), c["task"], c["metric"],
           c["eval_lang"]): c for c in comps}
    header = ["Model", "Language", "Contrast", "Data size", "Setting"] + [
        f"{TASKS[t].short}{'' if headline_only else ' ' + TASKS[t].metric(m).label} "
        f"{EVAL_LABEL[ev]}" for t, m, ev in columns]
    body = [[model, lang_name(lang), contrast, size_label(size), setting or "–"]
            + [cell(by[(model, lang, axis, contrast, size, setting, t, m, ev)])
               if (model, lang, axis, contrast, size, setting, t, m, ev) in by else "–" for t, m, ev in columns]
            for model, lang, axis, contrast, size, setting in lines]
    return md_table(header, name_once(body))


def _axis_value(axis: str, value: str) -> str:
    return lang_name(value) if axis == "lang" else value


def interaction_table(interactions: list[dict]) -> str | None:
    """(A − B at one setting) − (A − B at another), one line per (setting pair, other facts), a column per
    task headline metric and eval language: `DiD [95% CI] p` (points for rates)."""
    from langshift.report.compare import cell

    rows = [c for c in interactions if c["metric"] == TASKS[c["task"]].headline.name]
    if not rows:
        return None
    columns = sorted({(c["task"], c["eval_lang"]) for c in rows},
                     key=lambda k: (list(TASKS).index(k[0]), EVAL_LANGS.index(k[1])))
    def line(c: dict) -> tuple:
        other = c.get("model") if c["axis"] == "lang" else lang_name(c["lang"])
        gain = f"{METHOD_LABEL.get(c['method'], c['method'])} − {METHOD_LABEL.get(c['method_b'], c['method_b'])}"
        return (gain, f"{_axis_value(c['axis'], c['a'])} vs {_axis_value(c['axis'], c['b'])}", other,
                size_label(c.get("size")), c.get("trainable") or "–")
    by = {(*line(c), c["task"], c["eval_lang"]): c for c in rows}
    header = ["Gain", "Where", "Held equal", "Data size", "Trainable"] + [
        f"{TASKS[t].short} {EVAL_LABEL[ev]}" for t, ev in columns]
    body = [[*key] + [cell(by[(*key, t, ev)]) if (*key, t, ev) in by else "–" for t, ev in columns]
            for key in sorted({line(c) for c in rows})]
    return md_table(header, name_once(body))


def interaction_words(interactions: list[dict]) -> list[str]:
    """The interactions on the first headline task's headline metric, in words."""
    from langshift.report.compare import verdict

    first = next((t for t in TASKS.values() if t.in_headline and not t.needs_judge), None)
    out = []
    for c in interactions:
        if first and c["task"] == first.name and c["metric"] == first.headline.name:
            gain = f"{METHOD_LABEL.get(c['method'], c['method'])} − {METHOD_LABEL.get(c['method_b'], c['method_b'])}"
            where = "English" if c["eval_lang"] == "en" else "the target language"
            held = c.get("model") if c["axis"] == "lang" else lang_name(c["lang"])
            out.append(f"- {held}: " + verdict(c, f"({gain} in {_axis_value(c['axis'], c['a'])})",
                                               f"({gain} in {_axis_value(c['axis'], c['b'])})",
                                               f"{first.label.lower()} in {where}"))
    return out


def comparison_words(comparisons: list[dict]) -> list[str]:
    """The method contrasts on the first headline task's headline metric, in words."""
    from langshift.report.compare import verdict

    first = next((t for t in TASKS.values() if t.in_headline and not t.needs_judge), None)
    out = []
    for c in comparisons:
        if c["axis"] == "method" and first and c["task"] == first.name and c["metric"] == first.headline.name:
            lang = "English" if c["eval_lang"] == "en" else lang_name(c["lang"])
            size = f"at {c['size']} records" if c["size"] else "on all records"
            setting = f" ({_setting(c)})" if _setting(c) else ""
            out.append(f"- {c['model']}, {size}{setting}: " + verdict(c, METHOD_LABEL.get(c["a"], c["a"]),
                                                          METHOD_LABEL.get(c["b"], c["b"]),
                                                          f"{first.label.lower()} in {lang}"))
    return out
