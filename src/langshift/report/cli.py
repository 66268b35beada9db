import typer


def report(run_dirs: list[str] = typer.Argument(..., help="Run directories to merge.")) -> None:
    """Merge run directories into one report (not built yet)."""
    raise typer.Exit(2)
