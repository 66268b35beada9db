"""Where the LM head puts a CLO training step's time, and what the chunked head saves against full logits.

    python bench/head_cost.py                                   # gemma3-270m and smollm2, 8 records, 3 repeats
    python bench/head_cost.py --model smollm2 --records 4 --repeats 1 --json head_cost.json

One CLO training micro-batch of real records (the demo's sw records, as bench/train_step.py samples them;
`--records`, default 8 = one optimizer step, the micro-batch of a GPU's default token budget), encoded in
the model's chat format into CLO's four sequences per record, laid out as training lays it out
(`plan_layout`, `layout`: prompts shared, rows packed into bins), attention-only trainable parameters
(the default), fp32, `--threads` torch threads. Per model (`--model`, default gemma3-270m, whose tied head
has a 262k vocabulary, and smollm2 = SmolLM2-135M, 49k) it times, median of `--repeats`:

  1. the step split in four: body forward (the decoder over the bins, as `layout_logps` runs it), head
     forward (the scored tokens' hidden states through the head by our path: chunks of CHUNK_TOKENS, the
     frozen head's `FrozenHeadLogps`, which forms the gradient w.r.t. the hidden states in forward), head
     backward (scaling that gradient) and body backward (from the hidden states' gradient: input
     gradients through the layers, the attention weights' gradients). `head_share` = head / whole step.
     The split's log-probs are checked against `layout_logps` itself.
  2. our head path against the naive one, on the same hidden states: full logits of all scored tokens in
     one piece with autograd (`head(h).float().log_softmax(-1).gather(...)`, then backward). Before any
     timing counts, both must give the same log-probs (per sequence, within 1e-4 per token) and the same
     gradient w.r.t. the hidden states (max difference within 1e-4 of its largest entry): the script
     fails otherwise. Memory: each path runs once more in a fresh process that loads the model (for its
     head) and the hidden states; after a warm-up pass on 8 tokens (the libraries' one-time buffers), its
     peak RSS during the head's forward + backward (VmHWM reset through /proc/self/clear_refs, as
     bench/train_step.py does) minus its RSS just before = what the head's pass holds at its peak
     (logits, softmax, gradients). `logits_mb_*`: the largest fp32 logits tensor of each path, for reference.

The load average is recorded before and after; `quiet` = the 1-minute load was below 0.5 at the start
(otherwise timings are inflated by other jobs). Prints a summary per model, then one JSON line
(`--json PATH` also writes it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
MODELS = ("gemma3-270m", "smollm2")
VARIANTS = ("chunked", "naive")
LOGP_TOL = 1e-4  # per scored token, fp32
GRAD_TOL = 1e-4  # relative to the largest entry of the gradient


class HeadMismatch(RuntimeError):
    """Two paths that must compute the same thing did not."""


def _bench_module(name: str):
    """A sibling script of bench/ as a module (train_step: the bench's records and RSS helpers)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return __import__(name)


# ------------------------------------------------------------------------------------------ batch


def build_batch(tok, records, plan, max_length: int = 3000):
    """The layout tensors of one CLO micro-batch: each record's four sequences (`ROLES`), laid out by `plan`."""
    from langshift import models
    from langshift.train.encode import ROLES, Encoder
    from langshift.train.layout import layout

    enc = Encoder(tok, models.chat_format(tok), max_length)
    seqs = [s for r in records for s in (lambda e: [e[k] for k in ROLES])(enc.encode(r))]
    return seqs, layout(seqs, plan)


def decoder_hidden(lm, batch, plan):
    """The last hidden states of every laid-out token: `layout_logps`'s decoder part (one call per bin)."""
    import torch

    from langshift.train.attention import bin_mask, layer_kinds
    from langshift.train.logps import _text_config

    decoder = getattr(lm, lm.base_model_prefix)
    kinds, dtype = layer_kinds(_text_config(lm)), lm.get_output_embeddings().weight.dtype
    ids, pos, row, branch = batch["input_ids"], batch["position_ids"], batch["row"], batch["branch"]
    bounds = batch["bins"].tolist()
    out = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        mask = None if plan.mask == "none" else bin_mask(plan.mask, row[start:end], branch[start:end], pos[start:end],
                                                         kinds=kinds, window=plan.window, dtype=dtype)
        out.append(decoder(input_ids=ids[None, start:end], position_ids=pos[None, start:end], attention_mask=mask,
                           use_cache=False).last_hidden_state[0])
    return torch.cat(out) if len(out) > 1 else out[0]


# ------------------------------------------------------------------------------------------- head


def chunked_head(head, softcap, h, targets, seq, n_seqs: int, chunk_tokens: int):
    """Per-sequence log-prob sums by our path: `layout_logps`'s head loop (chunks; FrozenHeadLogps for a
    frozen linear head)."""
    import torch

    from langshift.train.logps import _head_logps

    sums = torch.zeros(n_seqs, dtype=torch.float32)
    for start in range(0, h.shape[0], chunk_tokens):
        end = start + chunk_tokens
        sums = sums.index_add(0, seq[start:end], _head_logps(head, softcap, h[start:end], targets[start:end]))
    return sums


def naive_head(head, softcap, h, targets, seq, n_seqs: int, chunk_tokens: int):
    """Per-sequence log-prob sums the plain way: full logits of all scored tokens at once, autograd."""
    import torch

    logits = head(h).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    logps = logits.log_softmax(-1).gather(1, targets[:, None]).squeeze(1)
    return torch.zeros(n_seqs, dtype=torch.float32).index_add(0, seq, logps)


HEADS = {"chunked": chunked_head, "naive": naive_head}


def head_pass(variant: str, head, softcap, hidden, batch, weights, chunk_tokens: int):
    """One forward + backward of the head alone on detached `hidden` (the scored positions):
    (per-sequence sums, gradient w.r.t. hidden, forward s, backward s)."""
    h = hidden.detach().requires_grad_()
    t0 = time.perf_counter()
    sums = HEADS[variant](head, softcap, h, batch["score_token"], batch["score_seq"], weights.shape[0], chunk_tokens)
    t1 = time.perf_counter()
    sums.backward(weights)
    t2 = time.perf_counter()
    return sums.detach(), h.grad, t1 - t0, t2 - t1


def check_close(name: str, a, b, tol: float, scale=None) -> float:
    """max |a - b| (divided by `scale`); HeadMismatch when above `tol`."""
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    if scale is not None:
        diff /= max(float(scale), 1e-30)
    if not diff <= tol:  # NaN fails too
        raise HeadMismatch(f"{name}: difference {diff:.3g} > {tol:g}")
    return diff


def head_info(lm) -> dict:
    """The head, its softcap and which path `layout_logps` takes for it in attention-only training."""
    import torch

    from langshift.train.logps import _text_config

    head = lm.get_output_embeddings()
    frozen_linear = isinstance(head, torch.nn.Linear) and not any(p.requires_grad for p in head.parameters())
    return {"head": head, "softcap": getattr(_text_config(lm), "final_logit_softcapping", None),
            "path": "FrozenHeadLogps" if frozen_linear else "checkpointed chunks"}


# ------------------------------------------------------------------------------------------ measure


def measure(model, tok, records, repeats: int = 3, chunk_tokens: int | None = None, hidden_out: Path | None = None,
            max_length: int = 3000) -> dict:
    """Time one attention-only CLO micro-batch of `records` on `model` split into body and head, and our head
    path against the naive one (checked equal first; HeadMismatch otherwise). Medians over `repeats`.
    `hidden_out`: also save the scored hidden states there (for `head_memory`)."""
    import torch

    from langshift.models import causal_lm
    from langshift.train.clo_trainer import pick_micro_batch
    from langshift.train.config import DEVICE_DEFAULTS
    from langshift.train.logps import CHUNK_TOKENS, layout_logps, plan_layout
    from langshift.train.params import select_trainable, trainable_summary

    chunk_tokens = chunk_tokens or CHUNK_TOKENS
    model = select_trainable(model, "attention")
    model.train()
    lm = causal_lm(model)
    plan = plan_layout(model)
    seqs, batch = build_batch(tok, records, plan, max_length)
    info = head_info(lm)
    head, softcap = info["head"], info["softcap"]
    n_seqs, n_scored = batch["n_tokens"].shape[0], batch["score_from"].shape[0]
    # the gradient each sequence's sum gets from the loss: fixed, uneven, so a mixed-up sequence shows
    weights = torch.linspace(-1.0, 1.0, n_seqs) + 0.1

    with torch.no_grad():  # what training's forward computes, to check the split against
        want, _ = layout_logps(model, batch, plan, chunk_tokens)

    keys = ("body_fwd_s", "head_fwd_s", "head_bwd_s", "body_bwd_s", "naive_fwd_s", "naive_bwd_s")
    times: dict[str, list[float]] = {k: [] for k in keys}
    diffs: dict[str, float] = {}
    for r in range(repeats):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        hidden = decoder_hidden(lm, batch, plan)[batch["score_from"]]
        t1 = time.perf_counter()
        sums, grad, head_f, head_b = head_pass("chunked", head, softcap, hidden, batch, weights, chunk_tokens)
        t2 = time.perf_counter()
        hidden.backward(grad)
        t3 = time.perf_counter()
        naive_sums, naive_grad, naive_f, naive_b = head_pass("naive", head, softcap, hidden, batch, weights,
                                                              chunk_tokens)
        for k, v in zip(keys, (t1 - t0, head_f, head_b, t3 - t2, naive_f, naive_b), strict=True):
            times[k].append(v)
        print(f"[bench] repeat {r + 1}/{repeats}: " + "  ".join(f"{k} {v[-1]:.2f}" for k, v in times.items()),
              file=sys.stderr, flush=True)
        if r == 0:  # before any timing is reported: all paths compute the same thing
            per_token = batch["n_tokens"].clamp(min=1)
            diffs = {
                "split_vs_layout_logps": check_close("split step vs layout_logps", sums / per_token, want / per_token,
                                                     LOGP_TOL),
                "logps_chunked_vs_naive": check_close("log-probs, chunked vs naive", sums / per_token,
                                                      naive_sums / per_token, LOGP_TOL),
                "grad_chunked_vs_naive": check_close("gradient w.r.t. the hidden states, chunked vs naive", grad,
                                                     naive_grad, GRAD_TOL, scale=naive_grad.abs().max()),
            }
            if hidden_out is not None:  # a few MB: the head's weight is loaded again with the model
                torch.save({"hidden": hidden.detach(), "softcap": softcap, "score_token": batch["score_token"],
                            "score_seq": batch["score_seq"], "weights": weights, "chunk_tokens": chunk_tokens},
                           hidden_out)
        del hidden, grad, naive_grad
    model.zero_grad(set_to_none=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    body = med["body_fwd_s"] + med["body_bwd_s"]
    head_s = med["head_fwd_s"] + med["head_bwd_s"]
    naive_s = med["naive_fwd_s"] + med["naive_bwd_s"]
    vocab = head.weight.shape[0]
    per_record = batch["input_ids"].numel() / len(records)
    share = trainable_summary(model)
    return {
        "records": len(records),
        "sequences": len(seqs),
        "decoder_tokens": batch["input_ids"].numel(),
        "bins": batch["bins"].numel() - 1,
        "scored_tokens": n_scored,
        "chunks": -(-n_scored // chunk_tokens),
        "chunk_tokens": chunk_tokens,
        "vocab": vocab,
        "hidden_size": head.weight.shape[1],
        "head_path": info["path"],
        "softcap": softcap,
        "layout": {"share": plan.share, "bin_tokens": plan.bin_tokens, "mask": plan.mask, "fallback": plan.why},
        "params": share["total"],
        "trainable": share["trainable"],
        "head_params": head.weight.numel(),
        # records per forward that `langshift train` would pick for these records under each device's budget
        "cpu_micro_batch_records": pick_micro_batch(8, per_record, DEVICE_DEFAULTS["cpu"]["micro_batch_tokens"]),
        "gpu_micro_batch_records": pick_micro_batch(8, per_record, DEVICE_DEFAULTS["gpu"]["micro_batch_tokens"]),
        "repeats": repeats,
        **med,
        "times": times,
        "body_s": body,
        "head_s": head_s,
        "step_s": body + head_s,
        "head_share": head_s / (body + head_s),
        "naive_head_s": naive_s,
        "head_share_naive": naive_s / (body + naive_s),
        "head_time_ratio_chunked_vs_naive": head_s / naive_s,
        "logits_mb_chunk": min(n_scored, chunk_tokens) * vocab * 4 / 2**20,
        "logits_mb_full": n_scored * vocab * 4 / 2**20,
        "max_diff": diffs,
        "threads": torch.get_num_threads(),
    }


def head_memory(path: str | Path, variant: str, head) -> dict:
    """Peak extra RSS (MB) of one forward + backward of `variant` through the frozen linear `head` on the
    hidden states `measure` saved (`hidden_out`); run it in a fresh process, so that nothing freed earlier
    is reused."""
    import torch

    ts = _bench_module("train_step")
    saved = torch.load(path, weights_only=True)
    batch = {"score_token": saved["score_token"], "score_seq": saved["score_seq"]}
    # a few tokens first: the libraries' one-time buffers (thread pools, matmul workspaces) are not the head's
    few = {k: v[:8] for k, v in batch.items()}
    head_pass(variant, head, saved["softcap"], saved["hidden"][:8], few, saved["weights"], saved["chunk_tokens"])
    exact, base = ts.start_peak()
    t = time.perf_counter()
    head_pass(variant, head, saved["softcap"], saved["hidden"], batch, saved["weights"], saved["chunk_tokens"])
    wall = time.perf_counter() - t
    return {"variant": variant, "peak_delta_mb": (ts.peak_kb() - base) / 1024, "base_mb": base / 1024,
            "peak_exact": exact, "wall_s": wall}


def memory_worker(model_ref: str, path: str, variant: str) -> dict:
    """`head_memory` in this (fresh) process, with the head of `model_ref` loaded as `measure` loads it."""
    from langshift import models
    from langshift.models import causal_lm

    model, _ = models.load(model_ref, dtype="float32")
    model.requires_grad_(False)  # attention-only training: the head is frozen
    return head_memory(path, variant, causal_lm(model).get_output_embeddings())


def spawn_memory(model_ref: str, path: Path, variant: str, threads: int) -> dict:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--worker", variant, "--saved", str(path), "--model", model_ref,
           "--threads", str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{variant} memory worker failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_model(name: str, n_records: int, repeats: int, threads: int) -> dict:
    """`measure` on model `name` (loaded fp32), then each head path's memory in a fresh process."""
    from langshift import models

    records = _bench_module("train_step").build_records(n_records, 0)
    t = time.perf_counter()
    model, tok = models.load(name, dtype="float32")
    load_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="bench-head-cost-") as work:
        saved = Path(work) / "head.pt"
        res = measure(model, tok, records, repeats, hidden_out=saved)
        del model
        mem = {v: spawn_memory(name, saved, v, threads) for v in VARIANTS}
    res.update({
        "model": name,
        "load_s": load_s,
        "head_mem_mb_chunked": mem["chunked"]["peak_delta_mb"],
        "head_mem_mb_naive": mem["naive"]["peak_delta_mb"],
        "head_mem_ratio_chunked_vs_naive": mem["chunked"]["peak_delta_mb"] / max(mem["naive"]["peak_delta_mb"], 1e-9),
        "peak_exact": mem["chunked"]["peak_exact"] and mem["naive"]["peak_exact"],
    })
    return res


def _s(seconds: float) -> str:
    return f"{seconds:7.2f}"


def report(r: dict) -> str:
    """The human-readable summary of one model's `run_model` result."""
    d = r["max_diff"]
    return "\n".join([
        f"\n{r['model']}: vocab {r['vocab']:,} x hidden {r['hidden_size']} (head {r['head_params'] / 1e6:.0f}M of "
        f"{r['params'] / 1e6:.0f}M params, {r['trainable'] / 1e6:.1f}M trainable), {r['records']} records = "
        f"{r['sequences']} sequences, {r['decoder_tokens']} decoder tokens in {r['bins']} bins, {r['scored_tokens']} "
        f"scored tokens in {r['chunks']} chunk(s) of {r['chunk_tokens']}; head path {r['head_path']}; "
        f"median of {r['repeats']}",
        f"  step      body fwd {_s(r['body_fwd_s'])} s  body bwd {_s(r['body_bwd_s'])} s  head fwd "
        f"{_s(r['head_fwd_s'])} s  head bwd {_s(r['head_bwd_s'])} s  = {r['step_s']:.2f} s, head share "
        f"{r['head_share']:.1%}",
        f"  head      chunked {r['head_s']:.2f} s, {r['head_mem_mb_chunked']:.0f} MB   naive {r['naive_head_s']:.2f} s "
        f"(fwd {r['naive_fwd_s']:.2f}, bwd {r['naive_bwd_s']:.2f}), {r['head_mem_mb_naive']:.0f} MB   ratio time "
        f"{r['head_time_ratio_chunked_vs_naive']:.2f}, memory {r['head_mem_ratio_chunked_vs_naive']:.2f}   "
        f"(largest logits: {r['logits_mb_chunk']:.0f} vs {r['logits_mb_full']:.0f} MB); head share with the naive "
        f"head {r['head_share_naive']:.1%}",
        f"  checks    max diff: split vs layout_logps {d['split_vs_layout_logps']:.2g}/token, chunked vs naive "
        f"{d['logps_chunked_vs_naive']:.2g}/token, gradient {d['grad_chunked_vs_naive']:.2g} (relative)",
        f"  default micro-batch for these records: {r['cpu_micro_batch_records']} (CPU), "
        f"{r['gpu_micro_batch_records']} (GPU)",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help=f"repeatable or comma list (default: {','.join(MODELS)})")
    ap.add_argument("--records", type=int, default=8, help="records in the micro-batch (4 sequences each)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--repeats", type=int, default=3, help="timings per part; the median is reported")
    ap.add_argument("--json", type=Path, help="also write the JSON summary here")
    ap.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--saved", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.records < 1 or a.repeats < 1 or a.threads < 1:
        ap.error("--records, --repeats and --threads must be at least 1")
    import torch

    torch.set_num_threads(a.threads)
    if a.worker:
        print(json.dumps(memory_worker(a.model[0], a.saved, a.worker)))
        return
    names = [m.strip() for arg in (a.model or [",".join(MODELS)]) for m in arg.split(",") if m.strip()]
    load_before = os.getloadavg()
    results = {}
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        results[name] = run_model(name, a.records, a.repeats, a.threads)
    load_after = os.getloadavg()
    quiet = load_before[0] < 0.5
    for name in names:
        print(report(results[name]))
    print(f"\nthreads {a.threads}  load avg {load_before[0]:.2f} before, {load_after[0]:.2f} after: "
          + ("quiet" if quiet else "NOT quiet (load >= 0.5 at the start: timings are inflated by other jobs)"))
    summary = {"models": results, "records": a.records, "repeats": a.repeats, "threads": a.threads,
               "load_avg_before": [round(x, 2) for x in load_before],
               "load_avg_after": [round(x, 2) for x in load_after], "quiet": quiet}
    line = json.dumps(summary)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
