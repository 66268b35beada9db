"""PNG plots of result rows (matplotlib's object API on the Agg canvas: no pyplot, no global state).

* `size_curves`: a task's headline metric vs training data size, one line per method (Figure 3's shape:
  x = training records on a log2 axis), one panel per (language, evaluation language); the untrained base
  model is a dashed reference line and, for win rates, the baseline judged against itself sits at 50%.
* `language_bars`: per language, target-language vs English bars for each method (Tables 1-3's
  comparison at a glance), at the configuration the main tables use.

Error bars are ± one standard error, as in the tables.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from langshift.eval.tasks import TASKS
from langshift.report.rows import (
    EVAL_LANGS,
    METHOD_LABEL,
    eval_name,
    lang_name,
    lang_order,
    main_rows,
    method_order,
    variant,
    variant_rank,
)

METHOD_COLOR = {
    "base": "#7f7f7f",
    "sft": "#1f77b4",
    "clo": "#d62728",
    "sft+dpo": "#2ca02c",
    "dpo": "#bcbd22",
    "sft-eng": "#9467bd",
    "sft-tgt": "#8c564b",
}
EVAL_COLOR = {"target": "#e6832a", "en": "#3a78b5"}
DPI = 120


def _figure(nrows: int, ncols: int, panel_w: float, panel_h: float):
    from matplotlib.figure import Figure  # lazy: the CLI should not pay for matplotlib unless it plots

    fig = Figure(figsize=(panel_w * ncols, panel_h * nrows + 0.8), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.supxlabel("Error bars: ± one standard error.", fontsize=8, color="#555555")
    return fig, axes


def _scale(task: str) -> float:
    """Fractions are drawn as percentages; other units as they are."""
    return 100.0 if TASKS[task].headline.unit == "fraction" else 1.0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def _series(rows: list[dict]) -> list[tuple[str, str | None]]:
    """(task, baseline) pairs to plot: one per task's headline metric, win rates split by baseline."""
    pairs = {(r["task"], r.get("baseline")) for r in rows if r["metric"] == TASKS[r["task"]].headline.name}
    order = list(TASKS)
    return sorted(pairs, key=lambda p: (order.index(p[0]), p[1] or ""))


def _select(rows: list[dict], model: str, task: str, baseline: str | None) -> list[dict]:
    return [
        r
        for r in rows
        if r["model"] == model
        and r["task"] == task
        and r["metric"] == TASKS[task].headline.name
        and r.get("baseline") == baseline
    ]


def _title(model: str, task: str, baseline: str | None, what: str) -> str:
    vs = f" vs {METHOD_LABEL.get(baseline, baseline)}" if baseline else ""
    return f"{TASKS[task].label}{vs} {what} — {model}"


