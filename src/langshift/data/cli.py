"""`langshift data english | translate | convert`: build cross-lingual training data."""

from __future__ import annotations

from pathlib import Path

import typer

from langshift.cli_support import user_errors

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command()
@user_errors
def english(
    source: str = typer.Option("oasst1", help="oasst1 | oasst1:PATH | jsonl:PATH | hf:NAME"),
    n: int = typer.Option(6400, help="How many pairs (paper: 6,400)."),
    out: Path = typer.Option(..., help="Output JSONL of {id, en_prompt, en_response, meta}."),
    format: str = typer.Option(None, help="Force a row shape: alpaca | prompt_response | messages."),
    prompt_field: str = typer.Option(None),
    response_field: str = typer.Option(None),
    messages_field: str = typer.Option(None),
    id_field: str = typer.Option(None),
    split: str = typer.Option(None, help="hf: split (default train)."),
    config: str = typer.Option(None),
):
    """Select English SFT pairs (oasst1 rule: first turn, highest rank first)."""
    from langshift.data.english import load_english
    from langshift.files import write_jsonl

    mapping = {
        k: v
        for k, v in dict(
            format=format,
            prompt_field=prompt_field,
            response_field=response_field,
            messages_field=messages_field,
            id_field=id_field,
            split=split,
            config=config,
        ).items()
        if v is not None
    }
    rows = load_english(source, n, **mapping)
    write_jsonl(out, rows)
    typer.echo(f"wrote {len(rows)} English pairs to {out}")


@app.command()
@user_errors
def translate(
    in_: str = typer.Option(..., "--in", help="English rows JSONL (from `data english`), or 'demo'."),
    lang: str = typer.Option(..., help="Target language (sw, de, zh, ko, id, yo, ...)."),
    translator: str = typer.Option("hf", help="hf | ctranslate2 | openai | precomputed"),
    out: Path = typer.Option(..., help="Output directory."),
    model: str = typer.Option(None, help="Translator model (hf default facebook/m2m100_1.2B)."),
    beam_size: int = typer.Option(None),
    max_length: int = typer.Option(None),
    batch_size: int = typer.Option(None),
    device: str = typer.Option(None),
    compute_type: str = typer.Option(None, help="ctranslate2: int8 | float16 | ... (default by device)."),
    base_url: str = typer.Option(None, help="openai: endpoint base URL (.../v1)."),
    api_key_env: str = typer.Option(None, help="openai: name of the env var holding the key."),
    concurrency: int = typer.Option(None, help="openai: requests in flight."),
    cache: Path = typer.Option(None, help="SQLite translation cache (default OUT/translation_cache.sqlite)."),
    val_size: float = typer.Option(0.05),
    seed: int = typer.Option(0),
    keep_filtered: bool = typer.Option(False, help="Write rejects to OUT/rejected.jsonl."),
    limit: int = typer.Option(None, help="Only the first N rows (dry run)."),
    detector: str = typer.Option("lingua", help="Language ID for the filter: lingua | cld2 | none."),
):
    """Translate English rows, filter, split, and write records.jsonl + dataset/ + data_card.md."""
    from langshift.data.build import build_dataset, read_rows
    from langshift.data.filters import FilterConfig
    from langshift.data.seed import demo_dir, demo_files
    from langshift.data.translators import make_translator

    if in_ == "demo":
        rows, rows_file = [], demo_dir()
        for f in demo_files():
            rows += read_rows(f)
    else:
        rows, rows_file = read_rows(in_), in_
    options = dict(
        model=model,
        beam_size=beam_size,
        max_length=max_length,
        batch_size=batch_size,
        device=device,
        compute_type=compute_type,
        base_url=base_url,
        api_key_env=api_key_env,
        concurrency=concurrency,
    )
    if translator == "precomputed":
        options = {}
    tr = make_translator(translator, **options)
    path = build_dataset(
        rows,
        lang,
        tr,
        out,
        val_size=val_size,
        seed=seed,
        keep_filtered=keep_filtered,
        limit=limit,
        cache_path=cache,
        filter_config=FilterConfig(detector=detector),
        rows_file=rows_file,
    )
    typer.echo(f"wrote {path}/records.jsonl, dataset/, data_card.md, filter_report.json")


@app.command()
@user_errors
def convert(
    model: str = typer.Option(..., help="transformers translator (hub id or dir)."),
    out: Path = typer.Option(..., help="CTranslate2 output directory."),
    quantization: str = typer.Option("int8", help="int8 (CPU) | float16 (GPU) | int8_float16 | float32."),
    force: bool = typer.Option(False, help="Overwrite an existing conversion."),
):
    """Convert a translator to CTranslate2 (tokenizer saved alongside) for `--translator ctranslate2`."""
    from langshift.data.translators import convert as ct2_convert

    path = ct2_convert(model, out, quantization=quantization, force=force)
    typer.echo(f"converted {model} -> {path} ({quantization})")
