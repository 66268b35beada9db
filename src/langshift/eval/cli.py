"""`langshift eval run | belebele | mmmlu | generate | fidelity | alpaca`: evaluate one model.

`run` is the whole suite for one model and language. The single-benchmark commands run one task of the
task table in one language and merge their result into `OUT/results.json` under `results[task][lang]`,
so several commands may share one OUT directory. Every option is a field of `EvalConfig` (or, for the
two commands that read response files, of the models below), declared once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import typer
from pydantic import Field

from langshift.cli_support import ErrorBoundary
from langshift.eval.config import EvalConfig, JudgeConfig, LangCode
from langshift.eval.langid import BACKENDS
from langshift.files import InputError, check_output_dir, check_output_file, read_json, write_json
from langshift.options import Options, cli_command, subset

app = typer.Typer(cls=ErrorBoundary, no_args_is_help=True, add_completion=False, help=__doc__)

ON_ONE_MODEL = ("model", "gguf_file", "lang", "out", "limit", "batch_size", "dtype", "device")
ONE_LANGUAGE = {"lang": "Target language (one; `eval run` takes several).", "limit": "Items (default: all)."}
BelebeleOptions = subset(EvalConfig, "BelebeleOptions", (*ON_ONE_MODEL, "belebele"),
                         help={**ONE_LANGUAGE, "batch_size": "Questions per forward pass."})
MmmluOptions = subset(EvalConfig, "MmmluOptions", (*ON_ONE_MODEL, "mmmlu", "mmmlu_sample", "seed", "mmmlu_max_new_tokens",
                                                   "mmmlu_retries", "temperature", "top_p"),
                      help={**ONE_LANGUAGE, "batch_size": "Questions per forward pass."})
GenerateOptions = subset(EvalConfig, "GenerateOptions", ("model", "gguf_file", "limit", "batch_size", "dtype", "device",
                                                         "max_new_tokens", "temperature", "top_p", "seed",
                                                         "generation_backend"), help={
    "limit": "Only the first N prompts.", "batch_size": "Prompts per forward pass.", "seed": "Seed of sampling.",
    "max_new_tokens": "Longest response, in tokens."})


def save_results(out: Path, task: str, lang: str, model: str, result: dict) -> Path:
    """Merge `result` into `out/results.json` as `results[task][lang]`, keeping what other commands wrote."""
    path = Path(out) / "results.json"
    merged = read_json(path) if path.exists() else {}
    merged.setdefault("model", model)
    merged.setdefault(task, {})[lang] = result
    return write_json(path, merged)


def _one_task(task_name: str, options: Options) -> dict:
    """Run one task of the table in one language on one model; merge it into OUT/results.json."""
    from langshift.eval.suite import LazyModel
    from langshift.eval.tasks import TASKS, TaskContext

    cfg = EvalConfig.parse({**options.model_dump(), "tasks": [task_name], "english": False}, source="command line")
    if len(cfg.targets) > 1:
        raise InputError("command line", "one language per single-task command (`eval run` takes several)", field="lang")
    out = check_output_dir(cfg.out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = TASKS[task_name].run(TaskContext(cfg=cfg, out=out, model=LazyModel(cfg)), cfg.lang)
    result["seconds"] = round(time.perf_counter() - start, 2)
    save_results(out, task_name, cfg.lang, cfg.model, result)
    return result


def _summary(result: dict, metric: str) -> str:
    m = result["metrics"][metric]
    return "n/a" if m["value"] is None else f"{100 * m['value']:.1f} ± {100 * m['stderr']:.1f} (n={m['n']})"


@app.command()
@cli_command(BelebeleOptions, rename={"belebele": "--data"})
def belebele(given: dict):
    """BELEBELE accuracy by log-likelihood of the option labels (Table 7 templates)."""
    options = BelebeleOptions.parse(given, source="command line")
    result = _one_task("belebele", options)
    typer.echo(f"belebele {result['lang']}: accuracy {_summary(result, 'accuracy')} -> {options.out}/results.json")


@app.command()
@cli_command(MmmluOptions, rename={"mmmlu": "--data", "mmmlu_sample": "--sample",
                                   "mmmlu_max_new_tokens": "--max-new-tokens", "mmmlu_retries": "--retries"})
def mmmlu(given: dict):
    """MMMLU accuracy by generation and answer extraction (Table 6 prompts)."""
    options = MmmluOptions.parse(given, source="command line")
    r = _one_task("mmmlu", options)
    typer.echo(f"mmmlu {r['lang']}: accuracy {_summary(r, 'accuracy')}, no answer "
               f"{100 * r['extraction_failure_rate']:.0f}%, {r['regenerations']} regenerations "
               f"-> {options.out}/results.json")


@app.command()
@cli_command(GenerateOptions, rename={"generation_backend": "--backend"})
def generate(
    given: dict,
    prompts: Path = typer.Option(..., help="JSONL with an id and a prompt per line."),
    out: Path = typer.Option(..., help="Output JSONL {id, prompt, response}; rerunning resumes it."),
    field: str = typer.Option("prompt", help="Field holding the prompt text (e.g. 'sw' in demo prompts.jsonl)."),
    id_field: str = typer.Option("id", help="Field holding the id (default: line number when absent)."),
    system: str = typer.Option(None, help="System prompt."),
):
    """Sample responses with the chat format used in training (top-p 0.9, temperature 0.6)."""
    from langshift.eval.generate import generate_responses

    options = GenerateOptions.parse(given, source="command line")
    check_output_file(out, "--out")
    rows = _prompt_rows(prompts, field, id_field)
    rows = rows[: options.limit] if options.limit else rows
    if options.generation_backend == "vllm":
        from langshift.models import load_tokenizer, resolve_model

        spec = resolve_model(options.model, options.gguf_file)
        model, tok = spec.path, load_tokenizer(spec)
    else:
        from langshift.models import load

        model, tok = load(options.model, options.gguf_file, dtype=options.dtype, device=options.device)
    start = time.perf_counter()
    done = generate_responses(model, tok, rows, out, max_new_tokens=options.max_new_tokens,
                              temperature=options.temperature, top_p=options.top_p, seed=options.seed,
                              batch_size=options.batch_size, system=system, backend=options.generation_backend)
    typer.echo(f"{len(done)} responses in {out} ({time.perf_counter() - start:.1f} s)")


def _prompt_rows(path: Path, field: str, id_field: str) -> list[dict]:
    """{"id", "prompt"} of each line of a prompts file; a bad, repeated or missing prompt names its line."""
    from langshift.files import iter_jsonl

    rows, seen = [], {}
    for line, row in iter_jsonl(path):
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise InputError(path, "missing or empty prompt text", line=line, field=field)
        rid = str(row.get(id_field, line))
        if rid in seen:
            raise InputError(path, f"duplicate id {rid!r} (first at line {seen[rid]})", line=line, field=id_field)
        seen[rid] = line
        rows.append({"id": rid, "prompt": row[field]})
    if not rows:
        raise InputError(path, "no prompts in this file")
    return rows


class FidelityOptions(Options):
    responses: Path = Field(description='JSONL of {"prompt", "response"} lines (an "id" is optional).')
    lang: LangCode = Field(description="The language the responses should be in.")
    out: Path = Field(description="Output directory: results.json, fidelity.<lang>.jsonl.")
    candidates: list[LangCode] | None = Field(None, min_length=1, description="Languages to choose among (default: fidelity's seven, plus the target and English; not with --detector lcb).")
    detector: Literal[(*BACKENDS, "lcb")] = Field("lingua", description="Language identifier: lingua or cld2 for langshift's fidelity rates; lcb for the Language Confusion Benchmark's own procedure (fastText lid.176), which prints LPR, WPR and LCPR (and wpr_latin for de, id, sw).")  # type: ignore[valid-type]


@app.command()
@cli_command(FidelityOptions)
def fidelity(given: dict):
    """Language fidelity: response-level and line-level (LPR) pass rates, no judge, no network."""
    from langshift.eval.fidelity import score_file

    o = FidelityOptions.parse(given, source="command line")
    check_output_dir(o.out, "--out")
    if o.detector == "lcb":
        return _lcb_fidelity(o)
    r = score_file(o.responses, o.lang, o.out, candidates=o.candidates, backend=o.detector)
    save_results(o.out, "fidelity", r["lang"], str(o.responses), r)
    typer.echo(f"fidelity {r['lang']}: response pass {_summary(r, 'response_pass_rate')}, "
               f"line pass {_summary(r, 'line_pass_rate')} -> {o.out / 'results.json'}")


def _lcb_fidelity(o: FidelityOptions) -> None:
    """`eval fidelity --detector lcb`: the `confusion` task's rates on a responses file."""
    from langshift.eval.confusion import confusion_items, summarize
    from langshift.eval.fidelity import read_responses
    from langshift.files import write_jsonl

    if o.candidates:
        raise typer.BadParameter("does not apply to --detector lcb: LCB's fastText lid.176 chooses among its "
                                 "own 176 languages", param_hint="--candidates")
    rows = read_responses(o.responses)
    if not rows:
        raise InputError(o.responses, "no responses to score")
    items = confusion_items(rows, o.lang)
    r = summarize(items, o.lang)
    write_jsonl(o.out / f"confusion.{r['lang']}.jsonl", items)
    save_results(o.out, "confusion", r["lang"], str(o.responses), r)
    rates = ", ".join(f"{name.upper() if name != 'wpr_latin' else name} {_summary(r, name)}" for name in r["metrics"])
    typer.echo(f"language confusion (LCB) {r['lang']}: {rates} -> {o.out / 'results.json'}")


