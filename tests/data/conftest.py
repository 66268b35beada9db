"""Fixtures for the data-builder tests: tiny random translators with tokenizers trained in-test."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_m2m100(tmp_path_factory):
    from langshift.data.tiny_mt import make_tiny_m2m100

    return make_tiny_m2m100(tmp_path_factory.mktemp("tiny-m2m100"))


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory):
    from langshift.data.tiny_mt import make_tiny_marian

    return make_tiny_marian(tmp_path_factory.mktemp("tiny-marian"))


@pytest.fixture(scope="session")
def tiny_m2m100_ct2(tiny_m2m100, tmp_path_factory):
    from langshift.data.translators import convert

    return convert(str(tiny_m2m100), tmp_path_factory.mktemp("ct2") / "m2m100-int8", quantization="int8")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    # On-the-fly CTranslate2 conversions go to a per-test cache, never to the user's ~/.cache.
    monkeypatch.setenv("LANGSHIFT_CACHE", str(tmp_path / "langshift-cache"))
