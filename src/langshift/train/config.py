"""Training configuration: one dataclass, defaults = the paper's Appendix B hyper-parameters."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from langshift.files import InputError
from langshift.train.objectives import PIPELINES
from langshift.train.params import MODES


def _coerce(value, type_name: str, source: str, key: str):
    """YAML reads `1e-4` as a string and CLIs give strings: convert to the field's number type."""
    if value is None or not isinstance(value, str):
        return value
    for kind in (int, float):
        if type_name.startswith(kind.__name__):
            try:
                return kind(float(value)) if kind is int and float(value).is_integer() else kind(value)
            except ValueError:
                raise InputError(source, f"expected {kind.__name__}, got {value!r}", field=key) from None
    return value


@dataclass
class TrainConfig:
    method: str = "clo"  # clo | sft | sft-eng | sft-tgt | dpo | sft+dpo
    model: str = "smollm2"  # hub id, local dir, .gguf file, or "smollm2" (embedded)
    data: str = ""  # records JSONL, datasets dir, or hub dataset name
    lang: str | None = None  # target language; checked against the records
    out: str = "runs/train"
    gguf_file: str | None = None
    # objective (paper: lambda 0.5, beta 0.1, NLL on the target language only)
    lam: float = 0.5
    beta: float = 0.1
    nll: str = "target"  # target | both
    trainable: str = "attention"  # attention | full | lora
    lora_r: int = 16
    lora_alpha: int = 32
    # optimisation (paper: lr 5e-5 cosine to 1.1e-6, batch 8, 1 epoch, max length 3000)
    lr: float = 5e-5
    min_lr: float = 1.1e-6
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 8  # records per optimizer step (all processes together)
    micro_batch_size: int | None = None  # records per forward per process; None: from micro_batch_tokens
    micro_batch_tokens: int = 4096  # token budget of one forward when micro_batch_size is None
    activation_checkpointing: bool = False  # recompute decoder activations in backward: less memory, ~1/3 more time
    epochs: float = 1.0
    max_steps: int = -1
    max_length: int = 3000
    limit: int | None = None  # use only the first N training records (data-size sweeps)
    val_size: float = 0.05  # fraction (<1) or count (>=1) held out when the data has no validation split
    eval_steps: int | None = None  # None: about 10 evaluations per run
    logging_steps: int = 1
    save_total_limit: int = 2
    seed: int = 0
    ref: str = "precompute"  # precompute | on-the-fly
    cache_dir: str | None = None  # reference log-prob cache; default $LANGSHIFT_CACHE or ~/.cache/langshift
    dtype: str = "auto"
    resume: bool = False
    report_to: list[str] = field(default_factory=lambda: ["none"])
    trust_remote_code: bool = False
    progress: bool = True

    def validate(self) -> TrainConfig:
        checks = {
            "method": (self.method in PIPELINES, f"one of {sorted(PIPELINES)}"),
            "nll": (self.nll in ("target", "both"), "'target' or 'both'"),
            "trainable": (self.trainable in MODES, f"one of {MODES}"),
            "ref": (self.ref in ("precompute", "on-the-fly"), "'precompute' or 'on-the-fly'"),
            "lam": (0.0 <= self.lam <= 1.0, "in [0, 1]"),
            "beta": (self.beta > 0, "> 0"),
            "lr": (self.lr > 0, "> 0"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "micro_batch_size": (self.micro_batch_size is None or self.micro_batch_size >= 1, ">= 1 or null"),
            "micro_batch_tokens": (self.micro_batch_tokens >= 1, ">= 1"),
            "max_length": (self.max_length >= 8, ">= 8"),
            "data": (bool(self.data), "a records file, dataset dir or hub name"),
        }
        for key, (ok, want) in checks.items():
            if not ok:
                raise InputError("config", f"must be {want}, got {getattr(self, key)!r}", field=key)
        return self

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> TrainConfig:
        types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        names = set(types)
        aliases = {"lambda": "lam", "lambda_": "lam"}
        clean = {}
        for key, value in values.items():
            key = aliases.get(key, key).replace("-", "_")
            if key not in names:
                raise InputError(source, f"unknown training option (known: {', '.join(sorted(names))})", field=key)
            clean[key] = _coerce(value, types[key], source, key)
        return cls(**clean)

    @classmethod
    def load(cls, path: str | Path, overrides: dict | None = None) -> TrainConfig:
        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise InputError(path, "expected a mapping of training options")
        values = values.get("train", values)
        return cls.from_dict({**values, **(overrides or {})}, source=str(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
