"""Atomic outputs and the inter-process lock that guards one-time builds (the embedded model)."""

import subprocess
import sys
import textwrap
import time

import pytest

from langshift.files import atomic_dir, atomic_write_text, file_lock

HOLDER = textwrap.dedent("""
    import sys, time
    from langshift.files import file_lock
    with file_lock(sys.argv[1]):
        open(sys.argv[2], "a").write("held\\n")
        time.sleep(1.5)
        open(sys.argv[2], "a").write("released\\n")
""")


def test_file_lock_excludes_another_process(tmp_path):
    lock, log = tmp_path / "build.lock", tmp_path / "log.txt"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(log)])
    while not log.exists():
        time.sleep(0.05)
    with file_lock(lock):  # waits for the holder
        log.open("a").write("second\n")
    holder.wait(timeout=30)
    assert log.read_text().splitlines() == ["held", "released", "second"]


def test_atomic_dir_leaves_nothing_on_failure_and_replaces_on_success(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("whole")
    assert (target / "weights").read_text() == "whole"
    atomic_write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").read_text() == "x"
