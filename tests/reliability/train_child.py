"""`python train_child.py CONFIG.json [KILL_AT]`: run `langshift.train.recipe.train` in its own process,
optionally SIGKILLing itself at one exact instant of writing a checkpoint:

  dir:N      right after `checkpoint-N/` is created, before anything is written into it;
  weights:N  right after checkpoint-N's model.safetensors is written (optimizer, scheduler, RNG state and
             trainer_state.json not yet).

The kill is a real SIGKILL of this process (no exception handler, no atexit, no flush); the hook only
chooses the instant, which polling from outside cannot pin down on a model this small.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import torch
from transformers import Trainer

from langshift.train.config import TrainConfig
from langshift.train.recipe import train


def kill_at(point: str) -> None:
    where, step = point.split(":")
    step = int(step)

    if where == "dir":
        save = Trainer._save

        def _save(self, output_dir=None, state_dict=None):
            if self.state.global_step == step and output_dir and os.path.basename(output_dir) == f"checkpoint-{step}":
                os.makedirs(output_dir, exist_ok=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return save(self, output_dir, state_dict)

        Trainer._save = _save
    elif where == "weights":
        save_optimizer = Trainer._save_optimizer_and_scheduler

        def _save_optimizer_and_scheduler(self, output_dir):
            if self.state.global_step == step:
                assert os.path.isfile(os.path.join(output_dir, "model.safetensors"))
                os.kill(os.getpid(), signal.SIGKILL)
            return save_optimizer(self, output_dir)

        Trainer._save_optimizer_and_scheduler = _save_optimizer_and_scheduler
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    with open(sys.argv[1]) as f:
        cfg = TrainConfig(**json.load(f))
    if len(sys.argv) > 2:
        kill_at(sys.argv[2])
    train(cfg)
