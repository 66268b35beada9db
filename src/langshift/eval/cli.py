"""`langshift eval belebele | mmmlu | generate | ...`: evaluate one model on one benchmark and language.

Each benchmark command writes its per-item rows and `OUT/results.json`; several commands may share
one OUT directory, their results are merged there under `results[task][lang]`.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from langshift.cli_support import user_errors
from langshift.files import InputError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)





def _load(model: str, gguf_file: str | None, dtype: str | None, device: str | None):
    from langshift.models import load

    return load(model, gguf_file, dtype=dtype, device=device)


def save_results(out: Path, task: str, lang: str, model: str, result: dict) -> Path:
    """Merge `result` into `out/results.json` as `results[task][lang]`, keeping what other commands wrote."""
    import json

    from langshift.files import write_json

    path = Path(out) / "results.json"
    merged = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    merged.setdefault("model", model)
    merged.setdefault(task, {})[lang] = result
    return write_json(path, merged)


@app.command()
@user_errors
def belebele(
    model: str = typer.Option("smollm2", help="Hub id, local dir, .gguf file, or 'smollm2' (embedded)."),
    gguf_file: str = typer.Option(None, help="GGUF file inside --model (a hub repo or directory)."),
    lang: str = typer.Option(..., help="Language code: en, sw, de, zh, ko, id, yo."),
    data: str = typer.Option("facebook/belebele", help="Hub dataset id or local JSONL in BELEBELE's schema."),
    out: Path = typer.Option(..., help="Output directory (results.json, belebele.<lang>.jsonl)."),
    limit: int = typer.Option(None, help="Only the first N items."),
    batch_size: int = typer.Option(8, help="Questions per forward pass."),
    dtype: str = typer.Option(None, help="float32 | bfloat16 | float16 (default: fp32 on CPU, bf16 on GPU)."),
    device: str = typer.Option(None, help="cpu | cuda | cuda:1 ..."),
):
    """BELEBELE accuracy by log-likelihood of the option labels (Table 7 templates)."""
    from langshift.eval.belebele import evaluate_belebele, load_belebele
    from langshift.languages import get_language

    code = get_language(lang).code
    items = load_belebele(data, code, limit=limit)
    m, tok = _load(model, gguf_file, dtype, device)
    start = time.perf_counter()
    result = evaluate_belebele(m, tok, items, code, out_dir=out, batch_size=batch_size)
    result["seconds"] = round(time.perf_counter() - start, 2)
    save_results(out, "belebele", code, model, result)
    typer.echo(
        f"belebele {code}: accuracy {100 * result['accuracy']:.1f} ± {100 * result['stderr']:.1f} "
        f"(n={result['n']}) -> {out / 'results.json'}"
    )


@app.command()
@user_errors
def mmmlu(
    model: str = typer.Option("smollm2", help="Hub id, local dir, .gguf file, or 'smollm2' (embedded)."),
    gguf_file: str = typer.Option(None, help="GGUF file inside --model (a hub repo or directory)."),
    lang: str = typer.Option(..., help="Language code: en, sw, de, zh, ko, id, yo."),
    data: str = typer.Option(
        "openai/MMMLU", help="Hub dataset id (English: MMLU) or local JSONL in MMMLU's schema."
    ),
    out: Path = typer.Option(..., help="Output directory (results.json, mmmlu.<lang>.jsonl, generations)."),
    limit: int = typer.Option(None, help="Only the first N items (after --sample)."),
    sample: int = typer.Option(None, help="N items stratified by subject."),
    seed: int = typer.Option(0, help="Sampling seed (regeneration k uses seed + k) and --sample seed."),
    max_new_tokens: int = typer.Option(512),
    retries: int = typer.Option(3, help="Regenerations when no answer can be extracted (paper: 3)."),
    temperature: float = typer.Option(0.6),
    top_p: float = typer.Option(0.9),
    batch_size: int = typer.Option(8),
    dtype: str = typer.Option(None),
    device: str = typer.Option(None),
):
    """MMMLU accuracy by generation and answer extraction (Table 6 prompts)."""
    from langshift.eval.mmmlu import evaluate_mmmlu, load_mmmlu
    from langshift.languages import get_language

    code = get_language(lang).code
    items = load_mmmlu(data, code, limit=limit, sample=sample, seed=seed)
    m, tok = _load(model, gguf_file, dtype, device)
    start = time.perf_counter()
    result = evaluate_mmmlu(
        m,
        tok,
        items,
        code,
        out_dir=out,
        max_new_tokens=max_new_tokens,
        retries=retries,
        seed=seed,
        batch_size=batch_size,
        temperature=temperature,
        top_p=top_p,
    )
    result["seconds"] = round(time.perf_counter() - start, 2)
    save_results(out, "mmmlu", code, model, result)
    typer.echo(
        f"mmmlu {code}: accuracy {100 * result['accuracy']:.1f} ± {100 * result['stderr']:.1f} "
        f"(n={result['n']}, no answer {100 * result['extraction_failure_rate']:.0f}%, "
        f"{result['regenerations']} regenerations) -> {out / 'results.json'}"
    )


@app.command()
@user_errors
def generate(
    model: str = typer.Option("smollm2", help="Hub id, local dir, .gguf file, or 'smollm2' (embedded)."),
    gguf_file: str = typer.Option(None),
    prompts: Path = typer.Option(..., help="JSONL with an id and a prompt per line."),
    out: Path = typer.Option(..., help="Output JSONL {id, prompt, response}; rerunning resumes it."),
    field: str = typer.Option(
        "prompt", help="Field holding the prompt text (e.g. 'sw' in demo prompts.jsonl)."
    ),
    id_field: str = typer.Option("id", help="Field holding the id (default: line number when absent)."),
    system: str = typer.Option(None, help="System prompt."),
    max_new_tokens: int = typer.Option(256),
    temperature: float = typer.Option(0.6),
    top_p: float = typer.Option(0.9),
    seed: int = typer.Option(0),
    batch_size: int = typer.Option(8),
    limit: int = typer.Option(None, help="Only the first N prompts."),
    backend: str = typer.Option("hf", help="hf | vllm"),
    dtype: str = typer.Option(None),
    device: str = typer.Option(None),
):
    """Sample responses with the chat format used in training (top-p 0.9, temperature 0.6)."""
    from langshift.eval.generate import generate_responses
    from langshift.files import iter_jsonl

    rows = []
    for line, row in iter_jsonl(prompts):
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise InputError(prompts, "missing or empty prompt text", line=line, field=field)
        rows.append({"id": str(row.get(id_field, line)), "prompt": row[field]})
    rows = rows[:limit] if limit else rows
    if backend == "vllm":
        from langshift.models import load_tokenizer, resolve_model

        spec = resolve_model(model, gguf_file)
        m, tok = spec.path, load_tokenizer(spec)
    else:
        m, tok = _load(model, gguf_file, dtype, device)
    start = time.perf_counter()
    done = generate_responses(
        m,
        tok,
        rows,
        out,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        batch_size=batch_size,
        system=system,
        backend=backend,
    )
    typer.echo(f"{len(done)} responses in {out} ({time.perf_counter() - start:.1f} s)")


# ------------------------------------------------------------------------------------------------
# fidelity, alpaca and run commands follow (suite helper).


@app.command()
@user_errors
def fidelity(
    responses: Path = typer.Option(..., help='JSONL of {"prompt", "response"} lines (an "id" is optional).'),
    lang: str = typer.Option(..., help="The language the responses should be in."),
    out: Path = typer.Option(..., help='Output directory: results.json ("fidelity"), fidelity.items.jsonl.'),
    candidates: str = typer.Option(
        None, help="Comma-separated languages to choose among (default: all seven)."
    ),
    backend: str = typer.Option("lingua", help="lingua | cld2"),
):
    """Language fidelity: response-level and line-level (LPR) pass rates, no judge, no network."""
    from langshift.eval.fidelity import score_file

    cands = [c.strip() for c in candidates.split(",") if c.strip()] if candidates else None
    r = score_file(responses, lang, out, candidates=cands, backend=backend)
    lpr = "n/a" if r["line_pass_rate"] is None else f"{100 * r['line_pass_rate']:.1f}"
    typer.echo(
        f"fidelity {r['lang']}: response pass {100 * r['response_pass_rate']:.1f}% (n={r['n']}), "
        f"line pass {lpr}% (n={r['line_pass_rate_n']}) -> {out / 'results.json'}"
    )


@app.command()
@user_errors
def alpaca(
    a: Path = typer.Option(
        ..., help="Model A's responses: JSONL {id, prompt, response} or alpaca_eval JSON."
    ),
    b: Path = typer.Option(..., help="Baseline B's responses, same ids (e.g. the SFT model's)."),
    lang: str = typer.Option(..., help="Language of the instructions."),
    out: Path = typer.Option(
        ..., help="Output directory: results.json, alpaca.<lang>.jsonl, judge_cache.sqlite."
    ),
    instructions: str = typer.Option(
        None, help="Instructions JSONL, or tatsu-lab/alpaca_eval (en); default: A's prompts."
    ),
    judge_model: str = typer.Option("gpt-4o", help="Judge model name at the endpoint."),
    judge_base_url: str = typer.Option("https://api.openai.com/v1", help="OpenAI-compatible base URL."),
    judge_api_key_env: str = typer.Option(
        "OPENAI_API_KEY", help="Environment variable holding the key ('' for none)."
    ),
    name_a: str = typer.Option("A"),
    name_b: str = typer.Option("B"),
    limit: int = typer.Option(None, help="Only the first N instructions."),
    max_tokens: int = typer.Option(256),
    concurrency: int = typer.Option(4),
    structured: str = typer.Option(
        None, help="json_schema (OpenAI) | json_object (llama.cpp, vLLM): constrain replies."
    ),
):
    """Pairwise win rate of A over B, judged in both orders with the paper's App. C prompt."""
    from langshift.eval.alpaca import judge_pairwise, load_instructions, load_outputs
    from langshift.languages import get_language
    from langshift.llm_client import ChatClient

    code = get_language(lang).code
    outs_a, outs_b = load_outputs(a), load_outputs(b)
    if instructions:
        items = load_instructions(instructions, code, limit=limit)
    else:
        items = [
            {"id": k, "instruction": v["prompt"]} for k, v in outs_a.items() if isinstance(v["prompt"], str)
        ]
        items = items[:limit] if limit else items
        for item in items:
            other = outs_b.get(item["id"], {}).get("prompt")
            if other is not None and other != item["instruction"]:
                raise InputError(
                    b, f"id {item['id']!r} answers a different prompt than in {a}", field="prompt"
                )
    client = ChatClient(
        base_url=judge_base_url, model=judge_model, api_key_env=judge_api_key_env, concurrency=concurrency
    )
    result = judge_pairwise(
        items,
        {k: v["response"] for k, v in outs_a.items()},
        {k: v["response"] for k, v in outs_b.items()},
        code,
        client,
        cache_path=out / "judge_cache.sqlite",
        model_a=name_a,
        model_b=name_b,
        judgments_path=out / f"alpaca.{code}.jsonl",
        max_tokens=max_tokens,
        structured=structured,
    )
    result.pop("items")
    save_results(out, "alpaca", code, name_a, result)
    wr = (
        "n/a"
        if result["win_rate"] is None
        else f"{100 * result['win_rate']:.1f} ± {100 * result['win_rate_stderr']:.1f}"
    )
    typer.echo(
        f"alpaca {code}: {name_a} vs {name_b} win rate {wr} (n={result['n']}, invalid {result['invalid']}, "
        f"{result['usage']['this_run']['requests']} requests) -> {out / 'results.json'}"
    )


