"""Hub datasets read the same way online and offline.

`datasets.load_dataset("org/name", config, split=...)` needs the hub API to resolve a repo's configs
and files; with `HF_HUB_OFFLINE=1` it only finds data that an earlier online call prepared into its
own cache (`HF_DATASETS_CACHE`). A GPU cluster whose compute nodes are offline usually has the repos
in the hub cache instead (`hf download --repo-type dataset org/name` on a login node, or an earlier
run). So offline, `load_split` reads the cached snapshot of the repo with the same `load_dataset`
call on its directory: the repo's README `configs:` (or its file names) still decide configs and
splits, exactly as on the hub. Online, it is the plain hub call.
"""

from __future__ import annotations

from pathlib import Path


def offline() -> bool:
    from huggingface_hub import constants

    try:
        from datasets import config

        return bool(config.HF_HUB_OFFLINE or constants.HF_HUB_OFFLINE)
    except ImportError:
        return bool(constants.HF_HUB_OFFLINE)


def cached_snapshot(repo_id: str, repo_type: str = "dataset") -> Path | None:
    """The hub cache's snapshot directory of `repo_id` at `main`, or None when it is not cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError):  # not cached, or not a hub id at all
        return None


def load_split(repo_id: str, config: str | None = None, split: str = "train"):
    """One split of a hub dataset (a `datasets.Dataset`); offline, from the hub cache when it has the repo.
    A local directory or file name goes to `load_dataset` as it is."""
    import datasets

    if offline() and not Path(repo_id).exists():
        snapshot = cached_snapshot(repo_id)
        if snapshot is not None:
            return datasets.load_dataset(str(snapshot), config, split=split)
    return datasets.load_dataset(repo_id, config, split=split)
