"""Batched response generation with the paper's sampling settings, written as it goes, resumable.

Each prompt is wrapped by `langshift.models.chat_format` -- the exact text training puts before a
response -- so a model is asked the way it was taught. Sampling follows the paper (App. B):
nucleus sampling with top-p 0.9 at temperature 0.6 (no top-k cut); temperature 0 means greedy.

The HF path runs `langshift.eval.decode` (HF `generate`'s computation with exact top-k-first
nucleus sampling, and finished rows dropped from the batch). Batches are formed from prompts sorted by token length (least padding; longest first, so an
out-of-memory error shows up at once) and left-padded, as decoder-only `generate` requires. Every
batch is seeded with `hash(seed, ids in the batch)`, so the same prompts with the same seed give the
same responses on CPU. A batch's rows are appended to `out_path` (JSONL) as soon as it finishes; a
rerun skips ids already there and tolerates the torn last line a killed run leaves. (A resumed run
forms different batches for what is left, so its samples are as valid but not bitwise those of an
uninterrupted run.) Each row carries `settings`, a short hash of everything besides the prompt and the
model that shaped it (`generation_key`); a rerun reuses only rows with its own key and generates the
others again, so a run with corrected settings never keeps answers made with the wrong ones.

`backend="vllm"` sends the same token ids to vLLM (`model` is then a model path or a `vllm.LLM`);
it is the path for real models at scale and needs `pip install vllm` and a GPU. `backend="llamacpp"`
sends them to llama.cpp on the CPU (`eval/llamacpp.py`: an f16 GGUF of the model, continuous batching
in a child process); a model whose architecture the GGUF export does not know is generated with torch,
said once. Neither is faster everywhere: in an evaluation's own setting on a quiet 2-core AMD EPYC,
llama.cpp took 0.985x the torch path's time for SmolLM2 at 150 prompts x 4 samples, 0.74x at one sample per
prompt, and 0.55x-0.73x for Gemma-3-270M, with its large vocabulary; its fidelity is the same within the
CIs (bench/eval_generate.py --eval-setting; README, "llama.cpp"). `backend="auto"` picks one of the two per
model shape, machine and setting from a remembered probe of both (`eval/backend_pick.py`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from langshift.eval.decode import prefill, sample
from langshift.files import InputError, append_jsonl, drop_torn_tail, iter_jsonl, stable_hash, write_jsonl
from langshift.models import chat_format, needs_bos
from langshift.progress import progress_bar

log = logging.getLogger("langshift")


def generation_key(*, max_new_tokens: int, temperature: float, top_p: float, seed: int, system: str | None,
                   backend: str, samples: int = 1, retries: int = 0) -> str:
    """What a response depends on besides its prompt and the model, as the 12-character `settings` of
    its row (regenerations count only when an `accept` check asks for them; greedy decoding, temperature
    0, depends on neither seed nor top-p)."""
    seed, top_p = (None, None) if temperature == 0 else (int(seed), float(top_p))
    return stable_hash({"max_new_tokens": max_new_tokens, "temperature": float(temperature), "top_p": top_p,
                        "seed": seed, "system": system, "backend": backend, "samples": samples,
                        "retries": retries}, length=12)


def generate_responses(
    model,
    tokenizer,
    prompts: list[dict],
    out_path: str | os.PathLike,
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.6,
    top_p: float = 0.9,
    seed: int = 0,
    batch_size: int = 8,
    system: str | None = None,
    backend: str = "hf",
    accept=None,
    retries: int = 0,
    samples: int = 1,
    torch_if_crash: bool = False,
) -> list[dict]:
    """Responses `{"id", "prompt", "response"}` for `prompts` (`{"id", "prompt"}`), in their order.

    `torch_if_crash`: a llama.cpp that crashes is named in a warning and torch generates instead (what
    `auto` does, which picked llama.cpp for speed, not asked for it); otherwise the crash is the error.

    With `accept(response) -> bool`, a rejected response is sampled again, up to `retries` times,
    from the batch's prefilled prompt cache; rows then also hold "attempts" (1 + regenerations).
    With `samples` k > 1, each prompt gets k responses (rows also hold "sample": 0..k-1), sampled
    together from the batch's one prefill: k times the rows in the decode loop, one pass over the prompt.
    """
    out_path = Path(out_path)
    _check_prompts(prompts)
    _check_settings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, batch_size=batch_size,
                    samples=samples, retries=retries)
    if backend == "auto":  # torch or llama.cpp, whichever is measured faster for this model here
        from langshift.eval.backend_pick import resolve_backend

        backend = resolve_backend(backend, model, tokenizer, prompts, samples=samples, max_new_tokens=max_new_tokens,
                                  batch_size=batch_size, temperature=temperature, top_p=top_p, system=system,
                                  regenerations=accept is not None).backend
        torch_if_crash = True
    if (accept is not None or backend not in ("hf", "llamacpp")) and samples > 1:
        raise ValueError("samples > 1 runs on the 'hf' and 'llamacpp' backends, without regenerations")
    if accept is not None and backend != "hf":
        raise ValueError("regenerations (accept=...) run on the 'hf' backend only")
    key = generation_key(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                         system=system, backend=backend, samples=samples, retries=retries if accept else 0)
    done = _load_done(out_path, prompts, key)
    todo = [p for p in prompts if any((p["id"], s) not in done for s in range(samples))]
    if todo:
        args = (
            model,
            tokenizer,
            todo,
            out_path,
            max_new_tokens,
            temperature,
            top_p,
            seed,
            batch_size,
            system,
            key,
        )
        if backend == "hf":
            done.update(_generate_hf(*args, accept=accept, retries=retries, samples=samples))
        elif backend == "vllm":
            done.update(_generate_vllm(*args))
        elif backend == "llamacpp":
            from langshift.native import NativeCrash

            try:
                done.update(_generate_llamacpp(*args, samples=samples))
            except NativeCrash as e:
                if not torch_if_crash:
                    raise
                log.warning("%s; generating with torch instead", e)
                return generate_responses(model, tokenizer, prompts, out_path, max_new_tokens=max_new_tokens,
                                          temperature=temperature, top_p=top_p, seed=seed, batch_size=batch_size,
                                          system=system, backend="hf", samples=samples)
        else:
            raise ValueError(f"unknown generation backend {backend!r}; use 'auto', 'hf', 'llamacpp' or 'vllm'")
    return [done[(p["id"], s)] for p in prompts for s in range(samples)]


# ------------------------------------------------------------------------------------ bookkeeping


def _check_prompts(prompts: list[dict]) -> None:
    seen = set()
    for i, p in enumerate(prompts):
        if not isinstance(p.get("prompt"), str) or "id" not in p:
            raise ValueError(f"prompt #{i} needs a string 'prompt' and an 'id': {str(p)[:120]}")
        if p["id"] in seen:
            raise ValueError(f"duplicate prompt id {p['id']!r}")
        seen.add(p["id"])


def _check_settings(*, max_new_tokens, temperature, top_p, batch_size, samples, retries) -> None:
    """Refuse settings that would write empty or meaningless responses, before anything is generated."""
    checks = {"max_new_tokens": max_new_tokens >= 1, "temperature": temperature >= 0, "top_p": 0 < top_p <= 1,
              "batch_size": batch_size >= 1, "samples": samples >= 1, "retries": retries >= 0}
    wrong = [name for name, ok in checks.items() if not ok]
    if wrong:
        given = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
                 "batch_size": batch_size, "samples": samples, "retries": retries}
        raise ValueError("out of range: " + ", ".join(f"{n}={given[n]!r}" for n in wrong)
                         + " (max_new_tokens, batch_size, samples >= 1; temperature >= 0; 0 < top_p <= 1)")


def _load_done(out_path: Path, prompts: list[dict], key: str) -> dict:
    """Rows already generated with these settings (`key`), by (id, sample). Rows made with other settings
    are removed from the file, to be generated again; a torn last line is dropped before we append."""
    if not out_path.exists():
        return {}
    drop_torn_tail(out_path)
    rows = [row for _, row in iter_jsonl(out_path, skip_torn_tail=True)]
    stale = sum(row.get("settings") != key for row in rows)
    if stale:
        log.warning("%s: %d response(s) were generated with other settings; they are generated again",
                    out_path, stale)
        rows = [row for row in rows if row.get("settings") == key]
        write_jsonl(out_path, rows)  # one id, one row: readers of the file never see both versions
    wanted = {p["id"]: p["prompt"] for p in prompts}
    done = {}
    for row in rows:
        if row.get("id") in wanted:
            if row.get("prompt") != wanted[row["id"]]:
                raise InputError(
                    out_path,
                    f"holds a response for id {row['id']!r} to a different prompt; write to a new file",
                    field="prompt",
                )
            done[(row["id"], row.get("sample", 0))] = row
    return done


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of a rendered prompt: the template spells out special tokens; add BOS only if missing."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return [tokenizer.bos_token_id, *ids] if needs_bos(tokenizer, text) else ids


def left_padded(ids: list[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of several prompts as one left-padded batch [rows, width] and its attention mask, as
    decoder-only generation requires."""
    width = max(len(row) for row in ids)
    input_ids = torch.tensor([[pad] * (width - len(row)) + row for row in ids], device=device)
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids], device=device)
    return input_ids, mask


