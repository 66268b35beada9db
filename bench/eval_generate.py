"""Generation on a CPU, three ways, in one run: langshift's decode loop, transformers `generate`, llama.cpp.

Same model, same prompts (the demo's open prompts in the chat format), the paper's sampling (temperature
0.6, top-p 0.9, no top-k):

1. **Our loop against `generate`.** Greedy outputs are checked token for token first (the script fails if
   they differ). Where the gain comes from: `generate`'s top-p sorts the whole vocabulary of every row at
   every step, and it keeps computing rows that have stopped; ours samples the nucleus from the top-256
   candidates (exactly) and drops finished rows, and runs at a larger batch (`--our-batch-size`), which is
   what `langshift eval` uses. `generate` is timed at both batch sizes.
2. **llama.cpp** (`eval.generation_backend: llamacpp`): the model exported to an f16 GGUF (and, as
   information, q8_0), every prompt decoded with continuous batching (`--parallel` sequences per call) in
   one child process, its start and model load included. Its greedy replies are compared with our loop's,
   token for token, one prompt at a time (f16 rounding may flip near-ties: the share equal is reported).
   Where its time goes: the share in `llama_decode` itself and in sampling (`sample_next`), from the child's
   own clock. `--sweep 4,8,16` times f16 at each number of sequences.
3. **An evaluation's own setting** (`--eval-setting 50x4`): `generate_responses`, the function `langshift
   eval` calls, with each backend on the same Swahili prompts (`--eval-prompts`), k samples each, the study's
   batch. Times, and the fidelity of both samples paired by prompt (a prompt's pass rate over its k
   responses): llama.cpp samples the same distribution, not the same random stream, so the two should differ
   only by chance, which the difference's CI and p-value say. Then `auto`'s own probe of the setting's first
   batch (`eval/backend_pick.py`): the backend it would pick, its predicted speedup, and the backend the
   measured times favour by the same rule (llama.cpp only at MARGIN x torch's time or less).

    python bench/eval_generate.py [--model smollm2|gemma3-270m] [--prompts 24] [--max-new-tokens 64]
                                  [--sweep 4,8,16] [--eval-setting 50x4 --eval-prompts demo-v2]

Last line: one JSON object with `speedup_vs_hf_generate` (same batch), `speedup_at_our_batch`,
`llamacpp_speedup_vs_ours` (llama.cpp f16 against our loop at its batch), and with `--eval-setting`,
`eval_setting_llamacpp_speedup` and `eval_setting_fidelity_diff` (llama.cpp − torch, points, with its CI).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from importlib import resources
from pathlib import Path

import torch

from langshift.eval.decode import decode
from langshift.eval.generate import _stop_ids, encode_prompt, generate_responses, left_padded
from langshift.models import chat_format, load


def batches(ids: list[list[int]], size: int, pad: int):
    order = sorted(ids, key=len, reverse=True)
    for start in range(0, len(order), size):
        yield left_padded(order[start : start + size], pad, "cpu")


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
    """llama.cpp's tokens and the child's clock (`llamacpp.decode_batch_timed`)."""
    from langshift import native

    answer = native.call("generate_timed", model=str(gguf), prompts=ids, seeds=list(range(len(ids))),
                         max_new_tokens=max_new_tokens, temperature=temperature, top_p=0.9, stop_ids=stop,
                         parallel=parallel, threads=threads, timeout=3600)
    return sum(map(len, answer["tokens"])), answer


def ratio(a: float, b: float) -> float:
    """a / b to 3 significant digits: a tiny model's llama.cpp rate, its child's start included, can be
    1/500 of our loop's, which 2 decimals round to 0 (and so can a share of its time)."""
    return float(f"{a / b:.3g}")


def timed(fn):
    torch.manual_seed(0)
    start = time.perf_counter()
    tokens, outs = fn()
    return tokens / (time.perf_counter() - start), outs


def measure_llamacpp(model, tok, ids, stop, n, parallel, sweep, threads) -> dict:
    """llama.cpp's tokens/s (f16, q8_0), where f16's time went, the sequences sweep, and its greedy agreement
    with our loop, one prompt at a time (our loop at batch 1: no padding, so a difference is llama.cpp's)."""
    from langshift.eval.llamacpp import gguf_for
    from langshift.export.gguf import export_gguf

    f16 = gguf_for(model, tok)
    if f16 is None:
        raise SystemExit("the GGUF export does not support this model's architecture")
    with torch.inference_mode():
        ours = [decode(model, torch.tensor([i]), torch.ones(1, len(i), dtype=torch.long), max_new_tokens=16,
                       stop_ids=stop, temperature=0)[0] for i in ids]
    _, greedy = run_llamacpp(f16, ids, stop, 16, 0, parallel, threads)
    same = sum(a == b for a, b in zip(ours, greedy["tokens"], strict=True))
    f16_rate, clock = timed(lambda: run_llamacpp(f16, ids, stop, n, 0.6, parallel, threads))
    with tempfile.TemporaryDirectory() as tmp:
        q8 = export_gguf("bench", Path(tmp) / "m.q8_0.gguf", "q8_0", loaded=(model, tok))
        q8_rate, _ = timed(lambda: run_llamacpp(q8, ids, stop, n, 0.6, parallel, threads))
    swept = {f"llamacpp_f16_tok_s_parallel{p}": round(timed(lambda p=p: run_llamacpp(f16, ids, stop, n, 0.6, p,
                                                                                       threads))[0], 1)
             for p in sweep}
    share = {f"llamacpp_{part}_share": ratio(clock[f"{part}_s"], clock["total_s"])
             for part in ("load", "decode", "sample")}
    return {"llamacpp_parallel": parallel, "llamacpp_f16_tok_s": round(f16_rate, 1),
            "llamacpp_q8_0_tok_s": round(q8_rate, 1), **share, **swept,
            "llamacpp_greedy_equal_share": round(same / len(ids), 3), "llamacpp_greedy_differ": len(ids) - same}