class PairwiseOptions(Options):
    a: Path = Field(description="Model A's responses: JSONL {id, prompt, response} or alpaca_eval JSON.")
    b: Path = Field(description="Baseline B's responses, same ids (e.g. the SFT model's).")
    lang: LangCode = Field(description="Language of the instructions.")
    out: Path = Field(description="Output directory: results.json, alpaca.<lang>.jsonl, judge_cache.sqlite.")
    instructions: str | None = Field(None, description="Instructions JSONL, or tatsu-lab/alpaca_eval (en); default: A's prompts.")
    name_a: str = Field("A", description="Name of A in the judgments.")
    name_b: str = Field("B", description="Name of B in the judgments.")
    limit: int | None = Field(None, ge=1, description="Only the first N instructions.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig)


@app.command()
@cli_command(PairwiseOptions, nested={"judge": JudgeConfig},
             rename={"judge__max_tokens": "--max-tokens", "judge__concurrency": "--concurrency",
                     "judge__structured": "--structured"})
def alpaca(given: dict):
    """Pairwise win rate of A over B, judged in both orders with the paper's App. C prompt."""
    from langshift.eval.alpaca import judge_pairwise
    from langshift.eval.alpaca_data import load_instructions, load_outputs
    from langshift.llm_client import ChatClient

    o = PairwiseOptions.parse(given, source="command line")
    check_output_dir(o.out, "--out")
    outs_a, outs_b = load_outputs(o.a), load_outputs(o.b)
    if o.instructions:
        items = load_instructions(o.instructions, o.lang, limit=o.limit)
    else:
        items = [{"id": k, "instruction": v["prompt"]} for k, v in outs_a.items() if isinstance(v["prompt"], str)]
        items = items[: o.limit] if o.limit else items
        for item in items:
            other = outs_b.get(item["id"], {}).get("prompt")
            if other is not None and other != item["instruction"]:
                raise InputError(o.b, f"id {item['id']!r} answers a different prompt than in {o.a}", field="prompt")
    client = ChatClient(base_url=o.judge.base_url, model=o.judge.model, api_key_env=o.judge.api_key_env or "",
                        concurrency=o.judge.concurrency)
    result = judge_pairwise(items, {k: v["response"] for k, v in outs_a.items()},
                            {k: v["response"] for k, v in outs_b.items()}, o.lang, client,
                            cache_path=o.out / "judge_cache.sqlite", model_a=o.name_a, model_b=o.name_b,
                            judgments_path=o.out / f"alpaca.{o.lang}.jsonl", max_tokens=o.judge.max_tokens,
                            structured=o.judge.structured)
    result.pop("items")
    save_results(o.out, "alpaca", o.lang, o.name_a, result)
    typer.echo(f"alpaca {o.lang}: {o.name_a} vs {o.name_b} win rate {_summary(result, 'win_rate')}, invalid "
               f"{result['invalid']}, {result['usage']['this_run']['requests']} requests -> {o.out / 'results.json'}")


@app.command("run")
@cli_command(EvalConfig, nested={"judge": JudgeConfig})
def run_suite(given: dict, config: Path = typer.Option(None, help="YAML/JSON with EvalConfig fields; flags override it.")):
    """The whole suite for one model and language: results.json, report.md, results.png."""
    from langshift.eval.suite import evaluate
    from langshift.options import read_yaml

    values = read_yaml(config) if config else {}
    judge = {**(values.get("judge") or {}), **given.pop("judge", {})}
    values.update(given)
    if judge:
        values["judge"] = judge
    cfg = EvalConfig.parse(values, source=str(config) if config else "command line")
    check_output_dir(cfg.out, "--out")
    state = evaluate(cfg)
    typer.echo(f"{', '.join(state['meta']['tasks'])} done -> {Path(cfg.out) / 'report.md'}")
