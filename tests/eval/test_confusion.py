"""The `confusion` task: LCB's rates and English words inside Latin-script answers, on the real detectors."""

from __future__ import annotations

import pytest

pytest.importorskip("fasttext", reason="LCB's metrics need langshift[lcb] (fastText lid.176)")

from langshift.eval.confusion import latin_words_measured  # noqa: E402
from langshift.eval.tasks import TASKS, TaskContext  # noqa: E402
from langshift.files import iter_jsonl  # noqa: E402

DE_ROWS = [
    {"id": "p1", "prompt": "Wie wird das Wetter?", "response": "Das Wetter wird morgen sonnig und warm, also perfekt "
     "für einen Ausflug in die Berge."},
    {"id": "p2", "prompt": "Warum ist Schlaf wichtig?", "response": "Schlaf ist really wichtig, because der Körper sich "
     "in der Nacht erholt und das Gehirn Erinnerungen ordnet."},
    {"id": "p3", "prompt": "Was ist ein Vulkan?", "response": "A volcano is an opening in the crust of the earth "
     "where melted rock comes out."},
    {"id": "p4", "prompt": "Hallo?", "response": "Hallo!"},  # no line of 5 tokens: outside every rate
]


def _run(tmp_path, rows, lang):
    ctx = TaskContext(cfg=None, out=tmp_path, model=None, responses={lang: rows})
    return TASKS["confusion"].run(ctx, lang), {r["id"]: r for _, r in iter_jsonl(tmp_path / f"confusion.{lang}.jsonl")}


def test_german_answers_get_lcb_rates_and_the_english_words_inside_them(tmp_path):
    result, items = _run(tmp_path, DE_ROWS, "de")
    assert [items[i]["line_pass"] for i in ("p1", "p2", "p3", "p4")] == [True, True, False, None]
    # LCB's line test passes p2 (German around two English words); the word test catches them.
    assert items["p1"]["latin_word_pass"] is True and items["p3"]["latin_word_pass"] is None
    assert items["p2"]["latin_word_pass"] is False and items["p2"]["english_intrusions"] == ["really", "because"]
    m = result["metrics"]
    assert m["lpr"]["value"] == pytest.approx(2 / 3) and m["lpr"]["n"] == 3 and result["skipped"] == 1
    assert m["wpr_latin"]["value"] == pytest.approx(1 / 2) and m["wpr_latin"]["n"] == 2
    assert "wpr" not in m and m["lcpr"] == m["lpr"]  # LCB defines no WPR for German: LCPR is LPR


def test_which_languages_get_which_word_rate():
    assert latin_words_measured("sw") and latin_words_measured("de")
    assert not latin_words_measured("en")  # English is the language that intrudes, not a target
    assert not latin_words_measured("zh")  # LCB's own WPR covers it
    assert not latin_words_measured("yo")  # no lexicon: not measured rather than measured wrongly


def test_chinese_answers_get_lcb_wpr_and_lcpr_their_harmonic_mean(tmp_path):
    rows = [{"id": "z1", "prompt": "?", "response": "我们今天下午去公园散步，然后在湖边喝茶聊天。"},
            {"id": "z2", "prompt": "?", "response": "我们今天下午去公园散步，然后在湖边喝 coffee 聊天 together 很好。"}]
    result, items = _run(tmp_path, rows, "zh")
    m = result["metrics"]
    assert "wpr_latin" not in m and items["z1"]["word_pass"] is True
    assert items["z2"]["english_words"] == ["coffee", "together"] and items["z2"]["word_pass"] is False
    assert (m["lpr"]["value"], m["wpr"]["value"]) == (1.0, 0.5)
    assert m["lcpr"]["value"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)


def test_eval_fidelity_with_the_lcb_detector_prints_lcb_s_rates(tmp_path):
    from typer.testing import CliRunner

    from langshift.cli import app
    from langshift.files import read_json, write_jsonl

    write_jsonl(tmp_path / "r.jsonl", DE_ROWS)
    args = ["eval", "fidelity", "--responses", str(tmp_path / "r.jsonl"), "--lang", "de", "--detector", "lcb"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "LPR 66.7" in res.output and "LCPR 66.7" in res.output and "wpr_latin 50.0" in res.output
    assert read_json(tmp_path / "o" / "results.json")["confusion"]["de"]["metrics"]["lpr"]["n"] == 3
    res = CliRunner().invoke(app, [*args, "--candidates", "en", "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "--candidates" in res.output and "lid.176" in res.output


def test_adding_a_response_scorer_to_a_study_scores_its_stored_responses_instead_of_re_running_it(tmp_path):
    """`confusion` stays out of an eval stage's identity, so a finished study keeps its stage directories
    and `rescore` adds the task from the stored responses; a task scored by an older version of its
    procedure is scored again."""
    from pathlib import Path

    from langshift.eval.suite import rescore
    from langshift.experiment import load_experiment, plan
    from langshift.files import read_json, write_json, write_jsonl

    demo = Path(__file__).parents[2] / "configs" / "demo.yaml"
    dirs = {}
    for tasks in ("[fidelity, degeneration]", "[fidelity, degeneration, confusion]", "[fidelity]"):
        exp = load_experiment(demo, quick=True, overrides=[f"out={tmp_path}", f"eval.tasks={tasks}"])
        dirs[tasks] = sorted(str(s.directory(tmp_path)) for s in plan(exp, tmp_path) if s.kind == "eval")
    assert dirs["[fidelity, degeneration]"] == dirs["[fidelity, degeneration, confusion]"]
    assert dirs["[fidelity]"] != dirs["[fidelity, degeneration]"]  # a task that is part of the identity

    out = tmp_path / "eval"
    write_jsonl(out / "responses.de.jsonl", DE_ROWS)
    write_json(out / "results.json", {"meta": {"langs": ["de"], "versions": {"degeneration": "0"}},
                                      "fidelity": {"de": {"kept": True}}, "degeneration": {"de": {"old": True}}})
    assert sorted(rescore(out, ["fidelity", "degeneration", "confusion"])) == ["confusion.de", "degeneration.de"]
    state = read_json(out / "results.json")
    assert state["fidelity"]["de"] == {"kept": True}  # up to date: untouched
    assert state["confusion"]["de"]["metrics"]["lpr"]["n"] == 3 and "old" not in state["degeneration"]["de"]
    assert (out / "confusion.de.jsonl").is_file() and rescore(out, ["confusion", "degeneration"]) == []
