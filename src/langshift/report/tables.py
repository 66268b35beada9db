"""Markdown tables in the shapes of the paper's Tables 1-5, plus our headline and fidelity tables.

Every cell is `value ± stderr` in percent (rows hold fractions); a number that was not measured is '–'.
Tables 1-3 compare one configuration per method (the paper's: attention-only, NLL on the target only,
at the largest data size; see `rows.main_rows`); Tables 4-5 are the ablations over those choices, and
the NLL-reduction table (per token vs the paper's Eq. 9 per-sequence sum) one beyond the paper.
Δ columns are differences in percentage points: Table 1 CLO − other method, Table 4 attention − full.
"""

from __future__ import annotations

from collections import defaultdict

from langshift.eval.tasks import TASKS
from langshift.report.rows import (
    EVAL_LANGS,
    METHOD_LABEL,
    collapse_seeds,
    delta,
    lang_name,
    lang_order,
    load_rows,
    main_rows,
    method_order,
    pct,
    size_order,
    variant,
    variant_label,
    variant_rank,
)

__all__ = ["load_rows", "headline_table", "paper_tables", "md_table"]
EVAL_LABEL = {"target": "Target", "en": "English"}


def md_table(header: list[str], body: list[list[str]]) -> str:
    """A GitHub markdown table, columns padded so it also reads as plain text in a terminal."""
    cells = [[str(c).replace("|", "\\|") for c in line] for line in [header, *body]]
    widths = [max(len(line[j]) for line in cells) for j in range(len(header))]

    def fmt(line):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"

    return "\n".join(
        [fmt(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, cells[1:])]
    )


def name_once(body: list[list[str]]) -> list[list[str]]:
    """Blank the first column where it repeats the line above, as the paper names each model once."""
    return [
        ([""] if i and line[0] == body[i - 1][0] else [line[0]]) + line[1:] for i, line in enumerate(body)
    ]


def _pick(rows: list[dict], **match) -> dict | None:
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def _cell(rows: list[dict], decimals: int = 1, **match) -> str:
    r = _pick(rows, **match)
    if not r:
        return "–"
    if TASKS[r["task"]].metric(r["metric"]).unit == "fraction":
        return pct(r["value"], r["stderr"], decimals)
    return f"{r['value']:.3f}" + (f" ± {r['stderr']:.3f}" if r["stderr"] is not None else "")


def _value(rows: list[dict], **match) -> float | None:
    r = _pick(rows, **match)
    return r["value"] if r else None


def _sorted_langs(rows: list[dict]) -> list[str]:
    return sorted({r["lang"] for r in rows}, key=lang_order)


def size_label(size: int | None) -> str:
    return "–" if size is None else str(size)


def _setting_note(rows: list[dict]) -> str:
    """Which data size and training variant the trained methods in a main-rows table use."""
    trained = [r for r in rows if r["method"] != "base"]
    sizes = sorted({r["size"] for r in trained if r["size"] is not None})
    notes = []
    if len(sizes) == 1:
        notes.append(f"data size {sizes[0]} records")
    elif sizes:
        notes.append(f"largest data size of each cell (sizes {', '.join(map(str, sizes))})")
    by_method = defaultdict(set)
    for r in trained:
        if variant_label(variant(r)):
            by_method[r["method"]].add(variant_label(variant(r)))
    for m in sorted(by_method, key=method_order):
        notes.append(f"{METHOD_LABEL[m]}: {' / '.join(sorted(by_method[m]))}")
    return "; ".join(notes)


# ---- headline ------------------------------------------------------------------------------------


def _line_label(method: str, v: tuple, variants: set[tuple]) -> str:
    """'CLO' for the method's preferred variant; 'CLO (full)', 'CLO (NLL both)' for the others."""
    best = min(variants, key=variant_rank)
    if v == best:
        return METHOD_LABEL[method]
    only_changes = tuple(part if part != b else None for part, b in zip(v, best, strict=True))
    return f"{METHOD_LABEL[method]} ({variant_label(only_changes) or 'default'})"


