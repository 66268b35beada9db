"""The degeneration detector against responses labelled by hand (docs/metrics.md: the rules, written before
labelling; the numbers). A response is degenerate when its label is loop, echo, empty or gibberish.

The rows are responses of the Table 1 study's models (SmolLM2-135M-Instruct and Gemma-3-270M; base, SFT
and CLO; Swahili, German and English), drawn at random per (model, method, language) cell and labelled
blind to any detector's verdict. `split` halves them by a hash of the row: the detector's thresholds were
chosen on `dev`; `test` was scored once, after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langshift.eval.degeneration import degeneration_reason

LABELS = Path(__file__).parent / "data" / "degeneration_labels.jsonl"
ROWS = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
DEGENERATE = {"loop", "echo", "empty", "gibberish"}

# Measured (docs/metrics.md) minus 0.05: a change that loses a few rows of precision or recall fails.
FLOORS = {  # (split, lang): (precision, recall); measured: in the comment
    ("test", "all"): (0.90, 0.50),  # 0.957, 0.558: the split the thresholds never saw
    ("all", "sw"): (0.95, 0.55),  # 1.000, 0.604
    ("all", "de"): (0.92, 0.40),  # 0.970, 0.451
    ("all", "en"): (0.83, 0.66),  # 0.881, 0.712
    ("all", "all"): (0.90, 0.53),  # 0.956, 0.580
}


def precision_recall(rows: list[dict]) -> tuple[float, float]:
    flagged = [degeneration_reason(r["prompt"], r["response"]) is not None for r in rows]
    truth = [r["label"] in DEGENERATE for r in rows]
    tp = sum(f and t for f, t in zip(flagged, truth, strict=True))
    return tp / max(1, sum(flagged)), tp / max(1, sum(truth))


def test_the_labelled_set_is_whole():
    assert len(ROWS) >= 400 and len({r["uid"] for r in ROWS}) == len(ROWS)
    assert {r["label"] for r in ROWS} <= DEGENERATE | {"fine"}
    assert {r["lang"] for r in ROWS} == {"sw", "de", "en"} and {r["method"] for r in ROWS} == {"base", "sft", "clo"}


@pytest.mark.parametrize("split, lang", sorted(FLOORS))
def test_precision_and_recall_hold_their_measured_floors(split, lang):
    rows = [r for r in ROWS if (split == "all" or r["split"] == split) and (lang == "all" or r["lang"] == lang)]
    precision, recall = precision_recall(rows)
    floor_p, floor_r = FLOORS[split, lang]
    assert precision >= floor_p and recall >= floor_r, (precision, recall)
