"""The GPU check: CLO against TRL's DPOTrainer and our SFT at Llama-3.2-1B and Llama-3-8B shapes.

    bash bench/gpu_check.sh              # on a GPU machine (installs the carried wheels first)
    python bench/gpu_check.py --tiny     # the same code path on the CPU with tiny shapes, in seconds

Per shape, in one run, on the same records and the same random-weight bf16 model (built on the GPU
from the shape's config.json; nothing is downloaded), each contender in its own process through the
workers of bench/train_step.py:
  clo      our engine with `langshift train`'s GPU defaults, attention-only, the reference pre-pass
           (no-grad, into an empty cache) timed as part of its cost;
  sft      our engine, `--method sft`, the same trainable set and defaults;
  trl-dpo  TRL's DPOTrainer on the doubled triplets (x_en, y_en, y_t) and (x_t, y_t, y_en), TRL's
           defaults (activation checkpointing on, reference = a second copy of the model).
`--steps` optimizer steps of 8 records each. Reported per contender: seconds per record (all steps,
and steady = the reference pass plus the median step after the first), training tokens per second,
peak GPU memory (torch.cuda.max_memory_allocated during the job), and MFU against the best bf16
n x n matmul measured in this run:
    model FLOPs = (2N + 2N + 2N_t) * T [forward, input gradients, weight gradients of the trained part]
                + 2N * T                [reference forward: clo and trl-dpo]
with N the parameters that take part in matmuls, N_t the trained ones, T the tokens of the trained
sequences (the useful work: a prompt our layout runs once for its two responses counts twice;
`forward_tokens` says what our forward ran). Then the paper's efficiency claims (Limitations,
"Computational Efficiency": CLO's GPU
memory "up to 55% higher than ... SFT" and "approximately 30% lower than ... DPO"; training time
"nearly identical to or slightly higher than that of SFT") are checked on this machine:
    clo_mem_vs_sft <= 1.55    clo_mem_vs_dpo <= 0.70    clo_time_vs_sft <= --time-close (1.25)
The records are the demo's Swahili pairs with each response joined to the next ones' (`--lengthen`),
tokenized by the Llama-3-style stand-in tokenizer of langshift.testing.hub (a byte-level BPE with
Llama-3's special tokens; the shapes keep Llama-3's 128,256-row embedding). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_step  # noqa: E402  (the workers and the process harness this check runs on)

from langshift.testing.hub import REAL_CONFIGS, TINY, build_hub_cache  # noqa: E402

CONTENDERS = ("clo", "sft", "trl-dpo")
CONFIG_KEYS_DROPPED = ("architectures", "torch_dtype", "transformers_version", "_name_or_path")
LLAMA3_8B = {k: v for k, v in REAL_CONFIGS["meta-llama/Meta-Llama-3-8B"].items() if k not in CONFIG_KEYS_DROPPED}
# meta-llama/Llama-3.2-1B config.json: 16 layers, hidden 2048, GQA 32/8 (head_dim 64), tied embeddings,
# llama3 rope scaling.
LLAMA32_1B = {
    **LLAMA3_8B,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "max_position_embeddings": 131072,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": True,
}
SHAPES = {
    "llama-3.2-1b": LLAMA32_1B,
    "llama-3-8b": LLAMA3_8B,
    "tiny-llama-3": {**LLAMA3_8B, **TINY, "num_key_value_heads": 1, "vocab_size": 2048},
    "tiny-llama-3.2": {**LLAMA32_1B, **TINY, "num_key_value_heads": 1, "head_dim": 16, "vocab_size": 2048},
}
CLAIMS = {  # name -> (ratio, bound): the claim holds when ratio <= bound
    "clo_mem_vs_sft": 1.55,
    "clo_mem_vs_dpo": 0.70,
}


def run_worker(name: str, plan_path: Path, verbose: bool, in_process: bool) -> dict:
    """One bench/train_step.py worker: in a fresh process (the measurement), or in this one (--in-process:
    the same worker code without the per-process start-up, for the CPU test of this script)."""
    if not in_process:
        return train_step.spawn(name, plan_path, verbose)
    import torch

    plan = json.loads(plan_path.read_text())
    if plan.get("threads"):
        torch.set_num_threads(plan["threads"])
    torch.manual_seed(0)
    t = time.perf_counter()
    return {**train_step.worker_fn(name)({**plan, "contender": name}), "wall_s": time.perf_counter() - t}


def model_flops(contender: str, r: dict) -> float:
    n, n_t, tokens = r["matmul_params"], r["trainable"], r["tokens"]
    reference = 2 * n * tokens if contender in ("clo", "trl-dpo") else 0
    return (4 * n + 2 * n_t) * tokens + reference


def summarize(contender: str, r: dict, peak_flops: float) -> dict:
    records = r["steps"] * train_step.BATCH
    steps = r["step_s"]
    steady_step = statistics.median(steps[1:]) if len(steps) > 1 else steps[0]
    return {
        "s_per_record": r["time_s"] / records,
        "steady_s_per_record": r["ref_s"] / records + steady_step / train_step.BATCH,
        "ref_s": r["ref_s"],
        "step_s": [round(s, 4) for s in steps],
        "tokens": r["tokens"],
        "forward_tokens": r.get("forward_tokens"),
        "tokens_per_s": r["tokens"] / r["time_s"],
        "peak_mem_mb": r["peak_delta_mb"],
        "peak_reserved_mb": r.get("peak_reserved_mb"),
        "memory": r["memory"],
        "mfu": model_flops(contender, r) / r["time_s"] / peak_flops,
        "params": r["params"],
        "trainable": r["trainable"],
        "micro_batch_records": r.get("micro_batch_records"),
        "losses": [round(x, 4) for x in r["losses"]],
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b > 0 else None


def check_claims(s: dict, time_close: float, memory_isolated: bool = True) -> dict:
    """CLO's ratios to SFT and TRL DPO, and whether each claim holds (None: not measurable here, e.g.
    memory when the workers shared one process)."""
    clo, sft, dpo = s["clo"], s["sft"], s["trl-dpo"]
    mem = "peak_mem_mb" if memory_isolated else None
    ratios = {
        "clo_mem_vs_sft": ratio(clo[mem], sft[mem]) if mem else None,
        "clo_mem_vs_dpo": ratio(clo[mem], dpo[mem]) if mem else None,
        "clo_time_vs_sft": ratio(clo["steady_s_per_record"], sft["steady_s_per_record"]),
        "clo_time_vs_dpo": ratio(clo["steady_s_per_record"], dpo["steady_s_per_record"]),
    }
    bounds = {**CLAIMS, "clo_time_vs_sft": time_close}
    holds = {f"{k}_holds": None if ratios[k] is None else ratios[k] <= bound for k, bound in bounds.items()}
    return {**ratios, **holds}


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "transformers", "trl", "datasets", "accelerate", "pyarrow"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes, fp32 on the CPU: the code path in seconds")
    ap.add_argument("--shapes", help=f"comma-separated, of {sorted(SHAPES)}")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps of 8 records (default 4; tiny 2)")
    ap.add_argument("--lengthen", type=int, default=None, help="responses joined per record (default 3; tiny 1)")
    ap.add_argument("--max-length", type=int, default=None, help="default 3000, the paper's (tiny 512)")
    ap.add_argument("--matmul-n", type=int, default=None, help="default 8192 (tiny 256)")
    ap.add_argument("--time-close", type=float, default=1.25, help="CLO/SFT time ratio still 'close'")
    ap.add_argument("--deadline-s", type=float, default=420, help="skip what would start after this many s")
    ap.add_argument("--out", help="also write the JSON result here")
    ap.add_argument("--in-process", action="store_true", help="workers in this process (tests; no isolation)")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()

    import torch

    start = time.perf_counter()
    device = "cpu" if a.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --tiny for the CPU code path")
    shapes = (a.shapes or ("tiny-llama-3.2,tiny-llama-3" if a.tiny else "llama-3.2-1b,llama-3-8b")).split(",")
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        raise SystemExit(f"unknown shapes {unknown}; one of {sorted(SHAPES)}")
    steps = a.steps or (2 if a.tiny else 4)
    lengthen = a.lengthen or (1 if a.tiny else 3)
    n_records = steps * train_step.BATCH

    from langshift.records import save_records

    result = {"check": "gpu" if device == "cuda" else "cpu-tiny", "versions": versions(), "shapes": {},
              "claims": {}, "skipped": [], "memory_isolated": not a.in_process}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        work = Path(work)
        hub = build_hub_cache(work / "hub", ["meta-llama/Meta-Llama-3-8B"])
        tokenizer_dir = next((hub / "models--meta-llama--Meta-Llama-3-8B" / "snapshots").iterdir())
        records = train_step.lengthen(train_step.build_records(n_records, seed=0), lengthen)
        data = save_records(work / "records.jsonl", records)
        base = {"model": str(tokenizer_dir), "tokenizer": str(tokenizer_dir), "data": str(data), "work": str(work),
                "steps": steps, "lr": 5e-5, "max_length": a.max_length or (512 if a.tiny else 3000),
                "threads": 1 if a.tiny else 0, "device": device,
                "dtype": "float32" if a.tiny else "bfloat16",
                "matmul_n": a.matmul_n or (256 if a.tiny else 8192), "matmul_reps": 10}
        plan_path = work / "plan-matmul.json"
        plan_path.write_text(json.dumps(base))
        matmul = run_worker("matmul", plan_path, a.verbose, a.in_process)
        result["matmul"] = {k: matmul[k] for k in ("n", "dtype", "device_name", "best_s")}
        result["matmul"]["peak_tflops"] = matmul["peak_flops"] / 1e12
        for shape in shapes:
            plan_path = work / f"plan-{shape}.json"
            plan_path.write_text(json.dumps({**base, "config": SHAPES[shape]}))
            runs = {}
            for contender in CONTENDERS:
                if time.perf_counter() - start > a.deadline_s:
                    result["skipped"].append(f"{shape}/{contender}")
                    continue
                print(f"[gpu-check] {shape} {contender} ...", file=sys.stderr, flush=True)
                runs[contender] = run_worker(contender, plan_path, a.verbose, a.in_process)
                summary = {c: summarize(c, r, matmul["peak_flops"]) for c, r in runs.items()}
                if "trl-dpo" in runs:
                    summary["trl-dpo"]["same_token_ids"] = runs["trl-dpo"]["same_token_ids"]
                result["shapes"][shape] = summary
                if a.out:  # what is measured so far survives a kill by the caller's time limit
                    Path(a.out).write_text(json.dumps({**result, "partial": True}) + "\n")
            if len(summary) == len(CONTENDERS):
                result["claims"][shape] = check_claims(summary, a.time_close, memory_isolated=not a.in_process)
    result["records"] = n_records
    result["tokens_per_record"] = {s: v["clo"]["tokens"] / n_records for s, v in result["shapes"].items() if "clo" in v}
    verdicts = [v for c in result["claims"].values() for k, v in c.items() if k.endswith("_holds")]
    result["all_claims_hold"] = (
        bool(verdicts) and not result["skipped"] and all(v is not None for v in verdicts) and all(verdicts)
    )
    result["wall_s"] = round(time.perf_counter() - start, 1)
    for shape, summary in result["shapes"].items():
        print(f"\n{shape}: {'contender':8} {'s/record':>9} {'steady':>8} {'tok/s':>9} {'peak MB':>9} {'MFU':>6}",
              file=sys.stderr)
        for c, r in summary.items():
            print(f"{'':{len(shape) + 1}} {c:8} {r['s_per_record']:9.4f} {r['steady_s_per_record']:8.4f} "
                  f"{r['tokens_per_s']:9.0f} {r['peak_mem_mb']:9.0f} {r['mfu']:6.3f}", file=sys.stderr)
    line = json.dumps(result)
    if a.out:
        Path(a.out).write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
