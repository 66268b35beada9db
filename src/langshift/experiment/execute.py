"""Run an experiment's stages, skipping what is done, then merge the results into one report.

With `jobs: 1` the stages run one after another in this process. With `jobs: N` up to N run at once,
each in a child process (`python -m langshift.experiment.execute STAGE_DIR`) as soon as the stages it
reads are done, the costliest ready stage first. Each child gets its share of the CPU cores (on a
small CPU one thread per process beats two threads in one: less synchronisation, and decoding is
bound by memory reads) or, when there are enough GPUs, a GPU of its own; its output goes to
`logs/<stage>.log` and its item progress to `logs/<stage>.progress.json` (langshift.progress), which
the parent shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from langshift.experiment.config import Experiment
from langshift.experiment.plan import Stage, is_done, plan, run_stage_dir, write_spec
from langshift.files import write_json
from langshift.progress import ENV as PROGRESS_ENV
from langshift.progress import read_progress


class StageFailed(RuntimeError):
    """A stage's child process failed; the message ends with its log."""

    exit_code = 1


def run_experiment(exp: Experiment, *, progress: bool = True) -> Path:
    out = Path(exp.out)
    out.mkdir(parents=True, exist_ok=True)
    root = stage_root(exp)  # where stage directories live (shared between runs with `stages:`)
    stages = plan(exp, root)
    write_json(out / "experiment.json", {"experiment": exp.model_dump(mode="json"), "stages": [
        {"kind": s.kind, "label": s.label, "dir": str(s.directory(root)), "done": is_done(s.directory(root))}
        for s in stages]})
    todo = [s for s in stages if not is_done(s.directory(root))]
    bar = tqdm(total=len(stages), initial=len(stages) - len(todo), desc=exp.name, unit="stage", disable=not progress,
               position=0, leave=True)
    if exp.jobs > 1 and len(todo) > 1:
        run_parallel(todo, root, exp.jobs, bar)
    for stage in todo:
        if not is_done(stage.directory(root)):
            bar.set_postfix_str(f"{stage.kind} {stage.label}")
            tqdm.write(f"[langshift run] {stage.kind}: {stage.label} -> {stage.directory(root)}")
            run_stage_dir(write_spec(stage, root))
            bar.update(1)
    bar.close()
    return write_results(exp, stages, root)


def write_results(exp: Experiment, stages: list[Stage], root: Path) -> Path:
    """The run's results.json (a row per number of every evaluation, and the paired comparisons between
    them) and report.md, in `exp.out`; `root` holds the stage directories."""
    from langshift.report import write_report
    from langshift.report.compare import run_comparisons
    from langshift.report.rows import result_rows

    rows, evals = [], []
    for stage in stages:
        if stage.kind == "eval":
            results = json.loads((stage.directory(root) / "results.json").read_text(encoding="utf-8"))
            got = result_rows(results, stage.facts, baseline=stage.spec["baseline_method"])
            rows += got
            evals.append((stage.facts, stage.directory(root)))
            if stage.facts["method"] != "base":
                _card(Path(stage.spec["eval"]["model"]), got, stage.spec["eval"])
    comparisons = run_comparisons(evals, exp.eval.baseline)
    out = Path(exp.out)
    write_json(out / "results.json", {"experiment": exp.name, "rows": rows, "comparisons": comparisons})
    write_report(rows, out, title=f"langshift experiment: {exp.name}", comparisons=comparisons)
    return out


def stage_root(exp: Experiment) -> Path:
    return Path(exp.stages or exp.out)


def _card(model_dir: Path, rows: list[dict], options: dict) -> None:
    """The trained model's card, now with the evaluation of it; sets read from local files are named
    as such, not as the hub benchmarks they stand in for."""
    from langshift.card import write_model_card

    sets = {task: (Path(source).name, f"{Path(source).stem} (local file)")
            for task, source in (("belebele", options.get("belebele")), ("mmmlu", options.get("mmmlu")),
                                 ("fidelity", options.get("prompts") or "demo prompts.jsonl"))
            if source and Path(source).suffix in (".jsonl", ".json")}
    write_model_card(model_dir, rows, eval_sets=sets)


def run_parallel(todo: list[Stage], root: Path, jobs: int, bar) -> None:
    """Run `todo` in up to `jobs` child processes, each stage once its inputs are done."""
    import torch

    gpus = torch.cuda.device_count()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    (root / "logs").mkdir(exist_ok=True)
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
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise StageFailed(f"stage {what} failed; the end of {log}:\n" + "\n".join(tail))


if __name__ == "__main__":  # a child of run_parallel: run one stage from its directory
    run_stage_dir(Path(sys.argv[1]))
