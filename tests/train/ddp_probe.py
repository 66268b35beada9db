"""`langshift train` with a probe, for launching under torchrun: `torchrun ... ddp_probe.py PROBE.jsonl train ...`.

It runs the real CLI (langshift.cli.main) unchanged; the probe only observes: for every training
batch each process appends {rank, world, step, seqs} (the token-id tuples it trained on) to
PROBE.jsonl.rankN, and after training a checksum of its trainable parameters, so the test can check
that the ranks saw different data and ended with the same weights (gradients were all-reduced).
It also counts the sequences each process scored in the reference pre-pass (only rank 0 should).
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from langshift import cli
from langshift.train import reference
from langshift.train.layout import scored_sequences
from langshift.train.trainer import LangshiftTrainer


def main() -> None:
    probe, sys.argv = sys.argv[1], [sys.argv[0], *sys.argv[2:]]
    rank = int(os.environ.get("RANK", "0"))
    log = open(f"{probe}.rank{rank}", "a")  # noqa: SIM115 - open for the whole run

    def emit(**row):
        log.write(json.dumps({"rank": rank, **row}) + "\n")
        log.flush()

    compute_loss, train = LangshiftTrainer.compute_loss, LangshiftTrainer.train

    def observed_compute_loss(self, model, inputs, *args, **kw):
        if model.training:
            seqs = scored_sequences(inputs)
            emit(
                event="batch",
                step=self.state.global_step,
                seqs=seqs,
                world=dist.get_world_size() if dist.is_initialized() else 1,
                backend=dist.get_backend() if dist.is_initialized() else None,
                args_world=self.args.world_size,
            )
        return compute_loss(self, model, inputs, *args, **kw)

    def checksums(model) -> dict:
        params = [p.detach().double() for p in model.parameters() if p.requires_grad]
        return {
            "checksum": float(sum(p.sum() for p in params)),
            "abs_checksum": float(sum(p.abs().sum() for p in params)),
        }

    def observed_train(self, *args, **kw):
        emit(event="start", **checksums(self.model))
        out = train(self, *args, **kw)
        emit(event="done", steps=self.state.global_step, **checksums(self.model))
        return out

    scored = reference.sequence_logps

    def observed_scoring(lm, seqs, *args, **kw):
        emit(event="reference", rows=len(seqs))
        return scored(lm, seqs, *args, **kw)

    reference.sequence_logps = observed_scoring
    LangshiftTrainer.compute_loss = observed_compute_loss
    LangshiftTrainer.train = observed_train
    torch.set_num_threads(1)
    cli.main()


if __name__ == "__main__":
    main()