def size_curves(rows: list[dict], out_dir: str | Path) -> list[Path]:
    """One PNG per (model, task[, baseline]) with at least two data sizes; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for model in sorted({r["model"] for r in rows}):
        for task, baseline in _series([r for r in rows if r["model"] == model]):
            sel = _select(rows, model, task, baseline)
            sizes = sorted({r["size"] for r in sel if r["size"] is not None})
            if len(sizes) < 2:
                continue
            langs = sorted({r["lang"] for r in sel}, key=lang_order)
            fig, axes = _figure(len(langs), len(EVAL_LANGS), 4.6, 3.4)
            for i, lang in enumerate(langs):
                at_lang = [r for r in sel if r["lang"] == lang]
                for j, ev in enumerate(EVAL_LANGS):
                    _size_panel(
                        axes[i][j],
                        [r for r in at_lang if r["eval_lang"] == ev],
                        at_lang,
                        sizes,
                        task,
                        baseline,
                    )
                    axes[i][j].set_title(
                        f"{lang_name(lang)} model, evaluated in {eval_name(ev, lang)}", fontsize=10
                    )
            fig.suptitle(_title(model, task, baseline, "vs training data size"), fontsize=12)
            path = out_dir / f"size_{task}{'_vs_' + _slug(baseline) if baseline else ''}_{_slug(model)}.png"
            fig.savefig(path, dpi=DPI)
            written.append(path)
    return written


def _size_panel(
    ax, rows: list[dict], all_variants: list[dict], sizes: list[int], task: str, baseline
) -> None:
    from matplotlib.ticker import NullLocator

    if not rows:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", color="#777777", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    for method in sorted({r["method"] for r in rows if r["size"] is not None}, key=method_order):
        # The paper's configuration of each method (as in the main tables); ablation variants are tables.
        best = min({variant(r) for r in all_variants if r["method"] == method}, key=variant_rank)
        pts = sorted(
            (r for r in rows if r["method"] == method and variant(r) == best and r["size"] is not None),
            key=lambda r: r["size"],
        )
        if pts:
            ax.errorbar(
                [r["size"] for r in pts],
                [_scale(task) * r["value"] for r in pts],
                yerr=[_scale(task) * (r["stderr"] or 0) for r in pts],
                marker="o",
                capsize=3,
                linewidth=1.8,
                color=METHOD_COLOR[method],
                label=METHOD_LABEL[method],
            )
    base = next((r for r in rows if r["method"] == "base"), None)
    if base:
        ax.axhline(
            _scale(task) * base["value"],
            linestyle="--",
            color=METHOD_COLOR["base"],
            linewidth=1.2,
            label="Base (untrained)",
        )
    if TASKS[task].needs_judge:  # the baseline judged against itself
        ax.axhline(
            50,
            linestyle=":",
            color="black",
            linewidth=1,
            label=f"{METHOD_LABEL.get(baseline, baseline)} (50%)",
        )
    ax.set_xscale("log", base=2)
    lo, hi = sizes[0], sizes[-1]
    ax.set_xlim(lo / 2**0.4, hi * 2**0.4)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.xaxis.set_minor_locator(NullLocator())
    if _scale(task) == 100:
        ax.set_ylim(0, 100)
    ax.set_xlabel("Training records (log2 scale)")
    ax.set_ylabel(TASKS[task].headline.label)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")


def language_bars(rows: list[dict], out_dir: str | Path) -> list[Path]:
    """One PNG per (model, task[, baseline]): per language, target vs English bars for each method."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = main_rows(rows)
    written = []
    for model in sorted({r["model"] for r in rows}):
        for task, baseline in _series([r for r in rows if r["model"] == model]):
            sel = _select(rows, model, task, baseline)
            langs = sorted({r["lang"] for r in sel}, key=lang_order)
            ncols = min(3, len(langs))
            nrows = math.ceil(len(langs) / ncols)
            n_methods = max(len({r["method"] for r in sel if r["lang"] == lang}) for lang in langs)
            fig, axes = _figure(nrows, ncols, max(3.6, 1.25 * n_methods + 1.2), 3.6)
            for k, lang in enumerate(langs):
                _bar_panel(axes[k // ncols][k % ncols], [r for r in sel if r["lang"] == lang], task, lang)
            for k in range(len(langs), nrows * ncols):
                axes[k // ncols][k % ncols].set_visible(False)
            fig.suptitle(_title(model, task, baseline, "in the target language and in English"), fontsize=12)
            path = out_dir / f"bars_{task}{'_vs_' + _slug(baseline) if baseline else ''}_{_slug(model)}.png"
            fig.savefig(path, dpi=DPI)
            written.append(path)
    return written


def _bar_panel(ax, rows: list[dict], task: str, lang: str) -> None:
    methods = sorted({(r["method"], r["size"]) for r in rows}, key=lambda m: method_order(m[0]))
    width = 0.38
    for j, ev in enumerate(EVAL_LANGS):
        xs, ys, es = [], [], []
        for i, (method, size) in enumerate(methods):
            r = next(
                (r for r in rows if (r["method"], r["size"], r["eval_lang"]) == (method, size, ev)), None
            )
            if r:
                xs.append(i + (j - 0.5) * width)
                ys.append(_scale(task) * r["value"])
                es.append(_scale(task) * (r["stderr"] or 0))
        if xs:
            ax.bar(xs, ys, width, yerr=es, capsize=3, color=EVAL_COLOR[ev], label=eval_name(ev, lang))
            for x, y, e in zip(xs, ys, es, strict=True):  # above the error bar, not under it
                ax.text(x, y + e + (1.5 if _scale(task) == 100 else 0), f"{y:.0f}" if _scale(task) == 100 else f"{y:.2f}", ha="center", va="bottom",
                        fontsize=7)
    ax.set_xticks(
        range(len(methods)),
        [METHOD_LABEL[m] + ("" if size is None else f"\n{size} records") for m, size in methods],
    )
    if TASKS[task].needs_judge:
        ax.axhline(50, linestyle=":", color="black", linewidth=1)
    if _scale(task) == 100:
        ax.set_ylim(0, 112)
        ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(TASKS[task].headline.label)
    ax.set_title(f"{lang_name(lang)} model", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", ncols=2)


def eval_bars(state: dict, path: str | Path) -> Path | None:
    """One evaluation's results.json as grouped bars: a group per task metric (the first two of each
    task), a bar per eval language, ± one standard error."""
    from langshift.report.single import eval_lang_label

    meta = state["meta"]
    groups = [(f"{task.title}\n{m.label.replace(' (%)', '')}", task.name, m)
              for task in TASKS.values() if state.get(task.name) for m in task.metrics[:2]]
    if not groups:
        return None
    langs = meta["langs"]
    width = 0.8 / len(langs)
    fig, axes = _figure(1, 1, max(5, 1.6 * len(groups)), 3.6)
    ax = axes[0][0]
    for j, lang in enumerate(langs):
        # a missing number (task not run in this language, no counted line) is no bar, not a zero bar
        got = [state[t].get(lang, {}).get("metrics", {}).get(m.name) or {} for _, t, m in groups]
        scale = [100.0 if m.unit == "fraction" else 1.0 for _, _, m in groups]
        heights = [k * g["value"] if g.get("value") is not None else float("nan") for g, k in zip(got, scale, strict=True)]
        errs = [k * (g.get("stderr") or 0) for g, k in zip(got, scale, strict=True)]
        xs = [i + (j - (len(langs) - 1) / 2) * width for i in range(len(groups))]
        bars = ax.bar(xs, heights, width, yerr=errs, capsize=3, label=eval_lang_label(lang, meta["lang"]))
        ax.bar_label(bars, labels=[f"{h:.1f}" if g.get("value") is not None else "n/a" for h, g in zip(heights, got, strict=True)],
                     fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 125)
    ax.set_title(f"{meta['model_name']} — {meta['lang']}", fontsize=10)
    ax.legend(fontsize=8, ncol=len(langs), loc="upper center", frameon=False)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=DPI)
    tmp.replace(path)  # a reader never sees half a PNG
    return path
