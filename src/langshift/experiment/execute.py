"""Run an experiment's stages, skipping what is done, then merge the results into one report.

Which stages are done is read from their directories (`stage.json`); the rest go to the executor the
config names (`executor.kind`, experiment/executors.py): this machine, serially or `jobs: N` child
processes, or a SLURM cluster through submitit. The report is written here, from the stages'
directories, so it is the same whichever executor ran them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from langshift.experiment.config import Experiment
from langshift.experiment.executors import StageFailed, make_executor
from langshift.experiment.plan import Stage, is_done, plan, run_stage_dir
from langshift.files import write_json

__all__ = ["StageFailed", "run_experiment", "write_results"]


def run_experiment(exp: Experiment, *, progress: bool = True) -> Path:
    out = Path(exp.out)
    out.mkdir(parents=True, exist_ok=True)
    root = stage_root(exp)  # where stage directories live (shared between runs with `stages:`)
    root.mkdir(parents=True, exist_ok=True)
    stages = plan(exp, root)
    write_json(out / "experiment.json", {"experiment": exp.model_dump(mode="json"), "stages": [
        {"kind": s.kind, "label": s.label, "dir": str(s.directory(root)), "done": is_done(s.directory(root))}
        for s in stages]})
    todo = [s for s in stages if not is_done(s.directory(root))]
    bar = tqdm(total=len(stages), initial=len(stages) - len(todo), desc=exp.name, unit="stage", disable=not progress,
               position=0, leave=True)
    if todo:
        make_executor(exp).run(todo, root, bar)
    bar.close()
    return write_results(exp, stages, root)


def write_results(exp: Experiment, stages: list[Stage], root: Path) -> Path:
    """The run's results.json (a row per number of every evaluation, and the paired comparisons between
    them) and report.md, in `exp.out`; `root` holds the stage directories."""
    from langshift.eval.suite import rescore
    from langshift.report import write_report
    from langshift.report.compare import run_comparisons, run_interactions
    from langshift.report.rows import result_rows

    rows, evals = [], []
    for stage in stages:
        if stage.kind == "eval":
            rescore(stage.directory(root), exp.eval.tasks)  # a new or changed response scorer: no re-run
            results = json.loads((stage.directory(root) / "results.json").read_text(encoding="utf-8"))
            got = result_rows(results, stage.facts, baseline=stage.spec["baseline_method"])
            rows += got
            evals.append((stage.facts, stage.directory(root)))
            if stage.facts["method"] != "base":
                _card(Path(stage.spec["eval"]["model"]), got, stage.spec["eval"])
    comparisons = run_comparisons(evals, exp.eval.baseline)
    interactions = run_interactions(evals, exp.eval.baseline)
    out = Path(exp.out)
    write_json(out / "results.json", {"experiment": exp.name, "rows": rows, "comparisons": comparisons,
                                      "interactions": interactions})
    write_report(rows, out, title=f"langshift experiment: {exp.name}", comparisons=comparisons,
                 interactions=interactions)
    return out


def stage_root(exp: Experiment) -> Path:
    return Path(exp.stages or exp.out)


def _card(model_dir: Path, rows: list[dict], options: dict) -> None:
    """The trained model's card, now with the evaluation of it; sets read from local files are named
    as such, not as the hub benchmarks they stand in for."""
    from langshift.card import write_model_card

    sets = {task: (Path(source).name, f"{Path(source).stem} (local file)")
            for task, source in (("belebele", options.get("belebele")), ("mmmlu", options.get("mmmlu")),
                                 ("fidelity", options.get("prompts") or "demo prompts.jsonl"),
                                 ("confusion", options.get("prompts") or "demo prompts.jsonl"))
            if source and Path(source).suffix in (".jsonl", ".json")}
    write_model_card(model_dir, rows, eval_sets=sets)


if __name__ == "__main__":  # a child of the local executor's run_parallel: run one stage from its directory
    run_stage_dir(Path(sys.argv[1]))
