"""`langshift report RUNDIR [RUNDIR ...] [--out DIR]`: merge runs into one report.md with plots."""

from __future__ import annotations

from pathlib import Path

import typer

from langshift.files import InputError, write_json
from langshift.report.rows import merge, read_run
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
    try:
        runs = [read_run(d) for d in run_dirs]
        rows = merge(row for _, run_rows in runs for row in run_rows)
    except InputError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    experiments = list(dict.fromkeys(name for name, _ in runs))
    out_dir = out or _run_dir(run_dirs[0])
    inputs = {_run_dir(d).resolve() for d in run_dirs}
    merged = out_dir / "results.json"
    # A separate --out folder gets the merged rows too, so it can be reported (or merged) again; a run's
    # own results.json is never overwritten.
    if out_dir.resolve() not in inputs and (
        not merged.exists() or "merged_from" in merged.read_text("utf-8")
    ):
        write_json(
            merged,
            {"experiment": " + ".join(experiments), "merged_from": [str(d) for d in run_dirs], "rows": rows},
        )
    path = write_report(rows, out_dir, title or "langshift report: " + ", ".join(experiments))
    typer.echo(headline_table(rows))
    if not rows:
        typer.echo("(the runs hold no result rows yet)")
    typer.echo(f"\nreport: {path}")