def _headline_one(rows: list[dict], lang: str) -> str:
    tl = lang_name(lang)
    evals = (("target", tl), ("en", "English"))
    judge_free = [t for t in TASKS.values() if t.in_headline and not t.needs_judge]
    columns = [(f"{t.short} {ev_label}", t.name, t.headline.name, ev, None) for t in judge_free for ev, ev_label in evals]
    for task in (t for t in TASKS.values() if t.needs_judge):
        for b in sorted({r["baseline"] for r in rows if r["task"] == task.name}):
            columns += [(f"{task.short} vs {METHOD_LABEL.get(b, b)} {ev_label}", task.name, task.headline.name, ev, b)
                        for ev, ev_label in evals]
    lines = sorted(
        {(r["method"], r["size"], variant(r)) for r in rows},
        key=lambda x: (method_order(x[0]), size_order(x[1]), variant_rank(x[2])),
    )
    variants = defaultdict(set)
    for m, _, v in lines:
        variants[m].add(v)
    body = []
    for method, size, v in lines:
        sel = [r for r in rows if r["method"] == method and r["size"] == size and variant(r) == v]
        cells = []
        for _, task, metric, ev, b in columns:
            match = dict(task=task, metric=metric, eval_lang=ev) | ({"baseline": b} if b else {})
            cells.append(_cell(sel, **match))
        body.append([_line_label(method, v, variants[method]), size_label(size), *cells])
    return md_table(["Method", "Data size", *(c[0] for c in columns)], body)


def headline_table(rows: list[dict]) -> str:
    """The demo's headline: one line per (method, data size), base included; one table per (model, lang).

    Fidelity = response pass rate; Reading = BELEBELE accuracy; Knowledge = MMMLU accuracy; each in the
    target language and in English, `% ± standard error`."""
    rows = collapse_seeds(rows)
    groups = sorted({(r["model"], r["lang"]) for r in rows}, key=lambda g: (g[0], lang_order(g[1])))
    parts = []
    for model, lang in groups:
        table = _headline_one([r for r in rows if (r["model"], r["lang"]) == (model, lang)], lang)
        parts.append(table if len(groups) == 1 else f"**{model} · {lang_name(lang)}**\n\n{table}")
    return "\n\n".join(parts) if parts else "_No result rows yet._"


# ---- the paper's tables --------------------------------------------------------------------------


def _delta(comparisons, value_a: float | None, value_b: float | None, /, **match) -> str:
    """Δ = a − b: the paired difference with its CI and p-value when the run compared the two item by
    item (`report.compare`), else the plain difference of the two numbers (rows merged from older runs)."""
    from langshift.report.compare import cell

    for c in comparisons:
        if all(c.get(k) == v for k, v in match.items()):
            return cell(c)
    return delta(value_a, value_b, unit=TASKS[match["task"]].metric(match["metric"]).unit)


