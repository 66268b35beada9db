"""`report.md` and its plots for a set of result rows, written atomically.

Layout of OUT: `report.md` and `report_plots/*.png` (the plot folder is rebuilt whole and renamed into
place, so a stale plot from an earlier report never survives next to a new one).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from langshift.eval.tasks import TASKS
from langshift.files import atomic_dir, atomic_write_text
from langshift.report import plots
from langshift.report.comparison_tables import (
    comparison_table,
    comparison_words,
    interaction_table,
    interaction_words,
)
from langshift.report.rows import collapse_seeds
from langshift.report.tables import headline_table, paper_tables

PLOTS_DIR = "report_plots"

HOW_TO_READ = """\
## How to read this report

- **Fidelity** (response pass rate): the share of responses written, as a whole, in the language of
  the prompt. The line pass rate counts a response only when every line of 5+ words (outside code
  blocks, not a bare URL) is in that language. An English-centric model asked in Swahili scores low.
- **Reading** (BELEBELE) and **Knowledge** (MMMLU): the share of multiple-choice items answered
  correctly (chance is 25%). **Win rate**: the share of pairwise judgments won against the named
  baseline, each pair judged in both orders, ties counting half.
- **Target** is the language the model was trained for; **English** checks that English is kept.
  **Base** is the model before any training; **data size** is the number of training records.
- Every number is a percentage `± standard error` over n items (stderr ≈ √(p(1−p)/n)). Two numbers
  whose difference is smaller than about twice √(se₁² + se₂²) are not clearly different.
- `–` marks a number that was not measured."""


def _n_note(rows: list[dict]) -> str:
    """'Items per cell: …' so a reader can judge the error bars."""
    ns: dict[str, set] = defaultdict(set)
    for r in rows:
        ns[r["task"]].add(r["n"])
    parts = []
    for task in TASKS.values():
        if ns.get(task.name):
            lo, hi = min(ns[task.name]), max(ns[task.name])
            parts.append(f"{task.label} n = {lo}" + (f"–{hi}" if hi != lo else ""))
    return "Items per number: " + "; ".join(parts) + "." if parts else ""


def _sources(rows: list[dict], out_dir: Path) -> list[str]:
    out = []
    for src in sorted({r["source"] for r in rows if r.get("source")}):
        try:
            out.append(os.path.relpath(src, out_dir))
        except ValueError:  # another drive on Windows
            out.append(src)
    return out


def render(rows: list[dict], title: str, plot_files: list[str], sources: list[str],
           comparisons: list[dict] = (), interactions: list[dict] = ()) -> str:
    """The markdown text; `plot_files` and `sources` are paths relative to the report."""
    lines = [f"# {title}", ""]
    if sources:
        lines += ["Results from " + ", ".join(f"`{s}`" for s in sources) + ".", ""]
    lines += [
        "## Headline",
        "",
        "Fidelity = response pass rate; Reading = BELEBELE accuracy; Knowledge = MMMLU accuracy; "
        "each in the target language and in English, % ± standard error.",
        "",
        headline_table(rows),
        "",
    ]
    if note := _n_note(rows):
        lines += [note, ""]
    if table := comparison_table(list(comparisons)):
        lines += ["## Paired differences", "",
                  "A − B on the items both were scored on: difference [95% paired-bootstrap CI] and the "
                  "two-sided sign-flip permutation p-value, in points for rates (seeds and items resampled "
                  "hierarchically when there are replicate seeds).", "", table, "",
                  *comparison_words(list(comparisons)), ""]
    if table := interaction_table(list(interactions)):
        lines += ["## Does the gain differ? (the paper's Table 1 question)", "",
                  "(A − B at one setting) − (A − B at the other), all else equal: a difference of differences "
                  "over the items both settings share (the prompt sets are parallel across languages), with its "
                  "95% paired-bootstrap CI and sign-flip p-value; replicate seeds are averaged per item first, "
                  "so the CI holds the items' variation only.", "", table, "",
                  *interaction_words(list(interactions)), ""]
    for heading, table in paper_tables(rows, list(comparisons)):
        lines += [f"## {heading}", "", table, ""]
    if plot_files:
        lines += ["## Plots", ""]
        for f in plot_files:
            name = Path(f).stem.replace("_", " ")
            lines += [f"![{name}]({f})", ""]
    if table := comparison_table(list(comparisons), headline_only=False):
        lines += ["## Every paired difference", "", table, ""]
    lines += [HOW_TO_READ, ""]
    return "\n".join(lines)


def write_report(rows: list[dict], out_dir: str | os.PathLike, title: str = "langshift report",
                 comparisons: list[dict] = (), interactions: list[dict] = ()) -> Path:
    """Write OUT/report.md (title, headline, paired differences, the paper-shaped tables the rows fill,
    plot links, how to read it) and OUT/report_plots/*.png; returns the path of report.md. Replicate
    seeds are shown as their mean (`rows.collapse_seeds`)."""
    rows = collapse_seeds(rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out_dir / PLOTS_DIR) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a report folder is for reading
        written = plots.size_curves(rows, tmp) + plots.language_bars(rows, tmp)
    plot_files = [f"{PLOTS_DIR}/{p.name}" for p in written]
    text = render(rows, title, plot_files, _sources(rows, out_dir), comparisons, interactions)
    return atomic_write_text(out_dir / "report.md", text)
