"""Executors: how the stages that are not done yet get run. One small interface, chosen by `executor.kind`.

Every executor gets the same list of stages (in plan order: a stage after those it reads), runs each
once the stages it reads are done, advances the run's progress bar by one per finished stage and
raises `StageFailed` (the stage's name and the end of its log) when one fails. A stage always runs
through `plan.run_stage_dir`, from its directory alone, so the cache keys, resume and report are the
same whichever executor ran it.

  local   this machine: one stage after another in this process (`jobs: 1`), or up to `jobs: N`
          child processes (`python -m langshift.experiment.execute STAGE_DIR`) at once.
  slurm   one submitit job per stage on a SLURM cluster (experiment/slurm.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tqdm.auto import tqdm

from langshift.experiment.config import Experiment
from langshift.experiment.plan import Stage, is_done, run_stage_dir, write_spec
from langshift.progress import ENV as PROGRESS_ENV
from langshift.progress import read_progress

TAIL_LINES = 15  # of a failed stage's log, in the error


class StageFailed(RuntimeError):
    """A stage failed; the message names it and ends with its log."""

    exit_code = 1


def log_tail(log: Path, lines: int = TAIL_LINES) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Executor(Protocol):
    def run(self, todo: list[Stage], root: Path, bar: tqdm) -> None:
        """Run every stage in `todo`, each after the stages it reads; `bar.update(1)` per finished stage."""


class LocalExecutor:
    """This machine: serially in this process (`jobs: 1`), or up to `jobs` child processes at once."""

    def __init__(self, exp: Experiment):
        self.jobs = exp.jobs

    def run(self, todo: list[Stage], root: Path, bar: tqdm) -> None:
        if self.jobs > 1 and len(todo) > 1:
            run_parallel(todo, root, self.jobs, bar)
        for stage in todo:
            if not is_done(stage.directory(root)):
                bar.set_postfix_str(f"{stage.kind} {stage.label}")
                tqdm.write(f"[langshift run] {stage.kind}: {stage.label} -> {stage.directory(root)}")
                run_stage_dir(write_spec(stage, root))
                bar.update(1)


def run_parallel(todo: list[Stage], root: Path, jobs: int, bar: tqdm) -> None:
    """Run `todo` in up to `jobs` child processes, each stage once its inputs are done.

    Each child gets its share of the CPU cores (on a small CPU one thread per process beats two threads
    in one: less synchronisation, and decoding is bound by memory reads) or, when there are enough GPUs,
    a GPU of its own; its output goes to `logs/<stage>.log` and its item progress to
    `logs/<stage>.progress.json` (langshift.progress), which the parent shows."""
    import torch

    gpus = torch.cuda.device_count()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    (root / "logs").mkdir(parents=True, exist_ok=True)
    pending, running, failed = list(todo), {}, []  # failed: (what, log)
    free_slots, shown = list(range(jobs)), ""
    while pending or running:
        ready = sorted((s for s in pending if all(is_done(n.directory(root)) for n in s.needs)), key=lambda s: -s.cost)
        while ready and free_slots and not failed:
            stage, slot = ready.pop(0), free_slots.pop(0)
            pending.remove(stage)
            out = write_spec(stage, root)
            log = root / "logs" / f"{stage.kind}-{out.name}.log"
            channel = log.with_suffix(".progress.json")
            channel.unlink(missing_ok=True)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                   "TOKENIZERS_PARALLELISM": "false", PROGRESS_ENV: str(channel)}
            if gpus >= jobs:
                env["CUDA_VISIBLE_DEVICES"] = str(slot)
            tqdm.write(f"[langshift run] {stage.kind}: {stage.label} -> {out} (log: {log})")
            with open(log, "ab") as sink:
                child = subprocess.Popen([sys.executable, "-m", "langshift.experiment.execute", str(out)],
                                         stdout=sink, stderr=subprocess.STDOUT, env=env)
            running[child] = (stage, slot, log, channel)
        now = " | ".join(f"{s.kind} {s.label}: {read_progress(channel)}" for s, _, _, channel in running.values())
        if now != shown:
            bar.set_postfix_str(shown := now)
        if not running:
            break  # nothing can start: a failure, or inputs that will never be done
        time.sleep(0.5)
        for child in [c for c in running if c.poll() is not None]:
            stage, slot, log, _ = running.pop(child)
            free_slots.append(slot)
            if child.returncode == 0 and is_done(stage.directory(root)):
                bar.update(1)
            else:
                failed.append((f"{stage.kind} {stage.label} (exit {child.returncode})", log))
    if failed:
        what, log = failed[0]
        raise StageFailed(f"stage {what} failed; the end of {log}:\n{log_tail(log)}")


def _slurm(exp: Experiment) -> Executor:
    from langshift.experiment.slurm import SlurmExecutor  # submitit is the optional `cluster` extra

    return SlurmExecutor(exp)


EXECUTORS: dict[str, Callable[[Experiment], Executor]] = {"local": LocalExecutor, "slurm": _slurm}


def make_executor(exp: Experiment) -> Executor:
    return EXECUTORS[exp.executor.kind](exp)
