"""Cheap identities of models, one function per thing hashed; each names what it hashes.

* `weights_fingerprint(model)`: the loaded weights (config + a sample of every tensor). Keys the
  reference log-prob cache: the reference model *is* these weights, wherever they came from.
* `weight_files_fingerprint(path, gguf_file)`: where the weights live and each file's name, size and
  modification time. Keys reusable evaluation results: a retrained model written over the same
  directory (same sizes) is a different model.
* `model_dir_identity(path)`: a model directory's config and file names and sizes, but not its location
  or times. Keys the translation cache: a copied or moved translator keeps its (paid-for) cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from langshift.files import stable_hash
from langshift.model_ref import PACKAGED


def weights_fingerprint(model) -> str:
    """Hash of the config and the first and last 2,048 values of every tensor: changes with any weight file."""
    import torch

    from langshift.models import causal_lm

    lm = causal_lm(model)
    h = hashlib.sha256(lm.config.to_json_string(use_diff=False).encode())
    for name, t in lm.state_dict().items():
        flat = t.detach().reshape(-1)
        sample = torch.cat([flat[:2048], flat[-2048:]]).float().cpu()
        h.update(name.encode() + str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]


# What defines a model in its directory: weights, configs, tokenizer files. Not what is written next to
# it later (the model card, metrics, a run's stage markers) or checkpoints during training.
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf", ".json", ".model", ".jinja", ".txt", ".tiktoken")
NOT_MODEL_FILES = ("stage.json", "spec.json", "results.json", "trainer_state.json")


def _model_files(directory: Path) -> list[Path]:
    return sorted(q for q in [*directory.glob("*"), *directory.glob("adapter/*")]
                  if q.is_file() and q.suffix in MODEL_FILE_SUFFIXES and q.name not in NOT_MODEL_FILES)


def weight_files_fingerprint(model: str, gguf_file: str | None = None) -> str:
    """Resolved path plus (name, size, mtime) of every file that defines the model (`_model_files`); the
    name alone for a hub id."""
    p = Path(model)
    if model.lower() in PACKAGED or not p.exists():
        return stable_hash(model, gguf_file)
    files = [p] if p.is_file() else _model_files(p)
    stats = [(str(q.relative_to(p) if p.is_dir() else q.name), q.stat().st_size, q.stat().st_mtime_ns)
             for q in files]
    return stable_hash(str(p.resolve()), gguf_file, stats)


def model_dir_identity(model: str) -> str:
    """'<dir name>@<hash of config.json and file names and sizes>' for a local dir; a hub id as it is."""
    p = Path(model)
    if not p.is_dir():
        return model
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(f"{f.relative_to(p)}:{f.stat().st_size}".encode())
        if f.name == "config.json":
            h.update(f.read_bytes())
    return f"{p.name}@{h.hexdigest()[:12]}"
