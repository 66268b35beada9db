"""Options declared once: the same field gives the YAML key, the CLI flag, the check and the error."""

from __future__ import annotations

from typing import Literal

import pytest
import typer
from pydantic import Field
from typer.testing import CliRunner

from langshift.files import InputError
from langshift.options import Options, cli_command, parse_override, set_dotted, subset


class Inner(Options):
    model: str = Field("m", description="A model.")
    tokens: int = Field(8, ge=1, description="Tokens.")


class Outer(Options):
    lam: float = Field(0.5, ge=0, le=1, alias="lambda", description="Weight.", json_schema_extra={"flag": "--lambda"})
    kind: Literal["a", "b"] = Field("a", description="Kind.")
    tags: list[str] = Field(["x"], description="Tags.")
    fast: bool = Field(False, description="Go fast.")
    limit: int | None = Field(None, ge=1, description="Limit.")
    inner: Inner = Field(default_factory=Inner)
    hidden: bool = Field(True, json_schema_extra={"cli": False})


def test_parse_names_the_file_and_the_dotted_key():
    assert Outer.parse({"lambda": "0.25", "tags": ["a", "b"]}, source="c.yaml").lam == 0.25  # "1e-4"-style strings
    cases = [({"lam": 2}, "lam", "less than or equal to 1, got 2"),
             ({"kind": "c"}, "kind", "Input should be 'a' or 'b', got 'c'"),
             ({"inner": {"tokens": 0}}, "inner.tokens", "greater than or equal to 1, got 0"),
             ({"inner": {"modle": "x"}}, "inner.modle", "unknown key (known: model, tokens)"),
             ({"tags": ["a", 3]}, "tags[1]", "valid string"),
             ({"limti": 3}, "limti", "unknown key (known: fast, hidden, inner, kind, lam, limit, tags)")]
    for values, key, words in cases:
        with pytest.raises(InputError) as e:
            Outer.parse(values, source="c.yaml")
        assert e.value.field == key and words in str(e.value) and str(e.value).startswith("c.yaml: ")
    with pytest.raises(InputError, match="expected a mapping"):
        Outer.parse([1, 2], source="c.yaml")


def test_cli_flags_come_from_the_fields():
    app = typer.Typer()
    seen = {}

    @app.command()
    @cli_command(Outer, nested={"inner": Inner}, rename={"inner__tokens": "--max-tokens"})
    def go(given: dict, extra: str = typer.Option("e", "--extra")):
        seen.update(given=given, extra=extra, parsed=Outer.parse(given, source="command line"))

    res = CliRunner().invoke(app, ["--lambda", "0.3", "--tags", "a, b", "--fast", "--inner-model", "q",
                                   "--max-tokens", "4", "--extra", "z"])
    assert res.exit_code == 0, res.output
    assert seen["given"] == {"lam": 0.3, "tags": ["a", "b"], "fast": True, "inner": {"model": "q", "tokens": 4}}
    assert seen["extra"] == "z" and seen["parsed"].inner.tokens == 4
    helptext = CliRunner().invoke(app, ["--help"]).output
    assert "--lambda" in helptext and "(one of: a, b)" in helptext and "--hidden" not in helptext
    assert CliRunner().invoke(app, []).exit_code == 0 and seen["given"] == {}  # nothing typed, nothing given


def test_subset_keeps_each_declaration_and_overrides_are_yaml():
    Small = subset(Outer, "Small", ("lam", "limit"))
    assert Small.model_fields["lam"].description == "Weight." and set(Small.model_fields) == {"lam", "limit"}
    with pytest.raises(InputError, match="less than or equal to 1"):
        Small.parse({"lam": 3})
    raw: dict = {}
    set_dotted(raw, *parse_override("eval.sizes=[1, 2]"))
    assert raw == {"eval": {"sizes": [1, 2]}}
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_override("eval.limit")
    with pytest.raises(InputError, match="not valid YAML"):
        parse_override("eval.limit=[1,")
