"""Progress a parent process can read: a tqdm bar on the terminal, and a small JSON file when asked.

A stage run by the experiment runner in a child process gets `LANGSHIFT_PROGRESS=<file>`. Every
`progress_bar` then also writes its state there (at most twice a second, atomically):

    {"desc": "generate", "n": 16, "total": 24, "unit": "prompt", "rate": 1.02, "eta": 7.8, "time": ...}

and training writes its optimizer steps the same way (`StepProgress`). The parent shows the last
state of each running child (`read_progress`), so it never parses another program's terminal output.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tqdm.auto import tqdm

ENV = "LANGSHIFT_PROGRESS"
_EVERY = 0.5  # seconds between two writes of one process


class _Channel:
    def __init__(self):
        self.last = 0.0

    def emit(self, desc: str, n: float, total: float | None, unit: str, elapsed: float, force: bool = False) -> None:
        path = os.environ.get(ENV)
        now = time.monotonic()
        if not path or (not force and now - self.last < _EVERY):
            return
        self.last = now
        rate = n / elapsed if elapsed > 0 and n else None
        eta = (total - n) / rate if rate and total else None
        state = {"desc": desc, "n": n, "total": total, "unit": unit, "rate": rate, "eta": eta, "time": time.time()}
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            Path(tmp).write_text(json.dumps(state), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # progress is advisory: never fail the work because the parent's view is unwritable


_CHANNEL = _Channel()


class progress_bar(tqdm):  # noqa: N801 (used like tqdm)
    """`tqdm` that also reports to the parent's progress channel."""

    def update(self, n=1):
        shown = super().update(n)
        self._emit(force=self.n == self.total)
        return shown

    def __iter__(self):
        for item in super().__iter__():
            self._emit()
            yield item

    def _emit(self, force: bool = False) -> None:
        if self.disable:  # a disabled bar counts nothing (tqdm skips its bookkeeping)
            return
        d = self.format_dict
        _CHANNEL.emit(self.desc or "", d["n"], d["total"], d["unit"], d["elapsed"], force=force)


def report_steps(step: int, total: int | None, elapsed: float, desc: str = "steps") -> None:
    """Training's optimizer steps on the channel (transformers' Trainer draws its own tqdm)."""
    _CHANNEL.emit(desc, step, total, "step", elapsed, force=step == total)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60:02d}:{seconds % 60:02d}"


def read_progress(path: str | os.PathLike) -> str:
    """'generate 16/24 1.0 prompt/s ETA 00:08' from a child's channel file ('' when there is none yet)."""
    try:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    total = f"/{state['total']:g}" if state.get("total") else ""
    rate = f" {state['rate']:.2g} {state['unit']}/s" if state.get("rate") else ""
    return f"{state['desc']} {state['n']:g}{total}{rate} ETA {_clock(state.get('eta'))}"