def eval_setting(model, tok, n_prompts: int, samples: int, prompts: str, lang: str, max_new_tokens: int,
                 batch_size: int) -> dict:
    """Both backends through `generate_responses` on the same prompts, k samples each: seconds, and each
    sample's fidelity in `lang` with their difference paired by prompt (llama.cpp − torch, in points)."""
    from langshift.eval.backend_pick import MARGIN, PROBE_TOKENS, measure, pick, predicted_seconds
    from langshift.eval.fidelity import fidelity_items
    from langshift.eval.llamacpp import gguf_for
    from langshift.eval.stats import item_values, paired_difference
    from langshift.eval.suite import load_prompts

    rows = load_prompts(prompts, [lang], lang, limit=n_prompts)[lang]
    start = time.perf_counter()
    gguf_for(model, tok)  # the export an evaluation makes once per model (cached after): timed apart
    export_s = time.perf_counter() - start
    seconds, passes, chars = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("hf", "llamacpp"):
            start = time.perf_counter()
            out = generate_responses(model, tok, rows, Path(tmp) / f"{backend}.jsonl", max_new_tokens=max_new_tokens,
                                     temperature=0.6, top_p=0.9, seed=0, batch_size=batch_size, backend=backend,
                                     samples=samples)
            seconds[backend] = time.perf_counter() - start
            passes[backend] = item_values(fidelity_items(out, lang), "response_pass")
            chars[backend] = sum(len(r["response"]) for r in out) / len(out)
    diff = paired_difference(passes["llamacpp"], passes["hf"])
    rate = {b: 100 * sum(v.values()) / len(v) for b, v in passes.items()}
    # What `auto` would pick here, from its own probe of the first batch, against what was just measured.
    probe = measure(model, tok, rows[:batch_size], samples=samples, probe_tokens=min(max_new_tokens, PROBE_TOKENS),
                    temperature=0.6, top_p=0.9)
    tokens = len(rows) * samples * max_new_tokens
    chosen = pick(probe, tokens, exported=True)
    predicted_hf, predicted_cpp = predicted_seconds(probe, tokens, exported=True)
    faster = "llamacpp" if seconds["llamacpp"] <= MARGIN * seconds["hf"] else "hf"
    return {"eval_setting": f"{len(rows)} {lang} prompts ({prompts}) x {samples} samples, {max_new_tokens} tokens",
            # 3 decimals: a tiny model's whole setting takes hundredths of a second
            "eval_setting_torch_s": round(seconds["hf"], 3), "eval_setting_llamacpp_s": round(seconds["llamacpp"], 3),
            "eval_setting_export_s": round(export_s, 3),
            "eval_setting_llamacpp_speedup": ratio(seconds["hf"], seconds["llamacpp"]),
            "eval_setting_fidelity_torch": round(rate["hf"], 1),
            "eval_setting_fidelity_llamacpp": round(rate["llamacpp"], 1),
            "eval_setting_fidelity_diff": [round(100 * x, 1) for x in (diff.diff, diff.ci_low, diff.ci_high)],
            "eval_setting_fidelity_p": round(diff.p_value, 3),
            "eval_setting_mean_chars": {b: round(c, 1) for b, c in chars.items()},
            "auto_probe": probe["probe"], "auto_pick": chosen.backend, "auto_pick_by_measured_times": faster,
            "auto_predicted_llamacpp_speedup": ratio(predicted_hf, predicted_cpp)}


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
    ap.add_argument("--sweep", default="", help="llama.cpp f16 timed at each of these sequences per call: 4,8,16")
    ap.add_argument("--eval-setting", default="", metavar="NxK",
                    help="also time generate_responses on N Swahili prompts x K samples with each backend")
    ap.add_argument("--eval-prompts", default="demo", help="the prompt set of --eval-setting: demo or demo-v2")
    ap.add_argument("--eval-batch-size", type=int, default=16, help="the torch path's prompts per batch there")
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
    sweep = [int(p) for p in args.sweep.split(",") if p]
    llama = measure_llamacpp(model, tok, ids, stop, n, args.parallel, sweep, torch.get_num_threads())
    setting = {}
    if args.eval_setting:
        n_prompts, samples = (int(x) for x in args.eval_setting.lower().split("x"))
        setting = eval_setting(model, tok, n_prompts, samples, args.eval_prompts, "sw", n, args.eval_batch_size)
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
        "speedup_vs_hf_generate": ratio(ours_same, hf_same),
        "speedup_at_our_batch": ratio(ours_big, hf_same),
        **llama,
        "llamacpp_speedup_vs_ours": ratio(llama["llamacpp_f16_tok_s"], ours_big),
        **setting,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
