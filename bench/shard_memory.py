"""Per-rank training memory of the paper's models: DDP against FSDP2 (full shard), attention-only and full.

    python bench/shard_memory.py                  # every model of the paper's configs, 8 ranks
    python bench/shard_memory.py --ranks 4 --gpu-gib 40 --json out.json

No weights: each model is built from its real config.json (`langshift.testing.hub.REAL_CONFIGS`) on
PyTorch's meta device, and what trains is chosen by langshift's own `select_trainable`, so the counts
are the trainer's. With P parameters, T of them trainable, N ranks, the largest decoder layer U (one
FSDP2 unit, `fully_shard` per layer as configs/accelerate/fsdp.yaml's TRANSFORMER_BASED_WRAP does) and
accelerate's bf16 mixed precision (fp32 parameters and optimizer, bf16 compute):

    DDP, per rank      params 4P + grads 4T + AdamW 8T + all-reduce buckets 4T
    FSDP2, per rank    params 4P/N + grads 4T/N + AdamW 8T/N + bf16 working copies 2·2U
                       (the all-gathered unit being computed and the next one prefetched)

Frozen parameters are sharded like the others (FSDP2 shards every parameter of a unit; requires_grad
only decides which get gradients and optimizer state), which is why attention-only training still gains
N-fold on parameters. Not counted: activations (they depend on batch and sequence length; CLO's 4
sequences per record), the CUDA context (~0.5-1 GiB), allocator fragmentation; CLO's reference
log-probs come from a pre-pass cache, so no reference model is resident. The fit column therefore
says whether the states leave at least `--headroom` of the GPU for activations.

Checked against sharded runs: `tests/train/test_fsdp.py` trains a tiny Llama and a tiny Gemma-3 under
FSDP2 on 2 CPU processes (attention-only and full, fp32) and finds each rank holding exactly 4P/N, 4T/N and
8T/N bytes of parameters, gradients and Adam moments, and one process exactly the DDP side's 4P, 4T, 8T
(`tests/bench/test_shard_memory.py` checks that side against a real AdamW step as well). The bf16
working copies and activations are not measured there.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

GIB = 2**30


@dataclass(frozen=True)
class Counts:
    params: int
    trainable: int
    largest_unit: int  # parameters of the largest decoder layer


@dataclass(frozen=True)
class PerRank:
    params: float
    grads: float
    optimizer: float
    other: float  # DDP: all-reduce buckets; FSDP2: the bf16 all-gathered units

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.other


def counts(config: dict, trainable: str) -> Counts:
    """P, T and U of a model built from `config` on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from langshift.train.params import decoder_layers, select_trainable

    cfg = AutoConfig.for_model(**{k: v for k, v in config.items() if not k.startswith("_")})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    select_trainable(model, trainable)
    layer = max(sum(p.numel() for p in unit.parameters()) for unit in decoder_layers(model))
    return Counts(params=sum(p.numel() for p in model.parameters()),
                  trainable=sum(p.numel() for p in model.parameters() if p.requires_grad), largest_unit=layer)


def ddp(c: Counts) -> PerRank:
    return PerRank(params=4 * c.params, grads=4 * c.trainable, optimizer=8 * c.trainable, other=4 * c.trainable)


def fsdp2(c: Counts, ranks: int) -> PerRank:
    return PerRank(params=4 * c.params / ranks, grads=4 * c.trainable / ranks, optimizer=8 * c.trainable / ranks,
                   other=2 * 2 * c.largest_unit)


def table(ranks: int, gpu_gib: float, headroom: float) -> list[dict]:
    from langshift.testing.hub import REAL_CONFIGS

    rows = []
    for name, config in REAL_CONFIGS.items():
        for trainable in ("attention", "full"):
            c = counts(config, trainable)
            for strategy, per in (("DDP", ddp(c)), (f"FSDP2 x{ranks}", fsdp2(c, ranks))):
                rows.append({"model": name, "trainable": trainable, "strategy": strategy,
                             "n_params": c.params, "n_trainable": c.trainable, "n_largest_unit": c.largest_unit,
                             **{f"{k}_gib": v / GIB for k, v in asdict(per).items()}, "total_gib": per.total / GIB,
                             "fits": per.total / GIB <= gpu_gib * (1 - headroom)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=int, default=8, help="GPUs the model is sharded over (the paper: 8)")
    ap.add_argument("--gpu-gib", type=float, default=80.0, help="memory of one GPU (A100/H100 80GB: 80)")
    ap.add_argument("--headroom", type=float, default=0.3, help="share of the GPU left for activations")
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args()
    rows = table(a.ranks, a.gpu_gib, a.headroom)
    print(f"| model | trainable | strategy | params (B) | trainable (B) | params GiB | grads | AdamW | other | "
          f"total GiB | fits {a.gpu_gib:g} GiB, {a.headroom:.0%} left |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['model']} | {r['trainable']} | {r['strategy']} | {r['n_params'] / 1e9:.2f} | "
              f"{r['n_trainable'] / 1e9:.2f} | {r['params_gib']:.1f} | {r['grads_gib']:.1f} | "
              f"{r['optimizer_gib']:.1f} | {r['other_gib']:.1f} | {r['total_gib']:.1f} | "
              f"{'yes' if r['fits'] else 'no'} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
