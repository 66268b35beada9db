"""`langshift report` through the top-level Typer app."""

from __future__ import annotations

import json

from report_rows import demo_rows, grid_rows, write_run
from typer.testing import CliRunner

from langshift.cli import app

runner = CliRunner()


def test_report_merges_runs_into_out(demo_run, grid_run, tmp_path):
    out = tmp_path / "merged"
    result = runner.invoke(app, ["report", str(demo_run), str(grid_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "**smollm2 · Swahili**" in result.output and "| CLO (full)" in result.output
    assert f"report: {out / 'report.md'}" in result.output
    text = (out / "report.md").read_text()
    assert text.startswith("# langshift report: demo, grid\n")
    assert "Table 1 shape" in text and "Table 5 shape" in text and "Language fidelity (beyond" in text
    merged = json.loads((out / "results.json").read_text())
    assert merged["experiment"] == "demo + grid" and len(merged["rows"]) == len(demo_rows()) + len(
        grid_rows()
    )
    # The merged folder is itself a run that can be reported again, keeping where each row came from.
    again = runner.invoke(app, ["report", str(out), "--title", "Again"])
    assert again.exit_code == 0, again.output
    report = (out / "report.md").read_text()
    assert report.startswith("# Again\n") and "../demo/results.json" in report


def test_report_defaults_to_the_first_run_and_keeps_its_results(demo_run):
    before = (demo_run / "results.json").read_bytes()
    result = runner.invoke(app, ["report", str(demo_run)])
    assert result.exit_code == 0, result.output
    assert "| Base   | –         | 10.0 ± 4.2" in result.output
    assert (demo_run / "report.md").is_file() and (demo_run / "results.json").read_bytes() == before


def test_report_bad_row_exits_2_naming_file_and_row(tmp_path):
    rows = demo_rows()
    del rows[5]["n"]
    run = write_run(tmp_path / "bad", rows)
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 2
    assert f"{run / 'results.json'}: field 'n': rows[5]: missing required field" in result.output
    assert not (run / "report.md").exists()
