"""`generation_backend: auto`: torch or llama.cpp, whichever generates this evaluation sooner on this machine.

Neither backend wins everywhere. In an evaluation's own setting on a quiet 2-core AMD EPYC (README,
"llama.cpp"), llama.cpp took 1.46x torch's time for SmolLM2-135M but 0.73x for Gemma-3-270M, whose
262k-token head is where its f16 kernels pay; on the Intel build machine it took 2.1x for SmolLM2. So
`auto` measures both, once per model shape, machine and setting, remembers the measurement, and picks by it.

The measurement (`measure`) runs the evaluation's first `batch_size` prompts, k samples each, for
`probe_tokens` new tokens with no stop, through each backend the way the evaluation runs them (torch: one
batch of batch_size x k rows from one prefill; llama.cpp: `PARALLEL` sequences, a prompt's samples
prefilled once). It gives each backend's cost, per new token:

    torch:      t_hf(n)  = n * hf_s_per_token
    llama.cpp:  t_cpp(n) = start_s + export_s + n * cpp_s_per_token

where start_s is the child's start and the model's load, export_s the f16 GGUF export (paid once per set
of weights: none when this model's GGUF is cached), and n = prompts x samples x max_new_tokens, an upper
bound for both (a reply that stops early stops on either). The rule (`pick`): llama.cpp iff
t_cpp(n) <= MARGIN * t_hf(n). Torch is the exact reference (greedy replies are its by definition), so a tie
or a noise-sized win keeps it.

Torch without a measurement: a model off the CPU (on a GPU vLLM is asked for by name), an architecture the
GGUF export does not know, regenerations (`accept`, torch only), and an evaluation too small for a
measurement to pay (n < MEASURE_FACTOR x the probe's own tokens) unless one is remembered. A llama.cpp that
crashes in the probe is named in a warning and remembered as a loss: the evaluation goes on with torch.

Remembered in `<cache>/generation-backend.json` under a key of the model's shape (not its weights: every
fine-tune of a model shares its speed), the machine (CPU model, instruction sets, threads), the setting
(batch size, samples, probe length, greedy or sampled) and the torch and llama-cpp-python versions.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("langshift")

MARGIN = 0.9  # llama.cpp must be predicted at least 10 % faster: below that, measurement noise
MEASURE_FACTOR = 4  # measure only for an evaluation of at least 4x the probe's tokens (the probe runs twice)
# New tokens per probe response: with MEASURE_FACTOR 4, the demo's evaluation (50 prompts x 64 tokens at
# batch 24) is the smallest that is measured.
PROBE_TOKENS = 32
CACHE_FILE = "generation-backend.json"


class Pick(NamedTuple):
    backend: str  # "hf" | "llamacpp" | "vllm"
    reason: str


def resolve_backend(backend: str, model, tokenizer, prompts: list[dict], *, samples: int, max_new_tokens: int,
                    batch_size: int, temperature: float, top_p: float, system: str | None = None,
                    regenerations: bool = False) -> Pick:
    """The backend that generates `prompts` (`backend` itself unless it is "auto"), and why."""
    if backend != "auto":
        return Pick(backend, "asked for")
    if regenerations:
        return Pick("hf", "regenerations run on torch")
    device = getattr(model, "device", None)
    if device is not None and getattr(device, "type", "cpu") != "cpu":
        return Pick("hf", f"the model is on {device}")
    from langshift.export.gguf import UnsupportedModelError, arch_of

    try:
        arch_of(model)
    except UnsupportedModelError as e:
        return Pick("hf", f"no GGUF export for it ({e})")
    probe_rows = min(batch_size, len(prompts)) * samples
    probe_tokens = min(max_new_tokens, PROBE_TOKENS)
    n = len(prompts) * samples * max_new_tokens
    key = setting_key(model, batch_size=batch_size, samples=samples, probe_tokens=probe_tokens,
                      greedy=temperature == 0)
    from langshift.files import cache_dir, file_lock

    path = cache_dir() / CACHE_FILE
    known = _read(path).get(key)
    if known is None:
        if n < MEASURE_FACTOR * probe_rows * probe_tokens:
            return Pick("hf", f"{n} new tokens at most: too few to pay for measuring llama.cpp here")
        with file_lock(path.parent / f".{CACHE_FILE}.lock"):  # parallel stages: one measures, the rest read it
            known = _read(path).get(key)
            if known is None:
                known = measure(model, tokenizer, prompts[:batch_size], samples=samples, probe_tokens=probe_tokens,
                                temperature=temperature, top_p=top_p, system=system)
                _write(path, key, known)
    from langshift.eval.llamacpp import gguf_path

    chosen = pick(known, n, exported=gguf_path(model).is_file())
    log.info("generation backend auto -> %s: %s", *chosen)
    return chosen


def predicted_seconds(measured: dict, tokens: int, *, exported: bool) -> tuple[float, float]:
    """(torch, llama.cpp) seconds for `tokens` new tokens by the measured costs (`exported`: this model's
    GGUF is cached, so no export is paid)."""
    hf = tokens * measured["hf_s_per_token"]
    cpp = measured["start_s"] + (0.0 if exported else measured["export_s"]) + tokens * measured["cpp_s_per_token"]
    return hf, cpp


def pick(measured: dict, tokens: int, *, exported: bool) -> Pick:
    """The rule: llama.cpp iff its predicted time for `tokens` new tokens is at most MARGIN x torch's."""
    if measured.get("crash"):
        return Pick("hf", f"llama.cpp crashed when measured: {measured['crash']}")
    hf, cpp = predicted_seconds(measured, tokens, exported=exported)
    backend = "llamacpp" if cpp <= MARGIN * hf else "hf"
    return Pick(backend, f"predicted {cpp:.0f} s with llama.cpp against {hf:.0f} s with torch for at most "
                         f"{tokens} new tokens (measured {measured['measured']})")


