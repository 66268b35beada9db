"""llama.cpp as the CPU's generation backend (`eval.generation_backend: llamacpp`), vLLM's place on a GPU.

The model under evaluation is exported once to an f16 GGUF, cached under its weights' fingerprint, and
llama.cpp decodes every prompt in one child process (`langshift.native`: a crash is a named error, never
a dead evaluation) with continuous batching: up to `parallel` sequences share each decode call, and a
finished sequence's slot takes the next prompt at once. The parent hands over token ids it encoded
itself, with the chat format, stop ids and per-prompt seeds of the torch path, and decodes the returned
ids with the same tokenizer, so prompts, turn ends and cut-offs are the torch path's by construction.

Sampling is `eval/decode.py`'s `sample_next` itself, run on llama.cpp's logits: logits / temperature,
then the nucleus (keep the descending-sorted token j iff the mass before it is < top_p) drawn from each
row's top 256 candidates, the whole vocabulary only when those hold less than top_p; argmax at
temperature 0. Each response draws with its own torch generator seeded from (seed, id, sample), so its
tokens do not depend on which responses share a decode call: the same distribution as the torch path,
not its random stream. Greedy replies equal the torch path's up to f16 rounding (near-ties can flip).

Measured (README, "llama.cpp"; bench/eval_generate.py): in tokens/s at 16 sequences, f16 llama.cpp runs
1.37x our torch loop at batch 24 on a quiet AMD EPYC (SmolLM2-135M, 2 threads) and 0.88x (SmolLM2) to
1.26x (Gemma-3-270M) on the Intel build machine; 73-96 % of its time is llama_decode itself. In an
evaluation's own setting on the AMD machine, llama.cpp took 0.985x torch's time for SmolLM2 at 150 prompts
x 4 samples (where torch decodes a batch's 16 prompts x 4 as 64 rows), and ran 1.36x-1.81x faster than
torch at one sample per prompt or for Gemma-3-270M, whose 262k-token head is where its f16 kernels pay. So the default,
`auto`, picks between the two per model shape, machine and setting from a probe of both
(`eval/backend_pick.py`). Its fidelity equals the torch path's in every setting measured: +0.8 [-4.5, +6.2]
points over 150 prompts x 4 samples (SmolLM2), -0.5 [-5.5, +4.5] over 50 x 4 (Gemma).
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

log = logging.getLogger("langshift")

# Sequences per decode call. Measured on SmolLM2 with one shared cache: 4 / 8 / 16 / 32 sequences gave
# 116.5 / 155.8 / 171.7 / 170.9 tok/s (quiet AMD EPYC, 2 threads), and in an evaluation's setting (50
# prompts x 4 samples, 1 thread, loaded) 64 sequences 51.8 tok/s against 66.1 at 16: in one shared cache
# each token's attention spans every sequence's cells, so past 16 a step's cost grows faster than its rows.
PARALLEL = 16


def gguf_for(model, tokenizer) -> Path | None:
    """The cached f16 GGUF of a loaded model (exported on first use, keyed by its weights' fingerprint),
    or None when the export does not support its architecture (the caller falls back to torch)."""
    from langshift.export.gguf import UnsupportedModelError, arch_of, export_gguf
    from langshift.files import file_lock

    try:
        arch_of(model)
    except UnsupportedModelError as e:
        log.warning("llama.cpp generation: %s; generating with torch instead", e)
        return None
    out = gguf_path(model)
    if not out.is_file():
        with file_lock(out.parent / f".{out.name}.lock"):  # parallel stages: one exports, the rest wait
            if not out.is_file():
                export_gguf(getattr(model, "name_or_path", "model") or "model", out, "f16", loaded=(model, tokenizer))
    return out


def gguf_path(model) -> Path:
    """Where the f16 GGUF of a loaded model is cached (there or not yet)."""
    from langshift.files import cache_dir
    from langshift.fingerprints import weights_fingerprint

    return cache_dir() / "gguf" / f"{weights_fingerprint(model)[:24]}.f16.gguf"


def generate_ids(gguf: Path, prompts: list[list[int]], seeds: list[int], *, max_new_tokens: int, temperature: float,
                 top_p: float, stop_ids: list[int], parallel: int = PARALLEL, threads: int | None = None,
                 progress=None) -> list[list[int]]:
    """New token ids for each prompt (its stop token, when one ends it, included), decoded by llama.cpp
    in a child process."""
    from langshift import native

    if threads is None:
        import torch

        threads = torch.get_num_threads()  # the thread budget this process was given (a stage: one core)
    return native.call("generate", model=str(gguf), prompts=prompts, seeds=seeds, max_new_tokens=max_new_tokens,
                       temperature=temperature, top_p=top_p, stop_ids=stop_ids, parallel=parallel, threads=threads,
                       progress=progress, timeout=24 * 3600)


# ---- the child's side: runs under `python -m langshift.native generate ...` ----

def decode_batch(**kw) -> list[list[int]]:
    """New token ids for each prompt, the "generate" native task (arguments: `_decode`'s)."""
    return _decode(**kw)[0]


def decode_batch_timed(**kw) -> dict:
    """`decode_batch` with where its time went, the "generate_timed" native task (auto's probe, the bench):
    {"tokens", "load_s" (model and context), "decode_s" (llama_decode calls), "sample_s" (sample_next),
    "total_s", "prompt_tokens" (prompt tokens decoded)}; the rest of total_s is the Python between calls."""
    tokens, clock = _decode(**kw)
    return {"tokens": tokens, **clock}


def _decode(model: str, prompts: list[list[int]], seeds: list[int], max_new_tokens: int, temperature: float,
            top_p: float, stop_ids: list[int], parallel: int = 16, threads: int = 1) -> tuple[list[list[int]], dict]:
    """Continuous batching over llama.cpp's C API: each decode call carries one new token of every active
    sequence plus the whole prompts of sequences that start in it; only the positions that are sampled
    from compute logits. A prompt that repeats the one before it (a prompt's k samples, adjacent as the
    caller lists them) is prefilled once: its cache is copied to the twins' sequences, and each twin
    draws its first token from the same logits with its own generator; a twin that starts later, while
    another is still decoding, takes that one's prompt cells and decodes only the prompt's last token."""
    import time

    import llama_cpp as L
    import numpy as np
    import torch

    from langshift.eval.decode import sample_next
    from langshift.native import report_progress

    torch.set_num_threads(threads)  # sampling runs between decode calls, on llama.cpp's threads
    start = time.perf_counter()
    clock = {"load_s": 0.0, "decode_s": 0.0, "sample_s": 0.0, "total_s": 0.0, "prompt_tokens": 0}

    L.llama_backend_init()
    llm = L.llama_model_load_from_file(model.encode(), L.llama_model_default_params())
    if not llm:
        raise RuntimeError(f"llama.cpp could not load {model}")
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(llm))
    parallel = max(1, min(parallel, len(prompts)))
    longest = max(len(p) for p in prompts)
    n_batch = max(512, longest + parallel)
    params = L.llama_context_default_params()
    params.n_ctx = parallel * (longest + max_new_tokens + 1)
    params.n_batch = params.n_ubatch = n_batch
    params.n_seq_max = parallel
    params.n_threads = params.n_threads_batch = threads
    # One cache for all slots, measured against a cache per slot on SmolLM2, 48 demo prompts x 64 tokens,
    # 16 sequences, 2 threads: f16 125.3 vs 78.9 tok/s, q8_0 142.4 vs 108.4, q4_1 105.4 vs 92.3.
    params.kv_unified = True
    params.no_perf = True
    ctx = L.llama_init_from_model(llm, params)
    if not ctx:
        raise RuntimeError(f"llama.cpp could not make a context of {params.n_ctx} tokens for {model}")
    memory = L.llama_get_memory(ctx)
    batch = L.llama_batch_init(n_batch, 0, 1)
    stops = set(stop_ids)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    results: list[list[int] | None] = [None] * len(prompts)
    queue, free = deque(range(len(prompts))), list(range(parallel - 1, -1, -1))
    # Adjacent equal prompts (a prompt's k samples) form a group. A member that starts while another member
    # is decoding shares that one's prompt cells and decodes only the prompt's last token (for its logits):
    # slots free one at a time, so without this most samples after the first would prefill the prompt again.
    group = list(range(len(prompts)))
    for j in range(1, len(prompts)):
        if prompts[j] == prompts[j - 1]:
            group[j] = group[j - 1]
    active: dict[int, dict] = {}  # slot -> {"i": prompt index, "pos": next position, "out": tokens, "next": token}
    finished = 0
    clock["load_s"] = time.perf_counter() - start

    def add(token: int, pos: int, slot: int, wants_logits: bool) -> None:
        n = batch.n_tokens
        batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, pos, 1
        batch.seq_id[n][0] = slot
        batch.logits[n] = wants_logits
        batch.n_tokens = n + 1

    try:
        while queue or active:
            batch.n_tokens = 0
            sampled = list(active)  # the slots sampled from this call...
            rows = list(range(len(sampled)))  # ...and the logits row each samples from (one per logits token)
            copies = []  # (slot, twin): a twin shares its slot's prompt, copied in the cache after the call
            for slot, state in active.items():
                add(state["next"], state["pos"], slot, True)
                state["pos"] += 1
            n_rows = len(rows)
            holders = {group[state["i"]]: slot for slot, state in active.items()}  # prompts already in the cache
            while queue and free:
                i = queue[0]
                source, n = holders.get(group[i]), len(prompts[i])
                if batch.n_tokens + (1 if source is not None else n) > n_batch:
                    break
                queue.popleft()
                slot = free.pop()
                row, n_rows = n_rows, n_rows + 1
                if source is not None:  # a twin of a live sequence: its prompt's cells, then the last token again
                    L.llama_memory_seq_cp(memory, source, slot, 0, n - 1)
                    add(prompts[i][-1], n - 1, slot, True)
                    clock["prompt_tokens"] += 1
                else:
                    for pos, token in enumerate(prompts[i]):
                        add(token, pos, slot, pos == n - 1)
                    clock["prompt_tokens"] += n
                active[slot] = {"i": i, "pos": n, "out": []}
                sampled.append(slot)
                rows.append(row)
                # The same prompt again (a prompt's k samples): one prefill, its cache shared, not recomputed.
                while queue and free and prompts[queue[0]] == prompts[i]:
                    twin = free.pop()
                    active[twin] = {"i": queue.popleft(), "pos": len(prompts[i]), "out": []}
                    copies.append((slot, twin))
                    sampled.append(twin)
                    rows.append(row)
            tick = time.perf_counter()
            code = L.llama_decode(ctx, batch)
            clock["decode_s"] += time.perf_counter() - tick
            if code != 0:
                raise RuntimeError(f"llama_decode returned {code} (context {params.n_ctx} tokens, batch {n_batch})")
            for slot, twin in copies:
                L.llama_memory_seq_cp(memory, slot, twin, -1, -1)
            logits = torch.from_numpy(np.ctypeslib.as_array(L.llama_get_logits(ctx), shape=(n_rows, n_vocab)))
            tick = time.perf_counter()
            tokens = sample_next(logits[rows], temperature, top_p,
                                 generators=[generators[active[s]["i"]] for s in sampled]).tolist()
            clock["sample_s"] += time.perf_counter() - tick
            for slot, token in zip(sampled, tokens, strict=True):
                state = active[slot]
                state["out"].append(token)
                if token in stops or len(state["out"]) >= max_new_tokens:
                    results[state["i"]] = state["out"]
                    del active[slot]
                    L.llama_memory_seq_rm(memory, slot, -1, -1)
                    free.append(slot)
                    finished += 1
                    report_progress(finished, len(prompts))
                else:
                    state["next"] = token
    finally:
        L.llama_batch_free(batch)
        L.llama_free(ctx)
        L.llama_model_free(llm)
    clock["total_s"] = time.perf_counter() - start
    return results, clock
