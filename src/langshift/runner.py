import typer


def run(config: str = typer.Argument(..., help="Experiment config YAML.")) -> None:
    """Run an experiment config (not built yet)."""
    raise typer.Exit(2)
