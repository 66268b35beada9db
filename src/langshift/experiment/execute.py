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
    root = Path(exp.out)
    root.mkdir(parents=True, exist_ok=True)
    stages = plan(exp, root)
    write_json(root / "experiment.json", {"experiment": exp.model_dump(mode="json"), "stages": [
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
    """The run's results.json (rows of every evaluation) and report.md."""
    from langshift.report import write_report
    from langshift.report.rows import result_rows

    rows = []
    for stage in stages:
        if stage.kind == "eval":
            results = json.loads((stage.directory(root) / "results.json").read_text(encoding="utf-8"))
            rows += result_rows(results, stage.facts, baseline=stage.spec["baseline_method"])
    write_json(root / "results.json", {"experiment": exp.name, "rows": rows})
    write_report(rows, root, title=f"langshift experiment: {exp.name}")
    return root


if __name__ == "__main__":  # a child of the local executor's run_parallel: run one stage from its directory
    run_stage_dir(Path(sys.argv[1]))
