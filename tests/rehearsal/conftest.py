"""Fixtures for the offline rehearsal: a guard that fails any attempt to reach beyond loopback, in the
test's process and in every Python process it starts."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

GUARD_DIR = Path(__file__).resolve().parent / "netguard"
_spec = importlib.util.spec_from_file_location("netguard", GUARD_DIR / "sitecustomize.py")
netguard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(netguard)
NetworkAttempt = netguard.NetworkAttempt


class Attempts(list):
    """The attempts of this process (appended as they happen) and, through `all()`, of its children."""

    def __init__(self, log: Path):
        super().__init__()
        self.log = log

    def all(self) -> list:
        children = [json.loads(x) for x in self.log.read_text().splitlines()] if self.log.exists() else []
        return [*self, *children]


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Within the test, name resolution and connections to anything but loopback raise NetworkAttempt
    (the llama.cpp judge on 127.0.0.1 stays reachable), here and in the Python processes the test starts
    (they inherit a PYTHONPATH whose sitecustomize installs the same guard). `.all()` lists every
    attempt: this process's, then the children's."""
    attempts = Attempts(tmp_path / "network-attempts.jsonl")
    monkeypatch.setenv(netguard.LOG_ENV, str(attempts.log))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(GUARD_DIR), os.environ.get("PYTHONPATH")) if p))
    netguard.install(attempts.append, setattr=monkeypatch.setattr)
    return attempts
