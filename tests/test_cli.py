"""The `langshift` command as a newcomer meets it: what it says it does, `--version`, one way to name the
model (`--model` wherever a model is taken, MODEL where it always was), help texts that read right in
each command that shows them, and every command the README shows: each one parses (its subcommands and
flags exist), and those that can run on a tiny model do run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from langshift.cli import app

ROOT = Path(__file__).resolve().parents[1]
COMMAND = typer.main.get_command(app)


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _is_group(cmd) -> bool:
    return hasattr(cmd, "commands")  # typer's groups are click groups by shape, not always by class


def _leaves(group=COMMAND, prefix: tuple[str, ...] = ()):
    """(path, click command) of every command langshift has."""
    for name, cmd in group.commands.items():
        if _is_group(cmd):
            yield from _leaves(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_top_level_help_says_what_langshift_does_and_version_names_the_stack():
    result = _invoke("--help")
    assert result.exit_code == 0
    assert "Move an English-centric LLM into a new language without losing its English" in result.output
    assert "Typer" not in result.output and "registers" not in result.output  # not how the CLI is built
    assert "doctor" in result.output
    version = _invoke("--version")
    assert version.exit_code == 0
    names = [line.split(" ")[0] for line in version.output.splitlines()]
    assert names == ["langshift", "torch", "transformers", "llama.cpp"]
    assert "not installed" not in version.output and re.search(r"torch \d+\.\d+", version.output)


def test_every_command_that_takes_a_model_takes_model():
    takes_model = {path for path, cmd in _leaves() if any("--model" in p.opts for p in cmd.params)}
    for path in [("train",), ("chat",), ("export",), ("push",), ("eval", "run"), ("eval", "belebele"),
                 ("eval", "mmmlu"), ("eval", "generate")]:
        assert path in takes_model, path


def test_shared_options_read_right_in_each_command():
    """A field shared by several commands keeps one declaration; where a command gives it a narrower
    meaning its help says that meaning (chat's seed has no MMMLU sample to seed)."""
    for path, cmd in _leaves():
        for param in cmd.params:
            text = getattr(param, "help", None) or ""
            if "MMMLU" in text:
                assert path in (("eval", "mmmlu"), ("eval", "run"), ("train",), ("run",)), (path, param.opts, text)
            if "--model" in text and param.opts != ["--model"]:
                assert any("--model" in p.opts for p in cmd.params), (path, param.opts, text)


def test_model_as_option_or_argument_is_the_same_model(chatty, tmp_path):
    asked = ["--prompt", "Habari?", "--max-new-tokens", "5", "--temperature", "0"]
    positional = _invoke("chat", str(chatty), *asked)
    option = _invoke("chat", "--model", str(chatty), *asked)
    assert positional.exit_code == 0 and option.exit_code == 0, option.output
    assert positional.output == option.output and positional.output.strip()

    exported = _invoke("export", "--model", str(chatty), "--gguf", str(tmp_path / "m.gguf"), "--no-modelfile")
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "m.gguf").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["chat", "a-model", "--model", "another"], "two models given"),
    (["chat", "--prompt", "x"], "no model given"),
    (["export", "--gguf", "x.gguf"], "no model given"),
    (["push", "--model", "./not/here", "--repo", "me/x"], "does not exist"),
])
def test_a_model_named_twice_or_not_at_all_is_one_error(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke(*args)
    assert result.exit_code == 2 and message in result.output, result.output


# ---- every command the README shows ----

def readme_commands() -> list[str]:
    """The `langshift ...` and `make ...` lines of the README's code blocks, and its inline `langshift ...`
    commands, with comments, `[optional]` parts and shell placeholders taken out."""
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        lines += [line for line in block.splitlines() if re.match(r"\s*(langshift|make|accelerate launch) ", line)]
    lines += re.findall(r"`(langshift [^`]+)`", text)
    out = []
    for line in lines:
        line = re.sub(r"\s+#.*$", "", line).strip()
        line = re.sub(r"\[(--[^\]]+)\]", lambda m: m.group(1).split("|")[0], line)  # [--type f16|q8_0] -> --type f16
        out.append(line)
    return sorted(set(out))


def _parse(args: list[str]) -> None:
    """Resolve subcommands and parse flags as click does before running: an unknown command, flag or
    choice raises. A mention that leaves out a required value (`langshift run` in prose) still parses."""
    cmd, name = COMMAND, "langshift"
    while _is_group(cmd) and args:
        if args[0].startswith("-"):  # an option of the group itself (langshift --version)
            assert any(args[0] in p.opts for p in cmd.params), f"{name} has no option {args[0]}"
            return
        name, args = args[0], args[1:]
        cmd = cmd.commands.get(name)
        assert cmd is not None, f"no command {name!r}"
    if _is_group(cmd):
        return
    try:
        cmd.make_context(name, list(args))
    except Exception as e:  # typer vendors click: its MissingParameter is not click's
        if type(e).__name__ != "MissingParameter":
            raise


def test_the_readme_shows_commands_at_all():
    found = readme_commands()
    assert sum(c.startswith("langshift chat") for c in found) >= 3 and any(c.startswith("make test") for c in found)


@pytest.mark.parametrize("line", readme_commands())
def test_every_readme_command_parses(line):
    words = [w for w in shlex.split(line.replace("...", "x")) if not re.fullmatch(r"<[^>]*>|[A-Z]+\.yaml", w)]
    if words[0] == "make":
        targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))
        assert words[1] in targets, line
        return
    if words[0] == "accelerate":  # accelerate launch ... -m langshift.cli ARGS: the ARGS are langshift's
        words = ["langshift", *words[words.index("langshift.cli") + 1:]]
    assert words[0] == "langshift"
    if len(words) == 1:
        return
    _parse(words[1:])


def test_the_readmes_after_training_commands_run_on_a_tiny_model(chatty, tmp_path, monkeypatch):
    """`chat --prompt` and `export --gguf ... --type` as the README writes them, with its `runs/clo-sw`
    standing for a tiny model."""
    monkeypatch.chdir(tmp_path)
    runnable = [c for c in readme_commands() if c.startswith(("langshift chat runs/clo-sw --prompt", "langshift export"))]
    assert len(runnable) == 2, runnable
    for line in runnable:
        words = [str(chatty) if w == "runs/clo-sw" else w for w in shlex.split(line)]
        if words[1] == "chat":
            words += ["--max-new-tokens", "4"]
        result = _invoke(*words[1:])
        assert result.exit_code == 0, (line, result.output)
    assert (tmp_path / "clo-sw.gguf").is_file() and (tmp_path / "clo-sw.Modelfile").is_file()
