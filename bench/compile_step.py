"""torch.compile (inductor) on the CLO step's forward + backward, against the same step in eager mode.

Issue 15 asks whether a compiled forward pays back its compile time within the demo's run on the CPU.
Each mode runs in its own fresh process on the same model (SmolLM2-135M by default, attention-only
trainable, fp32), the same records and the engine's layout (`train/layout.py`: shared prompts, packed
bins), one micro-batch of 2 records after another:

    eager    the engine as it trains today
    layers   each decoder layer compiled (`layer.compile(dynamic=True)`): bins vary in length, so dynamic
             shapes; the layer is where the time goes, and a per-layer graph compiles once for all layers

Reported per mode: the first step (compilation included), the median of the later steps, and the largest
log-prob difference against eager on the same micro-batches (must stay within 1e-5 per token to be usable);
then `compile_s` (the first step's extra time), `steady_speedup` and `break_even_steps` (compile time over
the time saved per step; the demo's CLO-48 stage runs 6 optimizer steps of 8 records, 24 micro-batches).

    python bench/compile_step.py [--model smollm2] [--records 16] [--threads 0]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

MODES = ("eager", "layers")
MICRO = 2  # records per forward, as the demo's CLO runs on the CPU


def run_mode(mode: str, model_ref: str, records: int) -> dict:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import train_step  # the bench's records: token-identical across scripts

    from langshift import models
    from langshift.train.encode import Encoder
    from langshift.train.layout import layout
    from langshift.train.logps import layout_logps, plan_layout
    from langshift.train.params import select_trainable

    recs = train_step.build_records(records, 0)
    spec = models.resolve_model(model_ref)
    tok = models.load_tokenizer(spec)
    model = select_trainable(models.load_model(spec, dtype="float32"), "attention")
    enc = Encoder(tok, models.chat_format(tok), 1024)
    units = [list(enc.encode(r).values()) for r in recs]
    plan = plan_layout(model)
    batches = [layout([s for u in units[i:i + MICRO] for s in u], plan) for i in range(0, len(units), MICRO)]
    if mode == "layers":
        for layer in model.model.layers:
            layer.compile(dynamic=True)
    times, logps = [], []
    for b in batches:
        t = time.perf_counter()
        lp, n_tok = layout_logps(model, b, plan)
        lp.sum().backward()
        times.append(time.perf_counter() - t)
        logps.append((lp.detach() / n_tok.clamp(min=1)).tolist())
        print(f"[{mode}] step {len(times)}/{len(batches)} {times[-1]:.2f} s", file=sys.stderr, flush=True)
    later = sorted(times[1:])
    return {"mode": mode, "first_s": times[0], "steady_s": later[len(later) // 2], "steps": times,
            "per_token_logps": logps, "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--records", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.records < 2 * MICRO:  # the first step includes compilation; a steady step needs a second one
        ap.error(f"--records must be at least {2 * MICRO} (two micro-batches of {MICRO})")
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    if a.worker:
        print(json.dumps(run_mode(a.worker, a.model, a.records)))
        return
    load_before = os.getloadavg()
    res = {}
    for mode in MODES:
        cmd = [sys.executable, __file__, "--worker", mode, "--model", a.model, "--records", str(a.records),
               "--threads", str(a.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode:
            raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
        res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    eager, comp = res["eager"], res["layers"]
    drift = max(abs(x - y) for be, bc in zip(eager["per_token_logps"], comp["per_token_logps"], strict=True)
                for x, y in zip(be, bc, strict=True))
    compile_s = (comp["first_s"] - comp["steady_s"]) - (eager["first_s"] - eager["steady_s"])
    saved = eager["steady_s"] - comp["steady_s"]
    print(json.dumps({
        "model": a.model, "records": a.records, "micro_batch_records": MICRO, "threads": eager["threads"],
        "eager_first_s": eager["first_s"], "eager_steady_s": eager["steady_s"],
        "compiled_first_s": comp["first_s"], "compiled_steady_s": comp["steady_s"],
        "compile_s": compile_s, "steady_speedup": eager["steady_s"] / comp["steady_s"],
        "break_even_steps": compile_s / saved if saved > 0 else None,
        "max_abs_logp_diff_per_token": drift,
        "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
    }))


if __name__ == "__main__":
    main()