def measure(model, tokenizer, prompts: list[dict], *, samples: int, probe_tokens: int, temperature: float,
            top_p: float, system: str | None = None) -> dict:
    """Each backend's cost on `prompts` x `samples` responses of `probe_tokens` new tokens (no stop), as
    `pick` reads it."""
    import torch

    from langshift import native
    from langshift.eval.decode import prefill, sample
    from langshift.eval.generate import _stop_ids, encode_prompt, left_padded, pad_id
    from langshift.eval.llamacpp import PARALLEL, gguf_for, gguf_path
    from langshift.models import chat_format

    fmt = chat_format(tokenizer, system)
    ids = [encode_prompt(tokenizer, fmt.prompt_text(tokenizer, p["prompt"])) for p in prompts]
    rows = len(ids) * samples
    tokens = rows * probe_tokens
    input_ids, mask = left_padded(ids, pad_id(tokenizer, _stop_ids(model, tokenizer, fmt.end)), model.device)
    model.eval()
    with torch.random.fork_rng():  # the probe draws nothing from the evaluation's random stream
        torch.manual_seed(0)
        tick = time.perf_counter()
        prefix = prefill(model, input_ids, mask)
        if samples > 1:
            prefix = prefix.select([r for r in range(len(ids)) for _ in range(samples)])
        sample(model, prefix, max_new_tokens=probe_tokens, stop_ids=[], temperature=temperature, top_p=top_p)
        hf_s = time.perf_counter() - tick
    result = {"hf_s_per_token": hf_s / tokens, "probe": f"{len(ids)} prompts x {samples} x {probe_tokens} tokens",
              "measured": time.strftime("%Y-%m-%d"), "load_average": round(os.getloadavg()[0], 2)}
    cached = gguf_path(model).is_file()
    tick = time.perf_counter()
    gguf = gguf_for(model, tokenizer)
    result["export_s"] = time.perf_counter() - tick
    if cached:  # this model's GGUF was made before; every other fine-tune pays the export, so time one
        import tempfile

        from langshift.export.gguf import export_gguf

        with tempfile.TemporaryDirectory(dir=gguf.parent) as tmp:
            tick = time.perf_counter()
            export_gguf("probe", Path(tmp) / "model.f16.gguf", "f16", loaded=(model, tokenizer))
            result["export_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    try:
        timed = native.call("generate_timed", model=str(gguf), prompts=[i for i in ids for _ in range(samples)],
                            seeds=list(range(rows)), max_new_tokens=probe_tokens, temperature=temperature,
                            top_p=top_p, stop_ids=[], parallel=PARALLEL, threads=torch.get_num_threads(),
                            timeout=3600)
    except native.NativeCrash as e:
        log.warning("generation backend auto: %s; torch generates", e)
        return {**result, "crash": str(e).splitlines()[0]}
    wall = time.perf_counter() - tick
    result["start_s"] = wall - timed["total_s"] + timed["load_s"]
    result["cpp_s_per_token"] = (timed["total_s"] - timed["load_s"]) / tokens
    return result


def setting_key(model, *, batch_size: int, samples: int, probe_tokens: int, greedy: bool) -> str:
    """What a measurement holds for: the model's shape, this machine, the setting, the engines' versions."""
    import torch

    from langshift.doctor import cpu_flags
    from langshift.files import stable_hash
    from langshift.models import causal_lm

    lm = causal_lm(model)
    shape = [(name, tuple(t.shape), str(t.dtype)) for name, t in lm.state_dict().items()]
    machine = {"machine": platform.machine(), "cpu": _cpu_name(), "flags": sorted(cpu_flags() or []),
               "threads": torch.get_num_threads()}
    versions = {name: _version(name) for name in ("torch", "llama-cpp-python")}
    return stable_hash(getattr(lm.config, "model_type", None), shape, machine, versions,
                       {"batch_size": batch_size, "samples": samples, "probe_tokens": probe_tokens, "greedy": greedy})


def _cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    try:
        for line in open(cpuinfo, encoding="utf-8", errors="replace"):
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _read(path) -> dict:
    """The remembered measurements; an unreadable file is measured again, not an error."""
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write(path, key: str, measured: dict) -> None:
    from langshift.files import write_json

    write_json(path, {**_read(path), key: measured})
