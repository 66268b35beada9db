"""Move an English-centric LLM into a new language without losing its English: Cross-Lingual Optimization
(CLO), its baselines, and their evaluations."""

# One Typer app; each part of langshift registers its own subcommands here.

from __future__ import annotations

import typer

from langshift.cli_support import ErrorBoundary
from langshift.data.cli import app as data_app
from langshift.eval.cli import app as eval_app
from langshift.experiment.cli import run
from langshift.export.cli import chat, export, push
from langshift.report.cli import compare, report
from langshift.train.cli import train

# Every subcommand runs inside the error boundary: a failure the user can fix is one `error:` line, exit 2.
app = typer.Typer(cls=ErrorBoundary, add_completion=False, no_args_is_help=True, help=__doc__)


def versions() -> str:
    """langshift and the libraries its results depend on, from package metadata (nothing is imported:
    importing llama_cpp would load native code)."""
    from langshift.doctor import installed_version

    def of(dist: str) -> str:
        return installed_version(dist) or "not installed"

    return (f"langshift {of('langshift')}\ntorch {of('torch')}\ntransformers {of('transformers')}\n"
            f"llama.cpp (llama-cpp-python) {of('llama-cpp-python')}")


def _version(value: bool) -> None:
    if value:
        typer.echo(versions())
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print the versions of langshift, torch, transformers and llama.cpp.")) -> None:
    pass


def doctor(
    preflight: bool = typer.Option(False, "--preflight", help="Only decode one token through llama.cpp (make test's first step)."),
    as_json: bool = typer.Option(False, "--json", help="The rows as JSON."),
) -> None:
    """Check what langshift's commands rely on (torch, CPU and llama.cpp, language ID, the embedded model,
    writable directories, extras, accelerate); a fix for every failed row; exit 1 when the demo or the
    tests cannot run."""
    from langshift import doctor as checks

    raise typer.Exit(checks.preflight() if preflight else checks.doctor(as_json))


app.add_typer(data_app, name="data", help="Build cross-lingual training data.")
app.add_typer(eval_app, name="eval", help="Evaluate a model: belebele, mmmlu, alpaca, fidelity.")
app.command("train")(train)
app.command("run")(run)
app.command("report")(report)
app.command("compare")(compare)
app.command("chat")(chat)
app.command("export")(export)
app.command("push")(push)
app.command("doctor")(doctor)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
