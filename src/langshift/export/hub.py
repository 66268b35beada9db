"""`langshift push DIR --repo NAME`: a training output, with its model card, to the Hugging Face Hub.

What goes up is the model (safetensors), tokenizer, `config.yaml`, `metrics.jsonl` and `README.md`;
checkpoints, the first stage of a pipeline, and temporary files stay home. The card is written first
when the directory has none. The upload is `HfApi.create_repo` then `HfApi.upload_folder`, under the
token `huggingface_hub` finds (`HF_TOKEN` or `huggingface-cli login`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from langshift.files import InputError

# fnmatch patterns, as upload_folder applies them ("*" also matches "/")
IGNORE = ("checkpoints/*", "stage-*/*", ".*", "*/.*", "*.tmp", "*.lock")


@dataclass(frozen=True)
class Upload:
    repo_id: str
    folder: Path
    private: bool
    ignore_patterns: tuple[str, ...]
    commit_message: str
    files: tuple[str, ...]  # what upload_folder will send, relative to `folder`


def plan_upload(model_dir: str | os.PathLike, repo_id: str, *, private: bool = False) -> Upload:
    """Check the directory, write its model card if missing, and say exactly what will be uploaded."""
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise InputError(folder, "no config.json: give a model directory (a langshift training output)")
    if "/" not in repo_id or repo_id.count("/") > 1 or not all(repo_id.split("/")):
        raise InputError("--repo", f"expected OWNER/NAME, got {repo_id!r}", field="repo")
    if not (folder / "README.md").is_file() and (folder / "config.yaml").is_file():
        from langshift.card import write_model_card

        write_model_card(folder)
    from huggingface_hub.utils import filter_repo_objects

    every = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    files = tuple(filter_repo_objects(every, ignore_patterns=list(IGNORE)))
    return Upload(repo_id, folder, private, IGNORE, f"langshift: upload {folder.resolve().name}", files)


def create_repo_args(plan: Upload) -> dict:
    return {"repo_id": plan.repo_id, "private": plan.private, "exist_ok": True, "repo_type": "model"}


def upload_folder_args(plan: Upload) -> dict:
    return {"repo_id": plan.repo_id, "folder_path": str(plan.folder), "repo_type": "model",
            "ignore_patterns": list(plan.ignore_patterns), "commit_message": plan.commit_message}


def upload(plan: Upload, api=None) -> str:
    """Create the repository (if needed) and upload the folder; returns the commit URL."""
    from huggingface_hub import HfApi

    api = api or HfApi()
    api.create_repo(**create_repo_args(plan))
    info = api.upload_folder(**upload_folder_args(plan))
    return str(getattr(info, "commit_url", info))
