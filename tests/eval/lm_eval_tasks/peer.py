"""Run lm-evaluation-harness on BELEBELE items of a local JSONL with our task YAML (peer check and bench).

lm-eval scores the same model object through its own HF model class (`HFLM`), offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

TASK_YAML = Path(__file__).with_name("langshift_belebele_en.yaml")


def lm_eval_belebele(model, tokenizer, data_file: str | os.PathLike, *, batch_size: int = 8) -> dict:
    """{"accuracy", "loglik": per-item [4 floats], "contexts": per-item prompt text, "n"}, in file order."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    config = yaml.safe_load(TASK_YAML.read_text())
    config["dataset_kwargs"]["data_files"]["test"] = str(Path(data_file).resolve())
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=[config],
        task_manager=TaskManager(include_defaults=False),
        log_samples=True,
        bootstrap_iters=0,
        verbosity="ERROR",
    )
    samples = sorted(out["samples"][config["task"]], key=lambda s: s["doc_id"])
    logliks = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
    contexts = [s["arguments"][0][0] for s in samples]
    return {
        "accuracy": out["results"][config["task"]]["acc,none"],
        "loglik": logliks,
        "contexts": contexts,
        "n": len(samples),
    }
