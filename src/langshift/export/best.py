"""Which trained model of an experiment to talk to first, and the commands for it.

    python -m langshift.export.best runs/demo      (what `make demo` prints at its end)

"Best" is the CLO model with the highest language fidelity in the target language (the response pass
rate: the share of replies in the language they were asked in), the failure CLO exists to fix; ties
go to the larger data size. An experiment that evaluated no CLO model falls back to its largest one.
Rows are matched to training outputs through each output's own `config.yaml` (method, data size,
trainable, NLL, language) and the stage label's model prefix, as `experiment.json` lists them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from langshift.files import InputError


@dataclass(frozen=True)
class Best:
    model_dir: Path
    label: str
    lang: str
    fidelity: float | None  # target-language response pass rate, when evaluated
    base: str | None  # the model it was trained from (`--model` as given)


def is_experiment(path: str | Path) -> bool:
    return (Path(path) / "experiment.json").is_file()


def _train_stages(root: Path) -> list[tuple[str, Path, dict]]:
    doc = json.loads((root / "experiment.json").read_text(encoding="utf-8"))
    out = []
    for stage in doc.get("stages", []):
        d = Path(stage["dir"])
        if stage.get("kind") == "train" and (d / "config.yaml").is_file() and (d / "config.json").is_file():
            cfg = (yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8")) or {}).get("config", {})
            out.append((stage["label"], d, cfg))
    return out


def _matches(row: dict, label: str, cfg: dict) -> bool:
    from langshift.languages import get_language

    return (label.startswith(f"{row['model']}-") and cfg.get("method") == row["method"]
            and cfg.get("limit") == row["size"] and cfg.get("trainable") == row["trainable"]
            and cfg.get("nll") == row["nll"] and get_language(cfg.get("lang") or "en").code == row["lang"])


def best_model(root: str | Path, method: str = "clo") -> Best:
    root = Path(root)
    if not is_experiment(root):
        raise InputError(root / "experiment.json", "not found: give the output directory of `langshift run`")
    stages = _train_stages(root)
    if not stages:
        raise InputError(root / "experiment.json", "lists no finished training output")
    results = root / "results.json"
    rows = json.loads(results.read_text(encoding="utf-8")).get("rows", []) if results.is_file() else []
    scored = [r for r in rows if r.get("method") == method and r.get("task") == "fidelity"
              and r.get("eval_lang") == "target" and r.get("metric") == "response_pass_rate"]
    for row in sorted(scored, key=lambda r: (r["value"], r["size"] or 0), reverse=True):
        for label, d, cfg in stages:
            if _matches(row, label, cfg):
                return Best(d, label, row["lang"], float(row["value"]), cfg.get("model"))
    of_method = [s for s in stages if s[2].get("method") == method] or stages
    label, d, cfg = max(of_method, key=lambda s: s[2].get("limit") or 0)
    return Best(d, label, str(cfg.get("lang")), None, cfg.get("model"))


def next_steps(root: str | Path) -> str:
    """What `make demo` prints last: the command to talk to the best CLO model, and to export it."""
    from langshift.report.rows import lang_name

    best = best_model(root)
    why = (f"the highest {lang_name(best.lang)} fidelity, {100 * best.fidelity:.1f}%" if best.fidelity is not None
           else "not evaluated yet: the largest one")
    gguf = Path(root) / f"{best.label}.gguf"
    compare = f" --compare {best.base}" if best.base else ""
    return (f"Talk to the best CLO model ({why}){', next to its base model' if compare else ''}:\n"
            f"  langshift chat {best.model_dir}{compare}\n"
            f"Export it for llama.cpp / Ollama / LM Studio:\n"
            f"  langshift export {best.model_dir} --gguf {gguf}")


def resolve(path: str) -> str:
    """A model argument as given, or, for an experiment directory, its best CLO model (said on stderr)."""
    if not is_experiment(path):
        return path
    best = best_model(path)
    print(f"[langshift] {path} is an experiment: using its best CLO model {best.model_dir}", file=sys.stderr)
    return str(best.model_dir)


if __name__ == "__main__":
    try:
        print(next_steps(sys.argv[1] if len(sys.argv) > 1 else "runs/demo"))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