def pad_id(tokenizer, stop: list[int]) -> int:
    """The id left padding uses: the tokenizer's pad token, else the first stop id."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop[0]


def _stop_ids(model, tokenizer, end: str) -> list[int]:
    """EOS of tokenizer and model, plus the turn-closing text when it is a single token."""
    ids = {tokenizer.eos_token_id}
    eos = model.generation_config.eos_token_id
    ids.update(eos if isinstance(eos, list) else [eos])
    end_ids = tokenizer(end, add_special_tokens=False).input_ids if end else []
    if len(end_ids) == 1:
        ids.add(end_ids[0])
    return sorted(i for i in ids if i is not None)


def _write_row(out_path: Path, prompt: dict, response: str, key: str, sample: int | None = None,
               attempts: int | None = None) -> dict:
    """Append one response row (every backend writes the same shape) and return it."""
    row = {"id": prompt["id"], "prompt": prompt["prompt"], "response": response, "settings": key}
    if sample is not None:
        row["sample"] = sample
    if attempts is not None:
        row["attempts"] = attempts
    append_jsonl(out_path, row)
    return row


def _cut(text: str, end: str) -> str:
    """The response stops where the turn-closing text first appears."""
    if end and end in text:
        text = text[: text.index(end)]
    return text.strip()


# ----------------------------------------------------------------------------------------- HF path


def _generate_hf(
    model, tokenizer, todo, out_path, max_new_tokens, temperature, top_p, seed, batch_size, system, key,
    accept=None, retries=0, samples=1,
):
    fmt = chat_format(tokenizer, system)
    ids = [encode_prompt(tokenizer, fmt.prompt_text(tokenizer, p["prompt"])) for p in todo]
    order = sorted(range(len(todo)), key=lambda i: -len(ids[i]))
    stop = _stop_ids(model, tokenizer, fmt.end)
    pad = pad_id(tokenizer, stop)
    end_tokens = len(tokenizer(fmt.end, add_special_tokens=False).input_ids) if fmt.end else 0

    def ends_turn(tokens: list[int]) -> bool:  # a turn end spelled in several tokens
        return fmt.end in tokenizer.decode(tokens[-(end_tokens + 2) :], skip_special_tokens=False)

    rows = {}
    model.eval()
    with progress_bar(total=len(todo), desc="generate", unit="prompt") as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            input_ids, mask = left_padded([ids[i] for i in batch], pad, model.device)
            torch.manual_seed(int(stable_hash(seed, [todo[i]["id"] for i in batch]), 16) % 2**63)
            prefix = prefill(model, input_ids, mask)
            if samples > 1:  # each prompt's row k times: k samples from one prefill, decoded together
                prefix = prefix.select([r for r in range(len(batch)) for _ in range(samples)])
            rows_now = len(batch) * samples
            text, attempts, pending = {}, dict.fromkeys(range(rows_now), 0), list(range(rows_now))
            for _ in range(1 + (retries if accept else 0)):
                part = prefix.select(pending) if accept and retries else prefix
                new_tokens = sample(
                    model,
                    part,
                    max_new_tokens=max_new_tokens,
                    stop_ids=stop,
                    temperature=temperature,
                    top_p=top_p,
                    stop_text=ends_turn if end_tokens > 1 else None,  # one token: a stop id
                )
                for r, tokens in zip(pending, new_tokens, strict=True):
                    text[r] = _cut(tokenizer.decode(tokens, skip_special_tokens=True), fmt.end)
                    attempts[r] += 1
                pending = [r for r in pending if accept is not None and not accept(text[r])]
                if not pending:
                    break
            for r in range(len(batch) * samples):
                i, s = batch[r // samples], r % samples
                row = _write_row(out_path, todo[i], text[r], key, s if samples > 1 else None,
                                 attempts[r] if accept is not None else None)
                rows[(row["id"], s)] = row
            bar.update(len(batch))
    return rows


# ---------------------------------------------------------------------------------- llama.cpp path


def _generate_llamacpp(
    model, tokenizer, todo, out_path, max_new_tokens, temperature, top_p, seed, batch_size, system, key, samples=1,
):
    """Every prompt (k samples each) through llama.cpp in one child process; rows are written when it
    returns (a killed run generates them again: the child holds them until then)."""
    from langshift.eval.llamacpp import generate_ids, gguf_for

    gguf = gguf_for(model, tokenizer)
    if gguf is None:  # an architecture the export does not know: torch, said once by gguf_for
        return _generate_hf(model, tokenizer, todo, out_path, max_new_tokens, temperature, top_p, seed, batch_size,
                            system, key, samples=samples)
    fmt = chat_format(tokenizer, system)
    ids = [encode_prompt(tokenizer, fmt.prompt_text(tokenizer, p["prompt"])) for p in todo]
    jobs = [(i, s) for i in range(len(todo)) for s in range(samples)]
    seeds = [int(stable_hash(seed, todo[i]["id"], s), 16) % 2**63 for i, s in jobs]
    with progress_bar(total=len(jobs), desc="generate (llama.cpp)", unit="response") as bar:
        new = generate_ids(gguf, [ids[i] for i, _ in jobs], seeds, max_new_tokens=max_new_tokens,
                           temperature=temperature, top_p=top_p, stop_ids=_stop_ids(model, tokenizer, fmt.end),
                           progress=lambda done, total: bar.update(done - bar.n))
    rows = {}
    for (i, s), tokens in zip(jobs, new, strict=True):
        text = _cut(tokenizer.decode(tokens, skip_special_tokens=True), fmt.end)
        rows[(todo[i]["id"], s)] = _write_row(out_path, todo[i], text, key, s if samples > 1 else None)
    return rows


# -------------------------------------------------------------------------------------- vLLM path


def _generate_vllm(
    model, tokenizer, todo, out_path, max_new_tokens, temperature, top_p, seed, batch_size, system, key
):
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise RuntimeError("backend='vllm' needs vLLM: pip install 'langshift[vllm]' (GPU only)") from None
    llm = model if isinstance(model, LLM) else LLM(model=str(model), seed=seed)
    fmt = chat_format(tokenizer, system)
    params = SamplingParams(
        temperature=temperature,
        top_p=top_p if temperature > 0 else 1.0,
        max_tokens=max_new_tokens,
        seed=seed,
        stop=[fmt.end] if fmt.end else None,
    )
    rows, chunk = {}, max(batch_size, 256)  # vLLM schedules its own batches; chunks only bound lost work
    for start in progress_bar(range(0, len(todo), chunk), desc="generate (vllm)", unit="chunk"):
        part = todo[start : start + chunk]
        inputs = [
            {"prompt_token_ids": encode_prompt(tokenizer, fmt.prompt_text(tokenizer, p["prompt"]))}
            for p in part
        ]
        for p, out in zip(part, llm.generate(inputs, params, use_tqdm=False), strict=True):
            rows[(p["id"], 0)] = _write_row(out_path, p, _cut(out.outputs[0].text, fmt.end), key)
    return rows
