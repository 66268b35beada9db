"""Several `langshift train` runs in one launch: `python fsdp_probe.py RUNS.json` (one process) or
`accelerate launch --config_file configs/accelerate/fsdp.yaml ... fsdp_probe.py RUNS.json` (sharded).

RUNS.json lists {"train": TrainConfig options, "kill_rank": r, "kill_at": step}. Each run goes through
`langshift.train.recipe.train`, the function `langshift train` calls, so one launch (two interpreters
started once) serves every case. The probe only observes: after each run every rank appends to
`<out>/probe.rank<R>.json` how the model was wrapped, the bytes of parameters, gradients and optimizer
state it held (its shards, under FSDP), and the reference log-probs it computed. `kill_rank`/`kill_at`:
that rank SIGKILLs itself as optimizer step `kill_at + 1` begins (checkpoint `kill_at` complete).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback

from langshift.train import reference
from langshift.train.config import TrainConfig
from langshift.train.recipe import train


def _local(t):
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def _bytes(tensors) -> int:
    return sum(_local(t).numel() * _local(t).element_size() for t in tensors if t is not None)


class Probe(TrainerCallback):
    def __init__(self, kill_rank: int | None, kill_at: int | None):
        self.kill_rank, self.kill_at, self.facts = kill_rank, kill_at, {}

    def on_step_begin(self, args, state, control, **kw):
        if args.process_index == self.kill_rank and state.global_step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_optimizer_step(self, args, state, control, model=None, optimizer=None, **kw):
        # after the first optimizer step (Adam's moments exist), before the gradients are zeroed
        if "grad_bytes" in self.facts or model is None:
            return
        from torch.distributed.fsdp import FSDPModule

        params = list(model.parameters())
        opt_state = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim()]
        self.facts.update({
            "wrapped": type(model).__name__, "fsdp": isinstance(model, FSDPModule),
            "param_bytes": _bytes(params), "grad_bytes": _bytes(p.grad for p in params),
            "optimizer_bytes": _bytes(opt_state),
            "trainable_bytes": _bytes(p for p in params if p.requires_grad),
        })


def main() -> None:
    runs = json.loads(Path(sys.argv[1]).read_text())
    rank = int(os.environ.get("RANK", "0"))
    scored = reference.sequence_logps
    counted = {"reference_rows": 0}

    def counting(lm, seqs, *args, **kw):
        counted["reference_rows"] += len(seqs)
        return scored(lm, seqs, *args, **kw)

    reference.sequence_logps = counting
    torch.set_num_threads(1)
    for run in runs:
        counted["reference_rows"] = 0
        probe = Probe(run.get("kill_rank"), run.get("kill_at"))
        out = train(TrainConfig(**run["train"]), callbacks=[probe])
        facts = {**probe.facts, **counted, "world": int(os.environ.get("WORLD_SIZE", "1"))}
        (Path(out) / f"probe.rank{rank}.json").write_text(json.dumps(facts))


if __name__ == "__main__":
    main()
