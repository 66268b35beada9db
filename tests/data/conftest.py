"""Fixtures for the data-builder tests: tiny random translators with tokenizers trained in-test."""

from __future__ import annotations

import pytest


def msg(mid, parent, tree, role, text, *, lang="en", rank=None, deleted=False, review_result=True):
    """One message with every column of OpenAssistant/oasst1 (values shaped as the hub's parquet)."""
    return {
        "message_id": mid,
        "parent_id": parent,
        "user_id": f"user-{mid}",
        "created_date": "2023-02-05T14:23:50Z",
        "text": text,
        "role": role,
        "lang": lang,
        "review_count": 3,
        "review_result": review_result,
        "deleted": deleted,
        "rank": rank,
        "synthetic": False,
        "model_name": None,
        "detoxify": {
            "toxicity": 0.001,
            "severe_toxicity": 0.0,
            "obscene": 0.0,
            "identity_attack": 0.0,
            "insult": 0.0,
            "threat": 0.0,
            "sexual_explicit": 0.0,
        },
        "message_tree_id": tree,
        "tree_state": "ready_for_export",
        "emojis": {"name": ["+1"], "count": [2]},
        "labels": {"name": ["quality"], "value": [0.8], "count": [3]},
    }


@pytest.fixture
def oasst1_messages() -> list[dict]:
    """A small oasst1 export in the real schema: ranks, deleted and failed-review messages, a German
    tree, a deleted root, a multi-turn branch."""
    return [
        # tree A (en): three ranked replies (one deleted), one unranked, and a second turn under A1
        msg("tA", None, "tA", "prompter", "What is a prime number?"),
        msg("A1", "tA", "tA", "assistant", "A number with exactly two divisors.", rank=0),
        msg("A2", "tA", "tA", "assistant", "Divisible only by 1 and itself.", rank=1),
        msg("A3", "tA", "tA", "assistant", "Deleted answer.", rank=2, deleted=True),
        msg("A4", "tA", "tA", "assistant", "Unranked answer."),
        msg("A1p", "A1", "tA", "prompter", "Is 1 prime?"),  # multi-turn: never a candidate
        msg("A1pa", "A1p", "tA", "assistant", "No, 1 is not prime.", rank=0),
        # tree B (en): the rank-1 reply failed review, so only rank 0 survives
        msg("tB", None, "tB", "prompter", "Name a blue fruit."),
        msg("B1", "tB", "tB", "assistant", "Blueberries.", rank=0),
        msg("B2", "tB", "tB", "assistant", "Failed review.", rank=1, review_result=False),
        # tree C (de): not English
        msg("tC", None, "tC", "prompter", "Was ist eine Primzahl?", lang="de"),
        msg("C1", "tC", "tC", "assistant", "Eine Zahl mit genau zwei Teilern.", lang="de", rank=0),
        # tree D (en): deleted root drops the whole tree
        msg("tD", None, "tD", "prompter", "Deleted prompt.", deleted=True),
        msg("D1", "tD", "tD", "assistant", "Orphaned reply.", rank=0),
        # tree E (en): root failed review
        msg("tE", None, "tE", "prompter", "Rejected prompt.", review_result=False),
        msg("E1", "tE", "tE", "assistant", "Reply to a rejected prompt.", rank=0),
        # tree F (en): a Spanish reply in an English tree is skipped; the English one is kept
        msg("tF", None, "tF", "prompter", "Say hello."),
        msg("F1", "tF", "tF", "assistant", "Hola.", lang="es", rank=0),
        msg("F2", "tF", "tF", "assistant", "Hello!", rank=1),
    ]


@pytest.fixture(scope="session")
def tiny_m2m100(tmp_path_factory):
    from langshift.testing.tiny_mt import make_tiny_m2m100

    return make_tiny_m2m100(tmp_path_factory.mktemp("tiny-m2m100"))


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory):
    from langshift.testing.tiny_mt import make_tiny_marian

    return make_tiny_marian(tmp_path_factory.mktemp("tiny-marian"))


@pytest.fixture(scope="session")
def tiny_m2m100_ct2(tiny_m2m100, tmp_path_factory):
    from langshift.data.translators import convert

    return convert(str(tiny_m2m100), tmp_path_factory.mktemp("ct2") / "m2m100-int8", quantization="int8")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    # On-the-fly CTranslate2 conversions go to a per-test cache, never to the user's ~/.cache.
    monkeypatch.setenv("LANGSHIFT_CACHE", str(tmp_path / "langshift-cache"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Tiny models on a shared 2-core machine: OpenMP threads only spin against each other (15x slower).
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
