"""`langshift report RUNDIR [RUNDIR ...] [--out DIR]`: merge runs into one report.md with plots.
`langshift compare`: A − B with a 95% CI and a p-value, for every metric both were scored on:

    langshift compare EVAL_A EVAL_B                       two evaluation directories
    langshift compare A1,A2,A3 B1,B2,B3                   replicate seeds: one directory per seed and side
    langshift compare RUN --a method=clo --b method=sft   within a run: the evaluations whose facts match
                      [--where size=48]                   (each side's seeds are found and grouped)
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from langshift.files import InputError, check_output_dir, check_output_file, read_json, write_json
from langshift.report.rows import merge, read_comparisons, read_run
from langshift.report.tables import headline_table
from langshift.report.write import write_report


def _run_dir(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def report(
    run_dirs: list[Path] = typer.Argument(
        ..., metavar="RUNDIR", help="Run directories (each holding results.json) to merge."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for report.md and plots (default: the first RUNDIR)."
    ),
    title: str | None = typer.Option(None, help="Report title (default: from the experiment names)."),
) -> None:
    """Merge the results of one or more runs into report.md: headline, paper-shaped tables, PNG plots."""
    out_dir = check_output_dir(out or _run_dir(run_dirs[0]), "--out")
    runs = [read_run(d) for d in run_dirs]
    rows = merge(row for _, run_rows in runs for row in run_rows)
    experiments = list(dict.fromkeys(name for name, _ in runs))
    comparisons = [c for d in run_dirs for c in read_comparisons(d)]
    interactions = [c for d in run_dirs for c in read_comparisons(d, "interactions")]
    inputs = {_run_dir(d).resolve() for d in run_dirs}
    merged = out_dir / "results.json"
    # A separate --out folder gets the merged rows too, so it can be reported (or merged) again; a run's
    # own results.json is never overwritten.
    if out_dir.resolve() not in inputs and (
        not merged.exists() or "merged_from" in merged.read_text("utf-8")
    ):
        write_json(
            merged,
            {"experiment": " + ".join(experiments), "merged_from": [str(d) for d in run_dirs], "rows": rows,
             "comparisons": comparisons, "interactions": interactions},
        )
    path = write_report(rows, out_dir, title or "langshift report: " + ", ".join(experiments), comparisons,
                        interactions)
    typer.echo(headline_table(rows))
    if not rows:
        typer.echo("(the runs hold no result rows yet)")
    typer.echo(f"\nreport: {path}")


def _filters(text: str | None, flag: str) -> dict:
    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise InputError(flag, f"expected KEY=VALUE[,KEY=VALUE], got {part!r}")
        import yaml

        out[key.strip()] = yaml.safe_load(value)
    return out


def _run_evals(run: Path) -> list[tuple[dict, Path]]:
    """(facts, dir) of every finished evaluation of a run: those under RUN/eval, and those its
    experiment.json lists elsewhere (a run with `stages:` keeps its stage outputs in a shared directory;
    the listed paths are relative to where the run was started, so they are re-rooted at RUN)."""
    candidates = [spec.parent for spec in sorted((run / "eval").glob("*/spec.json"))]
    if (run / "experiment.json").is_file():
        record = read_json(run / "experiment.json")
        out = record.get("experiment", {}).get("out")
        for stage in record.get("stages", []):
            if stage.get("kind") == "eval":
                where = Path(stage["dir"])
                candidates.append(where if where.is_absolute() or not out else run / os.path.relpath(where, out))
    evals, seen = [], set()
    for d in candidates:
        key = d.resolve()
        if key not in seen and (d / "stage.json").is_file() and (d / "spec.json").is_file():
            seen.add(key)
            evals.append((read_json(d / "spec.json").get("facts") or {}, d))
    if not evals:
        raise InputError(run, "no finished evaluation in this run directory (eval/*/stage.json, or the "
                              "stages its experiment.json lists)")
    return evals


def _select(evals, want: dict, flag: str) -> list[Path]:
    found = [d for facts, d in evals if all(facts.get(k) == v for k, v in want.items())]
    if not found:
        raise InputError(flag, f"no evaluation matches {want}")
    configs = {tuple(sorted((k, v) for k, v in facts.items() if k != "seed"))
               for facts, d in evals if d in found}
    if len(configs) > 1:
        raise InputError(flag, f"{want} matches {len(configs)} configurations (differing in more than the seed); "
                               "add --where KEY=VALUE to narrow it")
    return found


def compare(
    paths: list[str] = typer.Argument(..., help="EVAL_A EVAL_B (comma-separated per side for seeds), or one RUN dir."),
    a: str = typer.Option(None, "--a", help="Within a run: facts of side A, e.g. method=clo."),
    b: str = typer.Option(None, "--b", help="Within a run: facts of side B, e.g. method=sft."),
    where: str = typer.Option(None, "--where", help="Within a run: facts both sides share, e.g. size=48."),
    resamples: int = typer.Option(10_000, min=100, help="Bootstrap resamples (and random sign flips)."),
    out: Path = typer.Option(None, "--out", help="Also write the table as JSON here."),
) -> None:
    """A − B for every task, metric and language both were scored on: difference, 95% CI, p-value."""
    from langshift.report.compare import compare_evals, verdict
    from langshift.report.tables import EVAL_LABEL, md_table

    if out:
        check_output_file(out, "--out")
    if len(paths) == 1:
        evals = _run_evals(Path(paths[0]))
        shared = _filters(where, "--where")
        side_a = _select(evals, {**shared, **_filters(a, "--a")}, "--a")
        side_b = _select(evals, {**shared, **_filters(b, "--b")}, "--b")
        name_a, name_b = a, b
    elif len(paths) == 2:
        if a or b or where:
            raise InputError("--a/--b/--where", "select evaluations only within one RUN directory")
        side_a, side_b = ([Path(p) for p in side.split(",") if p] for side in paths)
        name_a, name_b = "A", "B"
    else:
        raise InputError("compare", f"expected EVAL_A EVAL_B or one RUN directory, got {len(paths)} paths")
    comparisons = compare_evals(sorted(side_a), sorted(side_b), resamples=resamples)
    from langshift.eval.tasks import TASKS
    from langshift.report.compare import cell

    body = [[TASKS[c["task"]].title, TASKS[c["task"]].metric(c["metric"]).label, f"{EVAL_LABEL[c['eval_lang']]} ({c['item_lang']})",
             cell(c), str(c["n"]) + (f" (−{c['excluded']})" if c["excluded"] else "")] for c in comparisons]
    typer.echo(md_table(["Task", "Metric", "Eval", f"{name_a} − {name_b} [95% CI] p", "items"], body))
    typer.echo("")
    for c in comparisons:
        if c["metric"] == TASKS[c["task"]].headline.name:
            typer.echo("- " + verdict(c, name_a, name_b, f"{TASKS[c['task']].label.lower()} ({c['item_lang']})"))
    if out:
        from langshift.files import write_json

        write_json(out, {"a": [str(p) for p in side_a], "b": [str(p) for p in side_b], "comparisons": comparisons})
