"""What every `langshift` subcommand shares: bad input becomes one located line and exit code 2."""

from __future__ import annotations

import functools

import typer

from langshift.files import InputError
from langshift.redact import redact


def user_errors(fn):
    """Bad input -> one readable line (file:line: field 'x': ...) and exit code 2, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (InputError, ValueError) as e:
            typer.echo(f"error: {redact(str(e))}", err=True)  # no configured key, whatever raised it
            raise typer.Exit(2) from None
        except RuntimeError as e:  # an expected failure that says so (e.g. a stage that failed): its own code
            if getattr(e, "exit_code", None) is None:
                raise
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None

    return wrapper
