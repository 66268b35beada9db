"""Native code never takes the caller down with it: llama.cpp runs in a child process, a death by signal
is named with its fix, the preflight stops a broken build in seconds, and a dead llama.cpp server is
named in the failures of the tests that needed it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from langshift import native
from langshift.model_ref import embedded_gguf

ROOT = Path(__file__).resolve().parents[1]

def test_signal_names_and_exit_descriptions():
    assert native.signal_of(-4) == "SIGILL" and native.signal_of(128 + 11) == "SIGSEGV"
    assert native.signal_of(1) is None and native.signal_of(0) is None
    assert native.describe_exit(-4) == "exited with SIGILL (Illegal instruction)"
    assert native.describe_exit(3) == "exited with code 3"
    crash = native.NativeCrash("llama.cpp (decode_one) in a child process", -4, "load model\n\nggml: tile\n")
    assert str(crash).startswith("llama.cpp (decode_one) in a child process exited with SIGILL")
    assert "last log lines: load model | ggml: tile" in str(crash) and "Fix: llama.cpp was compiled" in str(crash)
    assert crash.signal == "SIGILL"


def test_the_built_llama_cpp_decodes_a_quantized_gguf_in_a_child():
    """The real library, the embedded Q4 model: what the preflight does, as a call."""
    out = native.call("decode_one", model=str(embedded_gguf()), timeout=300)
    assert out["prompt_tokens"] >= 1 and isinstance(out["token"], int)
    info = native.call("system_info", timeout=120)
    assert "AVX2 = 1" in info["system_info"] or not sys.platform.startswith("linux") or os.uname().machine != "x86_64"


def test_arguments_past_the_command_line_limit_reach_the_child():
    """An evaluation hands the child every prompt's token ids: 600 prompts are ~300 KB of JSON, past Linux's
    128 KiB per argument (they went on the command line once, and the child never started)."""
    texts = ["Habari ya asubuhi, rafiki yangu."] * 6000  # ~250 KB as JSON
    ids = native.call("tokenize", model=str(embedded_gguf()), texts=texts, timeout=300)
    assert len(ids) == len(texts) and ids[0] == ids[-1] and len(ids[0]) > 3


def test_a_crashing_library_is_a_named_crash_not_a_dead_caller(sigill_lib):
    with pytest.raises(native.NativeCrash) as caught:
        native.call("system_info", env={"LLAMA_CPP_LIB_PATH": str(sigill_lib)}, timeout=120)
    assert caught.value.signal == "SIGILL"
    assert "exited with SIGILL" in str(caught.value) and "rebuild llama-cpp-python portably" in str(caught.value)


def test_preflight_fails_a_sigill_build_in_seconds_with_one_line(sigill_lib):
    env = {**os.environ, "LLAMA_CPP_LIB_PATH": str(sigill_lib)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "langshift.doctor", "--preflight"], env=env, capture_output=True,
                          text=True, timeout=120)
    took = time.perf_counter() - start
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("preflight FAILED: llama.cpp (decode_one) in a child process exited with SIGILL")
    assert "Fix: llama.cpp was compiled for instructions this CPU" in lines[0] and "make install" in lines[0]
    assert took < 60, f"the preflight took {took:.0f} s"  # seconds, not minutes into a test run


def test_preflight_passes_on_the_built_library():
    done = subprocess.run([sys.executable, "-m", "langshift.doctor", "--preflight"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("preflight ok: llama.cpp decoded 1 token of ")


def test_makefile_builds_llama_cpp_with_the_flags_the_fix_names():
    """The Makefile's x86-64 flags and version are the ones `native.REBUILD` tells a user to build with."""
    makefile = (ROOT / "Makefile").read_text()
    flags = re.search(r"ifeq \(\$\(ARCH\),x86_64\)\nLLAMA_CMAKE_ARGS \?= (.+)\n", makefile).group(1)
    assert flags == native.PORTABLE_CMAKE_ARGS
    assert "-DGGML_NATIVE=OFF" in flags and "-DGGML_AMX_TILE=OFF" in flags
    assert re.search(r"LLAMA_CPP_VERSION := (\S+)", makefile).group(1) == native.LLAMA_CPP_VERSION
    assert f"llama-cpp-python[server]=={native.LLAMA_CPP_VERSION}" in (ROOT / "pyproject.toml").read_text()
    assert "\ntest: preflight\n" in makefile  # make test starts with the preflight


INNER_TEST = textwrap.dedent('''
    import os
    import signal

    import httpx

    from conftest import SERVERS


    def test_the_server_is_killed_under_it(llm_server):
        served = SERVERS[0]
        os.kill(served.proc.pid, signal.SIGKILL)
        served.proc.wait()
        httpx.get(llm_server + "/models", timeout=5)  # Connection refused


    def test_a_later_test_that_needs_it(llm_server):
        pass
''')


@pytest.mark.server
def test_a_killed_server_fails_its_tests_naming_the_signal(pytester):
    """Inside a pytest run of its own (this conftest, the real server): a test that meets a dead server
    fails with the signal first, not with 'Connection refused' alone, and so does every later test that
    needs it, at once, and the session goes on to its summary."""
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(failed=1, errors=1)
    out = result.stdout.str()
    assert out.count("llama.cpp server (smollm2) exited with SIGKILL (Killed)") >= 2, out
    assert "ConnectError" in out  # the test's own failure is kept under the named cause
    assert signal.SIGKILL.name in out