def table1_alpaca(rows: list[dict], comparisons: list[dict] = ()) -> str | None:
    """Table 1: win rate vs the baseline; model × {Target, English} lines, per language the other
    method(s), CLO and Δ = CLO − other."""
    rows = [r for r in main_rows(rows) if r["task"] == "alpaca"]
    parts = []
    for baseline in sorted({r["baseline"] for r in rows}):
        sel = [r for r in rows if r["baseline"] == baseline]
        langs = _sorted_langs(sel)
        methods = sorted({r["method"] for r in sel}, key=method_order)
        others = [m for m in methods if m != "clo"]
        has_clo = "clo" in methods
        header = ["Model", "Eval"]
        for lang in langs:
            header += [f"{lang_name(lang)} {METHOD_LABEL[m]}" for m in others + (["clo"] if has_clo else [])]
            if has_clo:
                header += [
                    f"{lang_name(lang)} Δ" + (f" vs {METHOD_LABEL[m]}" if len(others) > 1 else "")
                    for m in others
                ]
        body = []
        for model in sorted({r["model"] for r in sel}):
            for ev in EVAL_LANGS:
                mine = [r for r in sel if r["model"] == model and r["eval_lang"] == ev]
                if not mine:
                    continue
                line = [model, EVAL_LABEL[ev]]
                for lang in langs:
                    at = [r for r in mine if r["lang"] == lang]
                    line += [_cell(at, method=m) for m in others + (["clo"] if has_clo else [])]
                    if has_clo:
                        clo = _pick(at, method="clo")
                        line += [_delta(comparisons, clo and clo["value"], _value(at, method=m), axis="method",
                                        a="clo", b=m, model=model, lang=lang, eval_lang=ev, task="alpaca",
                                        metric="win_rate", size=clo and clo["size"]) for m in others]
                body.append(line)
        note = f"Win rate (%) ± standard error against {METHOD_LABEL.get(baseline, baseline)}"
        if has_clo and others:
            note += "; Δ = CLO − " + " / ".join(METHOD_LABEL[m] for m in others) + " in points"
        setting = _setting_note(sel)
        parts.append(
            md_table(header, name_once(body)) + f"\n\n{note}" + (f"; {setting}." if setting else ".")
        )
    return "\n\n".join(parts) if parts else None


def _target_english(rows: list[dict], task: str, decimals: int) -> str | None:
    """Tables 2 and 3: model × method lines, per language a Target and an English column."""
    rows = [r for r in main_rows(rows) if r["task"] == task and r["metric"] == TASKS[task].headline.name]
    if not rows:
        return None
    langs = _sorted_langs(rows)
    header = ["Model", "Method"] + [
        f"{lang_name(lang)} {EVAL_LABEL[ev]}" for lang in langs for ev in EVAL_LANGS
    ]
    body = []
    for model in sorted({r["model"] for r in rows}):
        for method in sorted({r["method"] for r in rows if r["model"] == model}, key=method_order):
            mine = [r for r in rows if r["model"] == model and r["method"] == method]
            body.append(
                [model, METHOD_LABEL[method]]
                + [_cell(mine, decimals, lang=lang, eval_lang=ev) for lang in langs for ev in EVAL_LANGS]
            )
    setting = _setting_note(rows)
    note = "Accuracy (%) ± standard error; Target = the trained language, English = English items" + (
        f"; {setting}." if setting else "."
    )
    return md_table(header, name_once(body)) + "\n\n" + note


def table2_belebele(rows: list[dict]) -> str | None:
    """Table 2: BELEBELE accuracy, Target and English per language."""
    return _target_english(rows, "belebele", 1)


def table3_mmmlu(rows: list[dict]) -> str | None:
    """Table 3: MMMLU accuracy; SFT-eng / SFT-tgt lines appear when those runs exist (2 decimals, as the paper)."""
    return _target_english(rows, "mmmlu", 2)


