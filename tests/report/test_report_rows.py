"""Loading and merging run directories; bad input names the file, the row index and the field."""

from __future__ import annotations

import json
import shutil

import pytest
from report_rows import demo_rows, grid_rows, row, write_run

from langshift.files import InputError
from langshift.report.rows import load_rows, main_rows


def test_merge_two_runs_keeps_every_row_and_its_source(demo_run, grid_run):
    rows = load_rows([demo_run, grid_run])
    assert len(rows) == len(demo_rows()) + len(grid_rows())
    assert {r["source"] for r in rows} == {
        str((demo_run / "results.json").resolve()),
        str((grid_run / "results.json").resolve()),
    }
    # A results.json path works as well as its directory.
    assert len(load_rows([demo_run / "results.json"])) == len(demo_rows())


def test_identical_rows_in_two_runs_are_kept_once(demo_run, tmp_path):
    copy = shutil.copytree(demo_run, tmp_path / "again")
    assert len(load_rows([demo_run, copy])) == len(demo_rows())


def test_conflicting_rows_are_refused_naming_both_files(demo_run, tmp_path):
    rows = demo_rows()
    rows[0] = {**rows[0], "value": 0.5}
    other = write_run(tmp_path / "other", rows)
    with pytest.raises(InputError) as e:
        load_rows([demo_run, other])
    msg = str(e.value)
    assert str(other / "results.json") in msg and str(demo_run / "results.json") in msg and "rows[0]" in msg


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda r: r.pop("metric"), "metric", "missing required field"),
        (lambda r: r.update(value=45.0), "value", "fraction"),
        (lambda r: r.update(method="ppo"), "method", "'ppo' is not one of"),
        (lambda r: r.update(metric="win_rate"), "metric", "not a fidelity metric"),
        (lambda r: r.update(size=0), "size", "positive integer"),
        (lambda r: r.update(n=True), "n", "positive integer"),
        (lambda r: r.update(stderr=-0.1), "stderr", "non-negative"),
        (lambda r: r.update(eval_lang="de"), "eval_lang", "is not one of"),
    ],
)
def test_bad_row_names_file_index_and_field(tmp_path, change, field, words):
    rows = demo_rows()
    change(rows[3])
    run = write_run(tmp_path / "bad", rows)
    with pytest.raises(InputError) as e:
        load_rows([run])
    assert e.value.file == str(run / "results.json") and e.value.field == field
    assert "rows[3]" in str(e.value) and words in str(e.value)


def test_alpaca_row_needs_its_baseline(tmp_path):
    run = write_run(tmp_path / "r", [row("clo", 200, "alpaca", "target", "win_rate", 0.6, 0.02, 805)])
    with pytest.raises(InputError, match=r"rows\[0\].*judged against") as e:
        load_rows([run])
    assert e.value.field == "baseline"


def test_not_a_run_file(tmp_path):
    with pytest.raises(InputError, match="no results.json"):
        load_rows([tmp_path])
    (tmp_path / "results.json").write_text('{"experiment": "x",\n "rows": [1,]}')
    with pytest.raises(InputError) as e:
        load_rows([tmp_path])
    assert e.value.line == 2 and "invalid JSON" in str(e.value)
    (tmp_path / "results.json").write_text(json.dumps({"model": "m", "fidelity": {}}))  # an eval-suite file
    with pytest.raises(InputError) as e:
        load_rows([tmp_path])
    assert e.value.field == "rows"
    (tmp_path / "results.json").write_text(json.dumps({"experiment": "x", "rows": [[1, 2]]}))
    with pytest.raises(InputError, match=r"rows\[0\]: expected a JSON object"):
        load_rows([tmp_path])


def test_main_rows_prefer_the_papers_variant_at_the_largest_size():
    main = main_rows(grid_rows())
    clo_sw = [r for r in main if r["method"] == "clo" and r["lang"] == "sw" and r["task"] == "alpaca"]
    assert {(r["trainable"], r["nll"], r["size"]) for r in clo_sw} == {("attention", "target", 6400)}
    bele = [r for r in main if r["task"] == "belebele"]
    assert {r["size"] for r in bele} == {6400}
    # With only a full-tuning run, that run is the one shown.
    only_full = [{**r, "trainable": "full"} for r in grid_rows() if r["trainable"] == "attention"]
    assert {r["trainable"] for r in main_rows(only_full)} == {"full"}


def test_rows_without_nll_reduction_read_as_per_token(tmp_path):
    """Rows written before the option existed stay valid: trained rows read "token", the base model None;
    a new row that says "token" is the same measurement as an old row that says nothing."""
    old = demo_rows()
    assert all("nll_reduction" not in r for r in old)
    rows = load_rows([write_run(tmp_path / "old", old)])
    assert {(r["method"] == "base", r["nll_reduction"]) for r in rows} == {(True, None), (False, "token")}
    new = [{**r, "nll_reduction": None if r["method"] == "base" else "token"} for r in old]
    assert len(load_rows([tmp_path / "old", write_run(tmp_path / "new", new)])) == len(old)
    bad = [{**old[3], "nll_reduction": "mean"}]
    with pytest.raises(InputError) as e:
        load_rows([write_run(tmp_path / "bad", bad)])
    assert e.value.field == "nll_reduction"
