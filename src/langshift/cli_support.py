"""The one error boundary of the `langshift` command: an expected failure is one line, not a traceback.

Every subcommand runs inside `ErrorBoundary.invoke` (the click group `langshift.cli.app` is built
with), so a command gets the boundary by being registered, not by remembering a decorator. What the
user can fix ends with exactly one `error: ...` line on stderr and exit code 2:

  * bad input (`InputError`: file, line and field), any other `ValueError` (an `EndpointError`, a
    pydantic `ValidationError` that escaped `Options.parse`, a bad value deep in a library);
  * an endpoint that stayed unreachable through every retry (`LLMError`);
  * the file system: a missing file, a read-only or occupied output path, a full disk (`OSError`,
    which also covers the hub's "not found" and offline errors);
  * a YAML syntax error, a bad flag (click's usage errors, e.g. a number out of its range).

An error that carries its own `exit_code` keeps it (a failed stage of `langshift run`: 1) and may
add lines (the end of the stage's log), indented so that only the first starts with `error:`.
Everything else is a bug and keeps its traceback; `LANGSHIFT_TRACEBACK=1` shows it for expected
failures too. Every message passes through `langshift.redact`, whatever raised it.
"""

from __future__ import annotations

import functools
import os

import typer
from typer.core import TyperGroup

from langshift.files import InputError
from langshift.redact import redact

USAGE_EXIT = 2  # what click uses for a bad flag; every expected failure shares it
# click's UsageError, whichever click typer runs on (its own vendored copy from typer 0.2x on).
UsageError = typer.BadParameter.__base__
EXITS = (typer.Exit, typer.Abort)  # a normal exit or Ctrl-C (RuntimeErrors with an exit code: not failures)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _validation_line(e) -> str:
    """A pydantic ValidationError (several lines) as one: its model, the first bad key, pydantic's words."""
    first = e.errors(include_url=False)[0]
    key = ".".join(str(p) for p in first["loc"])
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    got = "" if isinstance(first.get("input"), dict) else f", got {first.get('input')!r}"
    return f"{e.title}: field '{key}': {first['msg']}{got}{more}"


def _os_error_line(e: OSError) -> str:
    """`path: No such file or directory`; the hub's and other libraries' OSErrors carry only a message."""
    if e.filename is not None and e.strerror:
        paths = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
        return f"{paths}: {e.strerror}"
    return str(e) or type(e).__name__


def _expected_types() -> tuple:
    """(exception type, one-line description), most specific first; imports deferred for start-up time."""
    import yaml
    from pydantic import ValidationError

    from langshift.llm_client import LLMError

    return (
        (InputError, str),
        (ValidationError, _validation_line),
        (LLMError, str),
        (ValueError, str),
        (OSError, _os_error_line),
        (yaml.YAMLError, str),
    )


def expected_failure(error: BaseException) -> tuple[str, int] | None:
    """(message, exit code) for a failure the user can act on; None for a bug (keep the traceback)."""
    code = getattr(error, "exit_code", None)
    if isinstance(error, RuntimeError) and isinstance(code, int):  # e.g. a failed stage: its own code
        head, *rest = str(error).splitlines() or [type(error).__name__]
        return redact("\n  ".join([head, *rest])), code
    for kind, describe in _expected_types():
        if isinstance(error, kind):
            return redact(_one_line(describe(error))) or type(error).__name__, USAGE_EXIT
    return None


def _report(error: BaseException) -> None:
    """Print the error line and leave with its code, or re-raise a bug."""
    found = None if isinstance(error, EXITS) else expected_failure(error)
    if found is None or os.environ.get("LANGSHIFT_TRACEBACK"):
        raise error
    message, code = found
    _close_progress_bars()
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code) from None


def _close_progress_bars() -> None:
    """A bar the failure left open would share its line with the error: close it, so the error line
    starts a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


class ErrorBoundary(TyperGroup):
    """A Typer group whose subcommands' expected failures end in one `error:` line (module docstring)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EXITS:
            raise
        except UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":
                raise  # `langshift data` alone: click shows the group's help
            where = e.ctx.command_path if e.ctx else ctx.command_path
            typer.echo(f"error: {where}: {redact(_one_line(e.format_message()))} (see {where} --help)", err=True)
            raise typer.Exit(e.exit_code) from None
        except Exception as e:  # noqa: BLE001 -- sorted by `expected_failure`; bugs are re-raised
            _report(e)


def user_errors(fn):
    """The same boundary for a command function called outside `langshift.cli.app` (the app's commands
    have it already, through `ErrorBoundary`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 -- bugs are re-raised by _report
            _report(e)

    return wrapper
