"""Fixtures: two run directories of hand-written rows (see report_rows.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_rows import demo_rows, grid_rows, write_run


@pytest.fixture
def demo_run(tmp_path) -> Path:
    return write_run(tmp_path / "demo", demo_rows(), "demo")


@pytest.fixture
def grid_run(tmp_path) -> Path:
    return write_run(tmp_path / "grid", grid_rows(), "grid")
