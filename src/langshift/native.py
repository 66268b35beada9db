"""llama.cpp, run where its crash cannot take the caller with it: in a child process.

llama.cpp is native code compiled for some CPU. A build that executes an instruction this machine (or
its kernel) does not allow dies with SIGILL on the first one, and in process that kills the whole
interpreter: a test session, an evaluation, `langshift doctor` itself, with no word of why. So every
call into llama-cpp-python that can reach a kernel runs here as `python -m langshift.native TASK`, and
a death by signal comes back as `NativeCrash`, naming the signal, the library's last lines and the fix.

Only the standard library is imported at module level: the preflight (`make test`'s first step) must
answer in seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# The flags `make install` builds llama-cpp-python with on x86-64 (the Makefile's LLAMA_CMAKE_ARGS; a
# test keeps the two equal): any CPU with AVX2, never tuned to the build machine.
LLAMA_CPP_VERSION = "0.3.36"
PORTABLE_CMAKE_ARGS = ("-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
                       "-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF "
                       "-DLLAVA_BUILD=OFF")
REBUILD = ("rebuild llama-cpp-python portably: `make install` in a langshift checkout (after `rm -rf .venv`), or "
           f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --force-reinstall --no-deps --no-cache-dir '
           f"llama-cpp-python=={LLAMA_CPP_VERSION}")

# What each way of dying usually means here, and what to do about it.
FIXES = {
    "SIGILL": "llama.cpp was compiled for instructions this CPU or its kernel does not allow; " + REBUILD,
    "SIGSEGV": "llama.cpp crashed (a build for another CPU or a damaged GGUF); " + REBUILD,
    "SIGBUS": "the GGUF file was truncated or changed while mapped; check it, then retry",
    "SIGKILL": "killed from outside, usually by the kernel's out-of-memory killer (see `dmesg`)",
    "SIGABRT": "llama.cpp aborted (an assertion: see the log lines); often a GGUF it does not support",
}


class NativeCrash(RuntimeError):
    """A native child died without an answer. `.signal` is the signal's name (or None for an exit code)."""

    def __init__(self, what: str, returncode: int, log: str = "", fix: str | None = None):
        self.returncode = returncode
        self.signal = signal_of(returncode)
        self.log_tail = last_lines(log)
        fix = FIXES.get(self.signal or "", "") if fix is None else fix
        message = f"{what} {describe_exit(returncode)}"
        if self.log_tail:
            message += f" (last log lines: {self.log_tail})"
        super().__init__(message + (f". Fix: {fix}" if fix else ""))


def signal_of(returncode: int | None) -> str | None:
    """The signal a child died of: `subprocess`'s negative return codes, or a shell's 128 + N."""
    if returncode is None:
        return None
    number = -returncode if returncode < 0 else returncode - 128 if 128 < returncode < 128 + 65 else 0
    try:
        return signal.Signals(number).name if number else None
    except ValueError:
        return f"signal {number}"


def describe_exit(returncode: int) -> str:
    """'exited with SIGILL (Illegal instruction)', or 'exited with code 3'."""
    name = signal_of(returncode)
    if name is None:
        return f"exited with code {returncode}"
    number = signal.Signals[name].value if name in signal.Signals.__members__ else None
    text = signal.strsignal(number) if number else None
    return f"exited with {name}" + (f" ({text})" if text else "")


def last_lines(log: str, n: int = 3) -> str:
    lines = [line.strip() for line in log.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])


PROGRESS = "@langshift-progress "  # a child's stderr line "@langshift-progress DONE TOTAL"