def _ablation_groups(rows: list[dict], axis: str, a: str, b: str) -> list[tuple[tuple, int, list[dict]]]:
    """Groups of headline-metric rows equal in everything but `axis`, at the largest size where both
    `axis = a` and `axis = b` were measured: [(group key, size, rows at that size)]."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    others = [k for k in ("trainable", "nll", "nll_reduction") if k != axis]
    for r in rows:
        if r["metric"] == TASKS[r["task"]].headline.name and r.get(axis) in (a, b):
            groups[
                (r["model"], r["lang"], r["method"], r["task"], r.get("baseline"), *(r.get(k) for k in others))
            ].append(r)
    out = []
    for k, g in groups.items():
        both = {r["size"] for r in g if r[axis] == a} & {r["size"] for r in g if r[axis] == b}
        if both:
            size = max(both, key=size_order)
            out.append((k, size, [r for r in g if r["size"] == size]))
    return sorted(out, key=lambda x: (x[0][0], lang_order(x[0][1]), method_order(x[0][2]), x[0][3]))


def _task_label(task: str, baseline: str | None) -> str:
    return TASKS[task].label + (f" vs {METHOD_LABEL.get(baseline, baseline)}" if baseline else "")


def table4_trainable(rows: list[dict], comparisons: list[dict] = ()) -> str | None:
    """Table 4: attention-only vs full fine-tuning, per task's headline metric; Δ = attention − full."""
    groups = _ablation_groups(rows, "trainable", "attention", "full")
    if not groups:
        return None
    body = []
    for (model, lang, method, task, baseline, nll, reduction), size, g in groups:
        line = [model, lang_name(lang), METHOD_LABEL[method], _task_label(task, baseline), size_label(size)]
        for ev in EVAL_LANGS:
            att, full = (
                _value(g, trainable="attention", eval_lang=ev),
                _value(g, trainable="full", eval_lang=ev),
            )
            line += [
                _cell(g, trainable="attention", eval_lang=ev),
                _cell(g, trainable="full", eval_lang=ev),
                _delta(comparisons, att, full, axis="trainable", a="attention", b="full", model=model, lang=lang,
                       method=method, task=task, metric=TASKS[task].headline.name, eval_lang=ev, size=size,
                       nll=nll, nll_reduction=reduction),
            ]
        body.append(line)
    header = [
        "Model",
        "Language",
        "Method",
        "Metric",
        "Data size",
        "Target attention",
        "Target full",
        "Target Δ",
        "English attention",
        "English full",
        "English Δ",
    ]
    return (
        md_table(header, body) + "\n\n% ± standard error; Δ = attention-only − full fine-tuning, in points for rates and in the metric's unit (nats) for NLL."
    )


def _setting_pair_table(rows: list[dict], axis: str, settings: tuple[tuple[str, str], ...],
                        column: str) -> str | None:
    """Two settings of one training option side by side: a line per (configuration, setting), the
    target-language and English results as columns. `settings` = ((value, label), (value, label))."""
    groups = _ablation_groups(rows, axis, settings[0][0], settings[1][0])
    if not groups:
        return None
    body = [
        [model, lang_name(lang), METHOD_LABEL[method], _task_label(task, baseline), size_label(size), label]
        + [_cell(g, **{axis: value}, eval_lang=ev) for ev in EVAL_LANGS]
        for (model, lang, method, task, baseline, *_), size, g in groups
        for value, label in settings
    ]
    header = ["Model", "Language", "Method", "Metric", "Data size", column, "Target", "English"]
    return md_table(header, body) + "\n\n% ± standard error."


def table5_nll(rows: list[dict]) -> str | None:
    """Table 5: NLL on the target response only (the paper's choice) vs on both responses."""
    return _setting_pair_table(rows, "nll", (("target", "Target only"), ("both", "Target & English")), "NLL loss")


def nll_reduction_table(rows: list[dict]) -> str | None:
    """Beyond the paper: the NLL averaged per token (our default, TRL's) vs summed per sequence and
    averaged over sequences (the paper's Eq. 9 literally), for every method trained both ways."""
    return _setting_pair_table(rows, "nll_reduction", (("token", "per token"), ("sequence", "per sequence (Eq. 9)")),
                               "NLL reduction")


