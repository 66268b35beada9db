"""Options declared once: a pydantic model per command, read from YAML, CLI flags and `--set` alike.

Each option is a field with its type, default, range and help (`Field(description=...)`). From that one
declaration come
  * validation of a YAML section or any mapping (`Options.parse`), with errors that name the file and
    the dotted key (`exp.yaml: field 'train.lam': Input should be less than or equal to 1, got 2.0`);
  * the command-line flags of a Typer command (`cli_command`), so a CLI never restates a default or
    a help text;
  * `--set a.b=value` overrides (`set_dotted`), applied to the raw mapping before validation.

Why pydantic: it checks types and ranges with one rule for YAML values, CLI strings and override
strings (YAML reads `1e-4` as a string; pydantic's lax mode turns it into a float), and reports where
a nested value is wrong. `transformers.HfArgumentParser` declares options the same way but validates
only what comes through argparse.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import typer
from pydantic import BaseModel, ConfigDict, ValidationError

from langshift.files import InputError


class Options(BaseModel):
    """Base of every options model: unknown keys are errors, fields are set by name or alias."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True,
                              validate_assignment=True)

    @classmethod
    def parse(cls, values: Mapping | None, source: str | Path = "config", prefix: str = ""):
        """Validate `values`; an error becomes an InputError naming `source` and the dotted key."""
        if values is not None and not isinstance(values, Mapping):
            raise InputError(source, f"expected a mapping of options, got {type(values).__name__}",
                             field=prefix or None)
        try:
            return cls.model_validate(dict(values or {}))
        except ValidationError as e:
            raise located(e, cls, source, prefix) from None

    def set_options(self) -> dict:
        """Only what was given explicitly (YAML, flags): what a stage key or a saved config should hold."""
        return self.model_dump(exclude_unset=True)


def subset(cls: type[Options], name: str, fields: tuple[str, ...], help: Mapping[str, str] = ()) -> type[Options]:
    """An options model with some of `cls`'s fields, each exactly as declared there (a command that
    takes only these options still has one declaration of each). `help` rewords a field's help where
    the command gives it a narrower meaning (chat's `seed` samples replies; there is no MMMLU sample)."""
    import copy

    from pydantic import create_model

    def declared(field: str):
        info = cls.model_fields[field]
        if field in dict(help):
            info = copy.copy(info)
            info.description = dict(help)[field]
        return (info.annotation, info)

    return create_model(name, __base__=Options, **{f: declared(f) for f in fields})


