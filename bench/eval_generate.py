"""Tokens/s of langshift's decode loop against transformers `generate`, same model, same prompts, CPU.

Both sample with the paper's settings (temperature 0.6, top-p 0.9, no top-k) from the same left-padded
batches of the demo's open prompts in the chat format. Greedy outputs are first checked token for
token (the script fails if they differ). Where the gain comes from: `generate`'s top-p sorts the whole
vocabulary of every row at every step, and it keeps computing rows that have stopped; ours samples
the nucleus from the top-256 candidates (exactly) and drops finished rows. A decode step of a small
model on a CPU is bound by reading the weights, so ours also runs at a larger batch (`--our-batch-size`),
which is what `langshift eval` uses; `generate` is timed at both batch sizes.

    python bench/eval_generate.py [--model smollm2] [--prompts 24] [--max-new-tokens 64]

Last line: one JSON object with `speedup_vs_hf_generate` (same batch) and `speedup_at_our_batch`.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources

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


def timed(fn):
    torch.manual_seed(0)
    start = time.perf_counter()
    tokens, outs = fn()
    return tokens / (time.perf_counter() - start), outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--langs", default="sw,en")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--our-batch-size", type=int, default=24)
    ap.add_argument("--threads", type=int, default=None)
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
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
