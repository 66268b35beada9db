"""Which checkpoint a resumed run starts from: the newest *complete* one.

transformers (5.x, `Trainer._save_checkpoint`) writes `checkpoint-N/` in place, in this order:
model weights, optimizer, scheduler, scaler and RNG state, then `trainer_state.json`, then it deletes
checkpoints beyond `save_total_limit`. A process killed before the end leaves a torn directory, and
`resume_from_checkpoint=True` takes the highest N whatever its state ("Can't find a valid
checkpoint", or FileNotFoundError on trainer_state.json), on every rerun.

`trainer_state.json` is written last, so it is the commit record: a checkpoint is complete when that
file parses and names step N, and the files written before it are there (weights; optimizer and
scheduler unless the run saved the model only). Torn directories are removed before resuming, so
neither transformers' rotation (which orders by mtime) nor a later save at the same step meets them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

CHECKPOINT = re.compile(r"checkpoint-(\d+)")
STATE = "trainer_state.json"
# Weights as the Trainer saves them: full model (sharded or not), a PEFT adapter, FSDP or DeepSpeed state.
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors",
           "pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin", "pytorch_model_fsdp.bin")
# FSDP's sharded state (torch.distributed.checkpoint): a directory of per-rank files whose `.metadata` is
# written last, once every rank's file is complete, so a directory without it was torn by a kill.
WEIGHT_DIRS = ("pytorch_model_fsdp_0",)
OPTIMIZER = ("optimizer.pt", "optimizer.bin", "optimizer_0")
DCP_DIRS = ("pytorch_model_fsdp_0", "optimizer_0")


def checkpoint_step(path: Path) -> int | None:
    found = CHECKPOINT.fullmatch(path.name)
    return int(found.group(1)) if found else None


def checkpoint_problem(path: str | Path, *, with_optimizer: bool = True) -> str | None:
    """Why `path` cannot be resumed from (None: it is complete)."""
    path = Path(path)
    step = checkpoint_step(path)
    if step is None or not path.is_dir():
        return "not a checkpoint-N directory"
    try:
        state = json.loads((path / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {STATE} (killed while saving)"
    except (UnicodeDecodeError, ValueError):
        return f"{STATE} is torn (killed while writing it)"
    if not isinstance(state, dict) or state.get("global_step") != step:
        return f"{STATE} does not name step {step}"
    names = {p.name for p in path.iterdir()}
    deepspeed = any(n.startswith("global_step") for n in names)
    if not (names & set(WEIGHTS) or names & set(WEIGHT_DIRS) or deepspeed):
        return "no model weights"
    index = next((path / n for n in ("model.safetensors.index.json", "pytorch_model.bin.index.json") if n in names),
                 None)
    if index is not None:
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError):
            return f"{index.name} is torn"
        if missing := sorted(shards - names):
            return f"weight shard {missing[0]} is missing"
    if with_optimizer and not (names & set(OPTIMIZER) or deepspeed):
        return "no optimizer state"
    for name in sorted(names & set(DCP_DIRS)):
        if not (path / name / ".metadata").is_file():
            return f"sharded state {name} has no .metadata (killed while saving)"
    return None


def checkpoints_by_step(checkpoints_dir: str | Path) -> list[Path]:
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=checkpoint_step)


def latest_complete_checkpoint(checkpoints_dir: str | Path, *, with_optimizer: bool = True) -> Path | None:
    """The complete checkpoint with the highest step under `checkpoints_dir`, or None."""
    for path in reversed(checkpoints_by_step(checkpoints_dir)):
        if checkpoint_problem(path, with_optimizer=with_optimizer) is None:
            return path
    return None


def remove_torn_checkpoints(checkpoints_dir: str | Path, *, with_optimizer: bool = True) -> list[tuple[Path, str]]:
    """Delete every incomplete checkpoint-N under `checkpoints_dir`; returns (path, why) for each.
    Call it from one process only, while no training writes there."""
    removed = []
    for path in checkpoints_by_step(checkpoints_dir):
        problem = checkpoint_problem(path, with_optimizer=with_optimizer)
        if problem is not None:
            shutil.rmtree(path, ignore_errors=True)
            removed.append((path, problem))
    return removed