def _dotted(prefix: str, loc: tuple) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _unwrap(annotation):
    """The model class a (possibly Optional / list / Annotated) annotation holds, else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        for arg in typing.get_args(annotation):
            found = _unwrap(arg)
            if found is not None:
                return found
        return None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _model_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The options model that owns the key at `loc` (for listing its known keys)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part)
        inner = _unwrap(field.annotation) if field is not None else None
        if inner is None:
            return cls
        cls = inner
    return cls


def located(error: ValidationError, cls: type[BaseModel], source, prefix: str = "") -> InputError:
    """The first validation error as `source: field 'a.b[1]': message` (pydantic's own words)."""
    first = error.errors(include_url=False)[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    key = _dotted(prefix, loc)
    if first["type"] == "extra_forbidden":
        owner = _model_at(cls, loc[:-1])
        known = sorted(owner.model_fields) if owner else []
        return InputError(source, f"unknown key (known: {', '.join(known)})", field=key)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        return InputError(source, "missing", field=key)
    got = first.get("input")
    if not isinstance(got, Mapping):
        message += f", got {got!r}"
    return InputError(source, message, field=key or None)


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from a file; a missing file, bad UTF-8 or bad YAML is an InputError with its line."""
    import yaml

    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError(source, "config file not found") from None
    except UnicodeDecodeError as e:
        raise InputError(source, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(source, f"invalid YAML: {getattr(e, 'problem', None) or e}",
                         line=mark.line + 1 if mark else None) from None
    if not isinstance(raw, dict):
        raise InputError(source, "expected a mapping at the top level")
    return raw


def set_dotted(mapping: dict, dotted: str, value) -> None:
    """`set_dotted(d, "eval.limit", 3)` sets d["eval"]["limit"], creating sections as needed."""
    *parents, last = dotted.split(".")
    for part in parents:
        child = mapping.setdefault(part, {})
        if not isinstance(child, dict):
            raise InputError("--set", f"{part!r} is not a section", field=dotted)
        mapping = child
    mapping[last] = value


def parse_override(item: str) -> tuple[str, Any]:
    """'eval.limit=3' -> ("eval.limit", 3); the value is read as YAML (lists, numbers, null)."""
    import yaml

    dotted, sep, raw = item.partition("=")
    if not sep or not dotted.strip():
        raise InputError("--set", f"expected KEY=VALUE, got {item!r}")
    try:
        return dotted.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise InputError("--set", f"the value of {dotted.strip()!r} is not valid YAML: {e}") from None


# ------------------------------------------------------------------------------------ CLI flags


def _scalar(annotation) -> tuple[type, bool]:
    """(the click type of a flag for `annotation`, whether its value is a comma-separated list)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _scalar(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar(args[0]) if len(args) == 1 else (str, False)
    if origin in (list, tuple):
        return str, True
    if origin is Literal:
        return type(typing.get_args(annotation)[0]), False
    if annotation in (bool, int, float, str):
        return annotation, False
    if annotation is Path:
        return Path, False
    return str, False


def _choices(annotation) -> tuple:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return typing.get_args(annotation)
    return next((c for a in typing.get_args(annotation) if (c := _choices(a))), ())


def _help(field) -> str:
    text = field.description or ""
    choices = _choices(field.annotation)
    if choices and "|" not in text:
        text += f" (one of: {', '.join(map(str, choices))})"  # not [..]: rich would read it as markup
    if not field.is_required() and field.default not in (None, "", [], ()) and not callable(field.default):
        text += f" (default: {field.default})"
    return text.strip()


def _flag(name: str, field) -> str:
    extra = field.json_schema_extra or {}
    return extra.get("flag") or "--" + name.replace("_", "-")


def cli_command(cls: type[Options], *, fields: tuple[str, ...] | None = None, nested: Mapping[str, type] = (),
                rename: Mapping[str, str] = ()):
    """Decorator: `fn(given: dict, **own_params)` becomes a Typer command with one flag per field of `cls`.

    `given` holds only the flags the user typed, under their field names (a nested options model, e.g.
    `judge`, gets flags `--judge-<field>` and arrives as a dict). Lists are comma-separated. The
    function's own parameters (e.g. `--config`) stay as it declares them. Fields whose schema extra says
    `cli=False` get no flag; `rename` maps a field to another flag name.
    """
    rename = dict(rename)

    def params_of(model, prefix: str = ""):
        out = []
        for name, field in model.model_fields.items():
            if (field.json_schema_extra or {}).get("cli") is False or (fields and not prefix and name not in fields):
                continue
            key = prefix + name
            if name in dict(nested) and not prefix:
                out += params_of(dict(nested)[name], prefix=f"{name}__")
                continue
            kind, is_list = _scalar(field.annotation)
            flag = rename.get(key) or ("--" + key.replace("__", "-").replace("_", "-") if prefix else _flag(name, field))
            decls = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
            option = typer.Option(None, *decls, help=_help(field) + (" (comma-separated)" if is_list else ""))
            out.append((key, inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=option,
                                               annotation=kind | None), is_list))
        return out

    declared = params_of(cls)
    lists = {key for key, _, is_list in declared if is_list}

    def decorate(fn: Callable):
        hints = typing.get_type_hints(fn)  # real types: the module may use `from __future__ import annotations`
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(fn).parameters.values() if p.name != "given"]

        @functools.wraps(fn)
        def command(**kwargs):
            given: dict = {}
            for key, _, _ in declared:
                value = kwargs.pop(key, None)
                if value is None:
                    continue
                if key in lists:
                    value = [v.strip() for v in str(value).split(",") if v.strip()]
                section, _, name = key.rpartition("__")
                (given.setdefault(section, {}) if section else given)[name] = value
            return fn(given, **kwargs)

        parameters = [p for _, p, _ in declared] + own
        command.__signature__ = inspect.Signature(parameters)
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        del command.__wrapped__  # typer must read our signature, not fn's
        return command

    return decorate
