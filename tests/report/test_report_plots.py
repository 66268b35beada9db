"""PNG plots and report.md: files exist, are real images, and show what they claim."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image
from report_rows import demo_rows, grid_rows

from langshift.report import write_report
from langshift.report.plots import METHOD_COLOR, language_bars, size_curves


def _png(path) -> Image.Image:
    with Image.open(path) as im:
        im.verify()  # a truncated or corrupt file raises here
    im = Image.open(path)
    assert im.format == "PNG" and im.width >= 600 and im.height >= 400
    assert path.stat().st_size > 10_000
    return im.convert("RGB")


def _has_color(im: Image.Image, hex_color: str, at_least: int = 50) -> bool:
    rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])
    close = (np.abs(np.asarray(im, dtype=int) - rgb) <= 8).all(axis=-1)
    return int(close.sum()) >= at_least


def test_size_curves_one_per_task_with_two_sizes(tmp_path):
    paths = size_curves(demo_rows(), tmp_path)
    assert [p.name for p in paths] == [
        "size_fidelity_smollm2.png",
        "size_belebele_smollm2.png",
        "size_mmmlu_smollm2.png",
    ]
    im = _png(paths[0])
    assert _has_color(im, METHOD_COLOR["clo"]) and _has_color(im, METHOD_COLOR["sft"])
    assert not _has_color(im, METHOD_COLOR["sft+dpo"])  # no SFT+DPO line in the demo
    # Grid: only BELEBELE was measured at two sizes; single-size tasks get no curve.
    assert [p.name for p in size_curves(grid_rows(), tmp_path / "g")] == ["size_belebele_llama.png"]


def test_language_bars_per_task(tmp_path):
    paths = language_bars(grid_rows(), tmp_path / "g")
    assert [p.name for p in paths] == [
        "bars_belebele_llama.png",
        "bars_mmmlu_llama.png",
        "bars_alpaca_vs_sft_llama.png",
    ]
    _png(paths[-1])


def test_write_report_links_existing_plots_and_drops_stale_ones(tmp_path):
    out = tmp_path / "out"
    path = write_report(demo_rows(), out, "Demo: SmolLM2 to Swahili")
    text = path.read_text()
    assert path == out / "report.md" and text.startswith("# Demo: SmolLM2 to Swahili\n")
    assert "## Headline" in text and "| CLO    | 200       | 70.0 ± 6.5" in text
    assert "## Reading comprehension: BELEBELE (Table 2 shape)" in text and "Table 1 shape" not in text
    assert "## How to read this report" in text and "standard error" in text
    assert "Items per number: Language fidelity n = 50; Reading (BELEBELE) n = 40" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 6 and all((out / link).is_file() for link in links)
    _png(out / links[0])
    # A second report into the same folder leaves no plot of the first behind.
    write_report(grid_rows(), out, "Grid")
    names = {p.name for p in (out / "report_plots").iterdir()}
    assert names == {
        "size_belebele_llama.png",
        "bars_belebele_llama.png",
        "bars_mmmlu_llama.png",
        "bars_alpaca_vs_sft_llama.png",
    }
    assert not list(out.glob(".*"))  # no temporary files left
