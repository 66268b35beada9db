"""The `langshift` command: one Typer app; each part registers its own subcommands."""

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
app.add_typer(data_app, name="data", help="Build cross-lingual training data.")
app.add_typer(eval_app, name="eval", help="Evaluate a model: belebele, mmmlu, alpaca, fidelity.")
app.command("train")(train)
app.command("run")(run)
app.command("report")(report)
app.command("compare")(compare)
app.command("chat")(chat)
app.command("export")(export)
app.command("push")(push)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
