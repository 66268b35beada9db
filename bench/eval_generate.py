"""Tokens/s of langshift's decode loop against transformers `generate`, same model, same prompts, CPU.

Both sample with the paper's settings (temperature 0.6, top-p 0.9, no top-k) from the same left-padded
batches of the demo's open prompts in the chat format. Greedy outputs are first checked token for
token (the script fails if they differ). Where the gain comes from: `generate`'s top-p sorts the whole
vocabulary of every row at every step, and it keeps computing rows that have stopped; ours samples
the nucleus from the top-256 candidates (exactly) and drops finished rows. A decode step of a small
model on a CPU is bound by reading the weights, so ours also runs at a larger batch (`--our-batch-size`),
which is what `langshift eval` uses; `generate` is timed at both batch sizes.

llama.cpp (`eval.generation_backend: llamacpp`) is timed on the same prompts in the same run: the
model exported to an f16 GGUF (and, as information, q8_0), all prompts decoded with continuous batching
(`--parallel` sequences per call) in one child process, its start and model load included. Its greedy
replies are compared with our loop's, token for token (f16 rounding may flip near-ties: the share is
reported, and the prompts that differ are counted).

    python bench/eval_generate.py [--model smollm2] [--prompts 24] [--max-new-tokens 64]

Last line: one JSON object with `speedup_vs_hf_generate` (same batch), `speedup_at_our_batch` and
`llamacpp_speedup_vs_ours` (llama.cpp f16 against our loop at its batch).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from importlib import resources
from pathlib import Path

import torch

from langshift.eval.decode import decode
from langshift.eval.generate import _stop_ids, encode_prompt
from langshift.models import chat_format, load


def batches(ids: list[list[int]], size: int, pad: int):
    order = sorted(ids, key=len, reverse=True)
    for start in range(0, len(order), size):
        part = order[start : start + size]
        width = max(map(len, part))
        yield (
            torch.tensor([[pad] * (width - len(i)) + i for i in part]),
            torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in part]),
        )


def run_hf(model, data, stop, pad, max_new_tokens, temperature):
    tokens = 0
    sampling = dict(temperature=temperature, top_p=0.9, top_k=0) if temperature else dict(
        temperature=None, top_p=None, top_k=None
    )
    outs = []
    for input_ids, mask in data:
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=bool(temperature),
            eos_token_id=stop,
            pad_token_id=pad,
            **sampling,
        )
        for row in out[:, input_ids.shape[1] :].tolist():
            kept = []
            for t in row:
                kept.append(t)
                if t in stop:
                    break
            outs.append(kept)
            tokens += len(kept)
    return tokens, outs


def run_ours(model, data, stop, max_new_tokens, temperature):
    outs = []
    for input_ids, mask in data:
        outs += decode(
            model, input_ids, mask, max_new_tokens=max_new_tokens, stop_ids=stop, temperature=temperature
        )
    return sum(map(len, outs)), outs


def run_llamacpp(gguf, ids, stop, max_new_tokens, temperature, parallel, threads):
    from langshift.eval.llamacpp import generate_ids

    outs = generate_ids(gguf, ids, list(range(len(ids))), max_new_tokens=max_new_tokens, temperature=temperature,
                        top_p=0.9, stop_ids=stop, parallel=parallel, threads=threads)
    return sum(map(len, outs)), outs


def timed(fn):
    torch.manual_seed(0)
    start = time.perf_counter()
    tokens, outs = fn()
    return tokens / (time.perf_counter() - start), outs


def measure_llamacpp(model, tok, ids, stop, n, parallel, threads) -> dict:
    """llama.cpp's tokens/s (f16, q8_0) and its greedy agreement with our loop, one prompt at a time
    (our loop at batch 1: no padding, so a difference is llama.cpp's, not the batch's)."""
    import tempfile

    from langshift.eval.llamacpp import gguf_for
    from langshift.export.gguf import export_gguf

    f16 = gguf_for(model, tok)
    if f16 is None:
        raise SystemExit("the GGUF export does not support this model's architecture")
    with torch.inference_mode():
        ours = [decode(model, torch.tensor([i]), torch.ones(1, len(i), dtype=torch.long), max_new_tokens=16,
                       stop_ids=stop, temperature=0)[0] for i in ids]
    _, theirs = run_llamacpp(f16, ids, stop, 16, 0, parallel, threads)
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    f16_rate, _ = timed(lambda: run_llamacpp(f16, ids, stop, n, 0.6, parallel, threads))
    with tempfile.TemporaryDirectory() as tmp:
        q8 = export_gguf("bench", Path(tmp) / "m.q8_0.gguf", "q8_0", loaded=(model, tok))
        q8_rate, _ = timed(lambda: run_llamacpp(q8, ids, stop, n, 0.6, parallel, threads))
    return {"llamacpp_parallel": parallel, "llamacpp_f16_tok_s": round(f16_rate, 1),
            "llamacpp_q8_0_tok_s": round(q8_rate, 1), "llamacpp_greedy_equal_share": round(same / len(ids), 3),
            "llamacpp_greedy_differ": len(ids) - same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--langs", default="sw,en")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--our-batch-size", type=int, default=24)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--parallel", type=int, default=16, help="llama.cpp sequences per decode call")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, tok = load(args.model)
    model.eval()
    fmt = chat_format(tok)
    demo = resources.files("langshift.data") / "demo" / "prompts.jsonl"
    rows = [json.loads(line) for line in demo.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [row[lang] for lang in args.langs.split(",") for row in rows[: args.prompts]]
    ids = [encode_prompt(tok, fmt.prompt_text(tok, t)) for t in texts]
    stop = _stop_ids(model, tok, fmt.end)
    pad = tok.pad_token_id

    def data(size):
        return list(batches(ids, size, pad))

    n = args.max_new_tokens
    with torch.inference_mode():
        _, hf_greedy = run_hf(model, data(args.batch_size), stop, pad, 16, 0)
        _, our_greedy = run_ours(model, data(args.batch_size), stop, 16, 0)
        if hf_greedy != our_greedy:
            raise SystemExit("greedy outputs differ from transformers generate")
        hf_same, _ = timed(lambda: run_hf(model, data(args.batch_size), stop, pad, n, 0.6))
        ours_same, _ = timed(lambda: run_ours(model, data(args.batch_size), stop, n, 0.6))
        hf_big, _ = timed(lambda: run_hf(model, data(args.our_batch_size), stop, pad, n, 0.6))
        ours_big, _ = timed(lambda: run_ours(model, data(args.our_batch_size), stop, n, 0.6))
    llama = measure_llamacpp(model, tok, ids, stop, n, args.parallel, torch.get_num_threads())
    result = {
        "model": args.model,
        "prompts": len(ids),
        "max_new_tokens": n,
        "threads": torch.get_num_threads(),
        "greedy_identical": True,
        f"hf_generate_tok_s_bs{args.batch_size}": round(hf_same, 1),
        f"ours_tok_s_bs{args.batch_size}": round(ours_same, 1),
        f"hf_generate_tok_s_bs{args.our_batch_size}": round(hf_big, 1),
        f"ours_tok_s_bs{args.our_batch_size}": round(ours_big, 1),
        "speedup_vs_hf_generate": round(ours_same / hf_same, 2),
        "speedup_at_our_batch": round(ours_big / hf_same, 2),
        **llama,
        "llamacpp_speedup_vs_ours": round(llama["llamacpp_f16_tok_s"] / ours_big, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
