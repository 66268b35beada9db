"""`langshift chat`, `langshift export` and `langshift push`: what happens to a model after training.

MODEL is anything langshift loads -- a training output, a LoRA adapter directory, a hub id, a `.gguf`,
`smollm2` -- or the output directory of `langshift run`, which stands for its best CLO model
(`langshift.export.best`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from langshift.eval.config import EvalConfig
from langshift.files import InputError
from langshift.options import cli_command, subset

MODEL_HELP = "Training output, LoRA adapter dir, hub id, .gguf, 'smollm2', or a `langshift run` output dir."
# MODEL can be given as `--model`, as in `train` and `eval`, or positionally, as these commands always took it.
MODEL_ARGUMENT = typer.Argument(None, help=MODEL_HELP + " Or give it as --model.", show_default=False)
MODEL_OPTION = typer.Option(None, "--model", help="The model (as MODEL).", show_default=False)
# Sampling exactly as the evaluation declares it (defaults and ranges: paper App. B).
ChatOptions = subset(EvalConfig, "ChatOptions", ("temperature", "top_p", "max_new_tokens", "seed", "gguf_file"), help={
    "seed": "Seed of sampling.", "max_new_tokens": "Longest reply, in tokens.",
    "gguf_file": "GGUF file inside MODEL (a hub repo or directory)."})


def one_model(positional: str | None, option: str | None) -> str:
    """The model a command was given, as MODEL or as --model (not two different ones, not none)."""
    if positional and option and positional != option:
        raise InputError("--model", f"two models given: MODEL {positional!r} and --model {option!r}; give one")
    if not (positional or option):
        raise InputError("MODEL", "no model given: pass it as MODEL or --model")
    return positional or option


def _model_arg(value: str, what: str = "MODEL") -> str:
    """A MODEL argument: a `langshift run` directory stands for its best CLO model; a local path that
    does not exist is said now, not as the hub's complaint about a repo id."""
    from langshift.export.best import resolve
    from langshift.model_ref import check_model_ref

    try:
        return check_model_ref(resolve(value))
    except ValueError as e:
        raise InputError(what, str(e)) from None


def _quiet_loading() -> None:
    """Model loading chatter (progress bars, deprecation notes) would run into the conversation."""
    import warnings

    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


@cli_command(ChatOptions)
def chat(
    given: dict,
    model: str = MODEL_ARGUMENT,
    model_option: str = MODEL_OPTION,
    compare: str = typer.Option(None, "--compare", help="A second model: both answer, side by side."),
    prompt: str = typer.Option(None, "--prompt", help="Answer this once and exit (for scripts)."),
    system: str = typer.Option(None, "--system", help="System message (also /system in the chat)."),
) -> None:
    """Talk to a model in the chat format it was trained and evaluated with; replies stream as decoded."""
    from langshift.chat import Sampling, Session, load_bot

    o = ChatOptions.parse(given, source="command line")
    names = [_model_arg(one_model(model, model_option))] + ([_model_arg(compare, "--compare")] if compare else [])
    _quiet_loading()
    bots = [load_bot(m, gguf_file=o.gguf_file if i == 0 else None, system=system) for i, m in enumerate(names)]
    if len(bots) == 2 and bots[0].name == bots[1].name:
        bots[0].name, bots[1].name = f"A: {bots[0].name}", f"B: {bots[1].name}"
    session = Session(bots, Sampling(o.temperature, o.top_p, o.max_new_tokens, o.seed))
    if prompt is not None:
        session.ask(prompt)
        return
    if sys.stdin.isatty():
        import readline  # noqa: F401  (line editing and history for input())
    session.repl()


def export(
    model: str = MODEL_ARGUMENT,
    model_option: str = MODEL_OPTION,
    gguf: Path = typer.Option(..., "--gguf", help="The GGUF file to write."),
    type_: str = typer.Option("f16", "--type", help="f16 (exact weights in half precision) or q8_0 (8-bit)."),
    gguf_file: str = typer.Option(None, "--gguf-file", help="GGUF file inside a hub repo or directory."),
    modelfile: bool = typer.Option(True, "--modelfile/--no-modelfile", help="Write an Ollama Modelfile next to it."),
) -> None:
    """Write MODEL as a GGUF file for llama.cpp, Ollama and LM Studio (LoRA adapters merged first)."""
    from langshift import models
    from langshift.export.gguf import OUT_TYPES, arch_of, export_gguf
    from langshift.export.modelfile import write_modelfile
    from langshift.files import check_output_file

    if type_ not in OUT_TYPES:
        raise ValueError(f"--type must be one of {', '.join(OUT_TYPES)}, got {type_!r}")
    check_output_file(gguf, "--gguf")
    model = _model_arg(one_model(model, model_option))
    _quiet_loading()
    loaded = models.load(model, gguf_file, dtype="float32")
    arch_of(loaded[0])  # an unsupported architecture is said before any file is touched
    trained = _training_output(model)
    out = export_gguf(model, gguf, type_, loaded=loaded, name=Path(trained).name, meta=_card_meta(trained))
    typer.echo(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {type_})")
    if modelfile:
        mf = write_modelfile(out, loaded[1])
        typer.echo(f"wrote {mf}\n  ollama create {_ollama_name(out)} -f {mf}")
    typer.echo(f"  python -m llama_cpp.server --model {out}     (or: llama-server -m {out})")


def _ollama_name(path: Path) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in path.stem.lower())


def _training_output(model: str) -> str:
    """The training output a model argument belongs to: a LoRA run's `OUT/adapter` belongs to `OUT`."""
    from langshift.models import is_adapter_dir

    return str(Path(model).parent) if is_adapter_dir(model) else model


def _card_meta(model: str) -> dict:
    """GGUF `general.*` facts from the training output's record, when it is one."""
    from langshift.card import TAGS, base_model, read_record

    if not (Path(model) / "config.yaml").is_file():  # not a training output: what the alias table knows
        license_ = base_model(model)[1]
        return {"license": license_} if license_ else {}
    cfg = read_record(model)["config"]
    base, license_ = base_model(str(cfg.get("model", "")), cfg.get("gguf_file"))
    langs = [c for c in (cfg.get("lang"), "en") if c]
    return {"base_model": base, "license": license_, "languages": langs, "tags": [*TAGS, cfg.get("method", "")]}


def push(
    model_dir: str = typer.Argument(None, help="A training output (or a `langshift run` output dir: its best CLO model). "
                                    "Or give it as --model.", show_default=False),
    model_option: str = MODEL_OPTION,
    repo: str = typer.Option(..., "--repo", help="Hub repository, OWNER/NAME (created if missing)."),
    private: bool = typer.Option(False, "--private", help="Create the repository private."),
) -> None:
    """Upload a trained model with its model card (README.md) to the Hugging Face Hub."""
    from langshift.export.hub import plan_upload, upload

    plan = plan_upload(_model_arg(one_model(model_dir, model_option)), repo, private=private)
    typer.echo(f"uploading {len(plan.files)} files from {plan.folder} to {plan.repo_id}: {', '.join(plan.files)}")
    try:
        url = upload(plan)
    except OSError as e:  # offline, unreachable, refused (huggingface_hub's errors are OSErrors): exit 2
        raise OSError(f"upload to {plan.repo_id} failed: {e}") from None
    typer.echo(f"uploaded: {url}")
