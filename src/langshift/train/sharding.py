"""FSDP2 on CPU processes: what accelerate leaves out, so the GPU user's launch can be rehearsed here.

    accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 2 --mixed_precision no \\
        -m langshift.cli train ...

runs the GPU user's config file on 2 CPU processes (gloo). accelerate (1.16) picks FSDP only for an
accelerator device (`AcceleratorState`: MULTI_GPU, MULTI_XPU, ...); on CPU processes it keeps
MULTI_CPU, and the Trainer then wraps the model in DDP without a word, so a "sharded" rehearsal would
test DDP. PyTorch's FSDP2 (`fully_shard`) itself runs on CPU over gloo. `allow_fsdp_on_cpu` makes the
one decision accelerate withholds: when the launch asked for FSDP (`ACCELERATE_USE_FSDP`) and the
processes are CPU ones, the state becomes FSDP with the launch's plugin, and everything after it
(`fsdp2_prepare_model`, sharded checkpoints, the gathered state dict) is accelerate's own code.

Attention-only training under FSDP2: frozen and trainable parameters share a unit (one `fully_shard` per
decoder layer, the config's TRANSFORMER_BASED_WRAP), and that is the choice made here. FSDP2 keeps each
parameter a DTensor with its own `requires_grad` (what FSDP1 needed `use_orig_params=True` for), so a
layer's frozen norms and MLP are sharded with its trainable attention and only the trainable ones get
gradients and Adam moments; wrapping the attention blocks as units of their own would gather the same
bytes in more collectives and save nothing. Per rank that is P/N parameters, T/N gradients and 2T/N Adam
moments in fp32 against DDP's P, T and 2T (bench/shard_memory.py; measured in tests/train/test_fsdp.py).

What FSDP asks of langshift's own forward is in logps.py (one decoder call and one head call per forward
on every rank; the frozen head's gradient written out rather than taken by an inner backward).
"""

from __future__ import annotations

import os

_PATCHED = False


def fsdp_requested() -> bool:
    """Whether `accelerate launch` was asked for FSDP (its config file, or --use_fsdp)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("true", "1")


def zero3_requested() -> bool:
    """Whether `accelerate launch` was asked for DeepSpeed ZeRO-3 (refused: configs/accelerate/deepspeed_zero3.yaml
    says why)."""
    return (os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("true", "1")
            and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3")


def allow_fsdp_on_cpu() -> bool:
    """Let an FSDP launch on CPU processes run FSDP (see the module's docstring). Idempotent; returns
    whether the patch is in place. A no-op where FSDP was not asked for or a GPU is present."""
    global _PATCHED
    import torch

    if _PATCHED:
        return True
    if not fsdp_requested() or torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return False
    from accelerate import state
    from accelerate.utils import DistributedType

    original = state.AcceleratorState.__init__

    def init(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            # what AcceleratorState's own FSDP branch does for an accelerator
            self.distributed_type = DistributedType.FSDP
            if self._mixed_precision != "no":
                fsdp_plugin.set_mixed_precision(self._mixed_precision)
            self.fsdp_plugin = fsdp_plugin
            state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    state.AcceleratorState.__init__ = init
    _PATCHED = True
    return True