@app.command("run")
@user_errors
def run_suite(
    config: Path = typer.Option(
        None, help="YAML/JSON with EvalConfig fields; options given here override it."
    ),
    model: str = typer.Option(None, help="Hub id, local dir, .gguf file, or 'smollm2' (embedded)."),
    gguf_file: str = typer.Option(None),
    lang: str = typer.Option(None, help="Target language."),
    tasks: str = typer.Option(None, help="Comma-separated: fidelity,belebele,mmmlu,alpaca (default: all)."),
    out: Path = typer.Option(None, help="Output directory."),
    prompts: str = typer.Option(None, help="Open prompts JSONL (default: the demo prompts.jsonl)."),
    belebele: str = typer.Option(None, help="BELEBELE hub id or local JSONL."),
    mmmlu: str = typer.Option(None, help="MMMLU hub id or local JSONL."),
    limit: int = typer.Option(None),
    mmmlu_sample: int = typer.Option(None),
    max_new_tokens: int = typer.Option(None),
    seed: int = typer.Option(None),
    batch_size: int = typer.Option(None),
    english: bool = typer.Option(None, "--english/--no-english", help="Also evaluate in English."),
    judge_model: str = typer.Option(None),
    judge_base_url: str = typer.Option(None),
    judge_api_key_env: str = typer.Option(None),
    baseline_responses: str = typer.Option(None, help="A baseline run's directory (responses.<lang>.jsonl)."),
    trust_remote_code: bool = typer.Option(None, "--trust-remote-code/--no-trust-remote-code"),
):
    """The whole suite for one model and language: results.json, report.md, results.png."""
    import yaml

    from langshift.eval.suite import EvalConfig, evaluate

    d = yaml.safe_load(config.read_text(encoding="utf-8")) if config else {}
    given = dict(
        model=model,
        gguf_file=gguf_file,
        lang=lang,
        tasks=tasks,
        out=str(out) if out else None,
        prompts=prompts,
        belebele=belebele,
        mmmlu=mmmlu,
        limit=limit,
        mmmlu_sample=mmmlu_sample,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
        english=english,
        baseline_responses=baseline_responses,
        trust_remote_code=trust_remote_code,
    )
    d.update({k: v for k, v in given.items() if v is not None})
    judge = {
        k: v
        for k, v in dict(model=judge_model, base_url=judge_base_url, api_key_env=judge_api_key_env).items()
        if v is not None
    }
    if judge:
        d["judge"] = {**(d.get("judge") or {}), **judge}
    for key in ("model", "lang", "out"):
        if not d.get(key):
            raise ValueError(f"--{key} is required (or give it in --config)")
    state = evaluate(EvalConfig.from_dict(d))
    typer.echo(f"{', '.join(t for t in state['meta']['tasks'])} done -> {Path(d['out']) / 'report.md'}")
