"""langshift: move an English-centric LLM into a new language without losing its English, with
Cross-Lingual Optimization (CLO, Lee et al., ACL 2025), its baselines and their evaluations.

    from langshift import CLOConfig, CLOTrainer, records_from, evaluate, compare

Public names: `CLOConfig` (TrainingArguments + langshift's options), `CLOTrainer` (every method, TRL's
trainer idiom), `records_from` (records from a datasets.Dataset, hub id, file or list), `Record`,
`evaluate` and `compare` (the evaluation suite and paired differences with CIs). Each is imported on first
use, so `import langshift` stays light (no torch, no transformers).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "CLOConfig": "langshift.train.clo_config",
    "CLOTrainer": "langshift.train.clo_trainer",
    "records_from": "langshift.records",
    "Record": "langshift.records",
    "evaluate": "langshift.api",
    "compare": "langshift.api",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # once imported, an ordinary attribute
        return value
    raise AttributeError(f"module 'langshift' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