def call(task: str, *, timeout: float = 600, env: dict | None = None, progress=None, **kwargs):
    """Run TASKS[task](**kwargs) in a child process and return its JSON answer; `NativeCrash` when the
    child dies first (a signal, or an exit without an answer). `progress(done, total)` is called for each
    progress line the child reports (`report_progress`)."""
    if task not in TASKS:
        raise ValueError(f"unknown native task {task!r}; known: {', '.join(TASKS)}")
    with tempfile.TemporaryDirectory(prefix="langshift-native-") as tmp:
        answer, args = Path(tmp) / "answer.json", Path(tmp) / "kwargs.json"
        # In a file, not on the command line: an evaluation's token ids (600 prompts of ~100 ids) pass
        # Linux's 128 KiB limit on one argument, and the child would never start (E2BIG).
        args.write_text(json.dumps(kwargs))
        cmd = [sys.executable, "-m", "langshift.native", task, str(args), str(answer)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})})
        log: list[str] = []
        timer = threading.Timer(timeout, proc.kill)  # a hung child is killed, and said so below
        timer.start()
        try:
            for line in proc.stderr:
                if line.startswith(PROGRESS) and progress is not None:
                    done, total = line[len(PROGRESS):].split()
                    progress(int(done), int(total))
                elif not line.startswith(PROGRESS):
                    log = (log + [line])[-50:]
            returncode = proc.wait()
        finally:
            timed_out = not timer.is_alive() and proc.returncode == -signal.SIGKILL
            timer.cancel()
        if timed_out:
            raise NativeCrash(f"llama.cpp ({task}) gave no answer in {timeout:.0f} s, was stopped and", -signal.SIGKILL,
                              "".join(log), fix="a loaded machine or a model too large for the time given")
        if returncode != 0 or not answer.exists():
            raise NativeCrash(f"llama.cpp ({task}) in a child process", returncode, "".join(log))
        return json.loads(answer.read_text())


def report_progress(done: int, total: int) -> None:
    """In a child task: tell the parent how far it is (read by `call`'s `progress`)."""
    print(f"{PROGRESS}{done} {total}", file=sys.stderr, flush=True)


# ---- the child's side: each task imports llama_cpp itself, so a crash happens in the child ----

def _llama(model: str, **kw):
    import llama_cpp

    return llama_cpp.Llama(model_path=model, n_threads=1, n_threads_batch=1, verbose=False, **kw)


def _system_info() -> dict:
    """What the built library was compiled to use ('CPU : SSE3 = 1 | AVX2 = 1 | ... |') and its version."""
    import llama_cpp

    return {"system_info": llama_cpp.llama_print_system_info().decode(errors="replace"),
            "version": getattr(llama_cpp, "__version__", "?")}


def _decode_one(model: str, prompt: str = "Hello") -> dict:
    """Load `model` and decode one greedy token: the first kernel call of every real use."""
    llm = _llama(model, n_ctx=64)
    try:
        ids = llm.tokenize(prompt.encode(), add_bos=True)
        llm.eval(ids)
        token = int(llm.sample(temp=0.0))
        return {"prompt_tokens": len(ids), "token": token, "text": llm.detokenize([token]).decode(errors="replace")}
    finally:
        llm.close()


def _tokenize(model: str, texts: list[str], add_bos: bool = False, special: bool = True) -> list[list[int]]:
    """llama.cpp's token ids of each text (the vocabulary only is loaded)."""
    llm = _llama(model, vocab_only=True)
    try:
        return [llm.tokenize(text.encode(), add_bos=add_bos, special=special) for text in texts]
    finally:
        llm.close()


def _logits(model: str, ids: list[int], n_ctx: int = 256) -> list[list[float]]:
    """llama.cpp's logits at every position of `ids` (a float32 row per token)."""
    llm = _llama(model, n_ctx=n_ctx, logits_all=True)
    try:
        llm.eval(ids)
        return [[float(x) for x in row] for row in llm.scores[: len(ids)]]
    finally:
        llm.close()


# A task is a function here, or "module:function" elsewhere (imported in the child only).
TASKS = {"system_info": _system_info, "decode_one": _decode_one, "tokenize": _tokenize, "logits": _logits,
         "generate": "langshift.eval.llamacpp:decode_batch",
         "generate_timed": "langshift.eval.llamacpp:decode_batch_timed"}


def _task(name: str):
    target = TASKS[name]
    if isinstance(target, str):
        import importlib

        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    return target


def _child(argv: list[str]) -> int:
    task, kwargs, answer = argv
    result = _task(task)(**json.loads(Path(kwargs).read_text()))
    tmp = Path(answer + ".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(answer)  # the parent takes a missing answer for a crash, so never a torn one
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
