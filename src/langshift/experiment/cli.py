"""`langshift run CONFIG.yaml`: one experiment, data -> train -> eval -> report, cached stage by stage."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def run(
    config: Path = typer.Argument(..., help="Experiment config YAML (see configs/)."),
    quick: bool = typer.Option(False, "--quick", help="Apply the config's 'quick' overrides: a smoke run."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set eval.limit=5 (YAML value)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the plan without running it."),
    jobs: int = typer.Option(None, "--jobs", min=1, help="Stages run at once, each in its own process (config: jobs)."),
    executor: str = typer.Option(None, "--executor", help="Where stages run: local | slurm (config: executor.kind)."),
) -> None:
    """Run an experiment: data -> train -> eval -> report, skipping stages already done."""
    from langshift.experiment import load_experiment, plan, run_experiment
    from langshift.experiment.plan import is_done
    from langshift.files import check_output_dir
    from langshift.report.comparison_tables import comparison_table, comparison_words
    from langshift.report.tables import headline_table

    flags = [*([f"jobs={jobs}"] if jobs is not None else []), *([f"executor.kind={executor}"] if executor else [])]
    exp = load_experiment(config, quick=quick, overrides=[*set_, *flags])
    check_output_dir(exp.out, "out")
    if dry_run:
        from langshift.experiment.execute import stage_root

        root = stage_root(exp)
        for stage in plan(exp, root):
            mark = "done" if is_done(stage.directory(root)) else "todo"
            typer.echo(f"{mark}  {stage.kind:5s}  {stage.label}  {stage.directory(root)}")
        return
    root = run_experiment(exp)
    results = json.loads((root / "results.json").read_text(encoding="utf-8"))
    typer.echo(f"\nreport: {root / 'report.md'}")
    typer.echo(headline_table(results["rows"]))
    if table := comparison_table(results.get("comparisons", [])):
        typer.echo("\nPaired differences, A − B [95% CI] p (points):\n" + table)
        typer.echo("\n".join(comparison_words(results["comparisons"])))