def _per_config_table(rows: list[dict], columns: list[tuple[str, str, str]], note: str) -> str | None:
    """One line per trained configuration (model, language, method, size, variant); `columns` are
    (header suffix, task, metric), each shown in the target language and in English."""
    rows = [r for r in rows if (r["task"], r["metric"]) in {(t, m) for _, t, m in columns}]
    if not rows:
        return None
    lines = sorted(
        {(r["model"], r["lang"], r["method"], r["size"], variant(r)) for r in rows},
        key=lambda x: (x[0], lang_order(x[1]), method_order(x[2]), size_order(x[3]), variant_rank(x[4])),
    )
    variants = defaultdict(set)
    for model, lang, method, _, v in lines:
        variants[(model, lang, method)].add(v)
    present = [(h, t, m) for h, t, m in columns if any((r["task"], r["metric"]) == (t, m) for r in rows)]
    body = []
    for model, lang, method, size, v in lines:
        sel = [r for r in rows if (r["model"], r["lang"], r["method"], r["size"], variant(r)) == (model, lang, method, size, v)]
        body.append([model, lang_name(lang), _line_label(method, v, variants[(model, lang, method)]), size_label(size)]
                    + [_cell(sel, eval_lang=ev, task=t, metric=m) for ev in EVAL_LANGS for _, t, m in present])
    header = ["Model", "Language", "Method", "Data size"] + [f"{EVAL_LABEL[ev]} {h}" for ev in EVAL_LANGS
                                                             for h, _, _ in present]
    return md_table(header, name_once(body)) + "\n\n" + note


def fidelity_table(rows: list[dict]) -> str | None:
    """Ours, beyond the paper: response- and line-level pass rates for every trained configuration, next to
    the share of degenerate responses and the fluent pass rate (right language and not degenerate)."""
    columns = [("response", "fidelity", "response_pass_rate"), ("line", "fidelity", "line_pass_rate"),
               ("degenerate", "degeneration", "degenerate_rate"), ("fluent", "degeneration", "fluent_pass_rate"),
               ("LCPR", "confusion", "lcpr"), ("WPR Latin", "confusion", "wpr_latin")]
    return _per_config_table(rows, columns, (
        "Rates (%) ± standard error over prompts. Response: the whole response is in the prompt's language; "
        "line: every line of 5+ words (outside code, not a bare URL) is; degenerate: a repetition loop, the "
        "prompt echoed back, or nothing; fluent: in the prompt's language and not degenerate; LCPR: the "
        "Language Confusion Benchmark's pass rate (its fastText lid.176 procedure); WPR Latin: of the "
        "responses passing LCB's line test, those with no English word intruding (Latin-script targets)."))


def heldout_table(rows: list[dict]) -> str | None:
    """Ours, beyond the paper: judge-free scores on held-out pairs never trained on (no sampling noise)."""
    columns = [("prefers own language", "langpref", "preference"),
               ("margin/token", "langpref", "margin_per_token"), ("NLL/token", "heldout_nll", "nll_per_token")]
    return _per_config_table(rows, columns, (
        "Prefers own language (%): share of held-out items where the model gives the reply in the prompt's "
        "language a higher log-probability than the same reply in the other language; margin/token: the "
        "difference of their per-token log-probabilities (nats); NLL/token: per-token negative log-likelihood "
        "of the reply in the prompt's language (nats, lower is better). Mean ± standard error over items."))


def paper_tables(rows: list[dict], comparisons: list[dict] = ()) -> list[tuple[str, str]]:
    """(heading, markdown) of each table the rows can fill, in the paper's order, fidelity last. Δ cells
    are paired differences with their CI where `comparisons` has them."""
    tables = [
        ("Instruction following: AlpacaEval win rate (Table 1 shape)", table1_alpaca(rows, comparisons)),
        ("Reading comprehension: BELEBELE (Table 2 shape)", table2_belebele(rows)),
        ("Knowledge and reasoning: MMMLU (Table 3 shape)", table3_mmmlu(rows)),
        ("Ablation: attention-only vs full fine-tuning (Table 4 shape)", table4_trainable(rows, comparisons)),
        ("Ablation: NLL on the target only vs both languages (Table 5 shape)", table5_nll(rows)),
        ("Ablation: NLL per token vs per sequence (beyond the paper)", nll_reduction_table(rows)),
        ("Language fidelity (beyond the paper)", fidelity_table(rows)),
        ("Held-out pairs, no judge (beyond the paper)", heldout_table(rows)),
    ]
    return [(h, t) for h, t in tables if t]
