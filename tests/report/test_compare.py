"""Paired comparisons of evaluations: item by item, seeds grouped, mismatches named; seeds in plans and rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langshift.eval.stats import MismatchedItems
from langshift.experiment import load_experiment, plan
from langshift.files import write_json, write_jsonl
from langshift.report.compare import compare_evals, run_comparisons
from langshift.report.rows import collapse_seeds

DEMO = Path(__file__).parents[2] / "configs" / "demo.yaml"


def _eval_dir(root: Path, name: str, passes: dict[str, list[bool]], accuracy: dict[str, int]) -> Path:
    """An evaluation directory as the suite writes it: results.json + per-item files (k samples per prompt)."""
    d = root / name
    items = [{"id": pid, "sample": s, "response_pass": ok, "line_pass": None, "line_langs": []}
             for pid, oks in passes.items() for s, ok in enumerate(oks)]
    write_jsonl(d / "fidelity.sw.jsonl", items)
    write_jsonl(d / "belebele.sw.jsonl", [{"id": i, "correct": c} for i, c in accuracy.items()])
    write_json(d / "results.json", {"meta": {"lang": "sw"}, "fidelity": {"sw": {}}, "belebele": {"sw": {}}})
    return d


def _random_side(root, name, rng, p):
    passes = {f"p{i}": [rng.random() < p for _ in range(2)] for i in range(30)}
    return _eval_dir(root, name, passes, {f"q{i}": int(rng.random() < 0.5) for i in range(20)})


def test_two_evaluations_item_by_item(tmp_path):
    rng = random.Random(0)
    a = _random_side(tmp_path, "a", rng, 0.9)
    b = _random_side(tmp_path, "b", rng, 0.3)
    got = {(c["task"], c["metric"]): c for c in compare_evals([a], [b], resamples=2000)}
    fid = got[("fidelity", "response_pass_rate")]
    assert fid["n"] == 30 and fid["excluded"] == 0 and fid["excludes_zero"] and fid["diff"] > 0.3
    assert fid["ci_low"] < fid["diff"] < fid["ci_high"] and fid["p_value"] < 0.01
    assert ("fidelity", "line_pass_rate") not in got  # no counted line anywhere: nothing to compare
    assert got[("belebele", "accuracy")]["n"] == 20


def test_mismatched_items_are_named_never_a_silent_subset(tmp_path):
    a = _eval_dir(tmp_path, "a", {"p1": [True], "p2": [False]}, {"q1": 1})
    b = _eval_dir(tmp_path, "b", {"p1": [True], "p3": [False]}, {"q1": 0})
    with pytest.raises(MismatchedItems, match="p2") as e:
        compare_evals([a], [b])
    assert "p3" in str(e.value)


def test_seeds_are_compared_hierarchically_and_from_the_cli(tmp_path):
    rng = random.Random(1)
    a = [_random_side(tmp_path, f"a{s}", rng, 0.8) for s in range(3)]
    b = [_random_side(tmp_path, f"b{s}", rng, 0.4) for s in range(3)]
    got = {(c["task"], c["metric"]): c for c in compare_evals(a, b, resamples=2000)}
    fid = got[("fidelity", "response_pass_rate")]
    assert (fid["seeds_a"], fid["seeds_b"]) == (3, 3) and fid["excludes_zero"]
    from langshift.cli import app

    res = CliRunner().invoke(app, ["compare", ",".join(map(str, a)), ",".join(map(str, b)), "--resamples", "500"])
    assert res.exit_code == 0, res.output
    assert "A − B on language fidelity (sw) = +" in res.output and "3 vs 3 seeds" in res.output


def test_run_comparisons_contrast_each_method_with_the_baseline_and_the_ablations(tmp_path):
    rng = random.Random(2)
    facts = {"model": "m", "lang": "sw", "size": 8, "trainable": "attention", "nll": "target"}
    evals = [({**facts, "method": "base", "trainable": None, "nll": None}, _random_side(tmp_path, "base", rng, .5))]
    for name, f in {"sft": {"method": "sft"}, "clo": {"method": "clo"},
                    "clo-full": {"method": "clo", "trainable": "full"},
                    "clo-both": {"method": "clo", "nll": "both"}}.items():
        evals.append(({**facts, **f}, _random_side(tmp_path, name, rng, 0.5)))
    got = {(c["axis"], c["a"], c["b"], c["trainable"], c["nll"]) for c in run_comparisons(evals, resamples=200)}
    assert got == {("method", "clo", "sft", "attention", "target"), ("trainable", "attention", "full", "attention",
                   "target"), ("nll", "target", "both", "attention", "target")}


def test_seeds_multiply_training_runs_and_the_eval_seed_follows_them(tmp_path):
    exp = load_experiment(DEMO, quick=True, overrides=[f"out={tmp_path}", "seeds=[0, 1, 2]"])
    stages = plan(exp, tmp_path)
    trains = [s for s in stages if s.kind == "train"]
    assert len(trains) == 2 * 3 and {s.spec["train"]["seed"] for s in trains} == {0, 1, 2}
    assert len({s.directory(tmp_path) for s in trains}) == 6
    evals = [s for s in stages if s.kind == "eval" and s.facts["method"] != "base"]
    assert all(s.spec["eval"]["seed"] == s.facts["seed"] for s in evals)
    with pytest.raises(ValueError, match="distinct"):
        load_experiment(DEMO, overrides=["seeds=[1, 1]"])


def test_collapse_seeds_mean_and_spread():
    rows = [{"model": "m", "lang": "sw", "method": "clo", "size": 8, "trainable": "attention", "nll": "target",
             "task": "fidelity", "eval_lang": "target", "metric": "response_pass_rate", "value": v, "stderr": 0.01,
             "n": 50, "seed": s} for s, v in enumerate((0.5, 0.6, 0.7))]
    (row,) = collapse_seeds(rows)
    assert row["value"] == pytest.approx(0.6) and row["seeds"] == 3 and row["seed_sd"] == pytest.approx(0.1)
    assert row["stderr"] == pytest.approx(0.1 / 3**0.5) and "seed" not in row
    assert json.dumps(row)  # still plain JSON


def test_compare_finds_a_run_s_evaluations_in_its_shared_stages_directory(tmp_path, monkeypatch):
    """A run with `stages: runs/study` keeps its evaluations outside its own directory; experiment.json lists
    them relative to where the run started. `langshift compare RUN` follows them from anywhere."""
    rng = random.Random(2)
    shared, run = tmp_path / "runs" / "study", tmp_path / "runs" / "study-x"
    stages = []
    for method, p in (("clo", 0.9), ("sft", 0.3)):
        d = _random_side(shared / "eval", f"{method}-s0", rng, p)
        facts = {"model": "m", "lang": "sw", "method": method, "size": 8, "trainable": "attention", "nll": "target"}
        write_json(d / "spec.json", {"facts": facts})
        write_json(d / "stage.json", {"seconds": 1})
        stages.append({"kind": "eval", "label": f"{method}", "dir": f"runs/study/eval/{method}-s0", "done": True})
    write_json(run / "experiment.json", {"experiment": {"out": "runs/study-x", "stages": "runs/study"},
                                         "stages": stages})
    from langshift.cli import app

    monkeypatch.chdir(tmp_path.parent)  # not where the run started: the paths are re-rooted at the run dir
    res = CliRunner().invoke(app, ["compare", str(run), "--a", "method=clo", "--b", "method=sft",
                                   "--resamples", "500"])
    assert res.exit_code == 0, res.output
    assert "method=clo − method=sft on language fidelity (sw) = +" in res.output


def test_ablation_comparisons_keep_each_models_facts_and_fill_table4(tmp_path):
    """SFT and CLO each trained attention-only and full, evaluated in Swahili and English: every contrast
    keeps its models' method and target language (a difference's own keys once overwrote both), so Table
    4's Δ cells are the paired differences with their CIs, in English too."""
    from langshift.report.tables import table4_trainable

    rng = random.Random(3)
    facts = {"model": "m", "lang": "sw", "size": 8, "nll": "target", "nll_reduction": "token"}
    evals, rows = [], []
    for method in ("sft", "clo"):
        for trainable, p in (("attention", 0.4), ("full", 0.9)):
            d = _random_side(tmp_path, f"{method}-{trainable}", rng, p)
            (d / "fidelity.en.jsonl").write_text((d / "fidelity.sw.jsonl").read_text())
            write_json(d / "results.json", {"meta": {"lang": "sw"}, "fidelity": {"sw": {}, "en": {}}})
            f = {**facts, "method": method, "trainable": trainable}
            evals.append((f, d))
            rows += [{**f, "task": "fidelity", "metric": "response_pass_rate", "eval_lang": ev, "value": p,
                      "stderr": 0.05, "n": 30} for ev in ("target", "en")]
    comparisons = run_comparisons(evals, resamples=200)
    ablated = {(c["method"], c["lang"], c["eval_lang"]) for c in comparisons
               if c["axis"] == "trainable" and c["task"] == "fidelity" and c["metric"] == "response_pass_rate"}
    assert ablated == {(m, "sw", ev) for m in ("sft", "clo") for ev in ("target", "en")}
    assert all(c["item_lang"] == ("en" if c["eval_lang"] == "en" else "sw") for c in comparisons)
    table = table4_trainable(rows, comparisons)
    lines = [line for line in table.splitlines() if "Language fidelity" in line]
    assert len(lines) == 2 and all(line.count("p=") == 2 for line in lines), table  # Δ target and English
    from langshift.report.comparison_tables import comparison_table

    paired = comparison_table(comparisons)
    assert "SFT: attention − full" in paired and "CLO: attention − full" in paired and "CLO − SFT" in paired


def test_a_multilingual_model_is_compared_with_each_languages_own_model_in_that_language(tmp_path):
    """One sw+de model against the sw model (in Swahili and English: the held-out English items are the
    first language's) and the de model (in German only), each contrast under the language it compares."""
    rng = random.Random(4)

    def side(name, meta_lang, langs, p):
        d = _random_side(tmp_path, name, rng, p)
        for lang in langs:
            (d / f"fidelity.{lang}.jsonl").write_text((d / "fidelity.sw.jsonl").read_text())
        write_json(d / "results.json", {"meta": {"lang": meta_lang}, "fidelity": {lang: {} for lang in langs}})
        return d

    facts = {"model": "m", "method": "clo", "size": 8, "trainable": "attention", "nll": "target"}
    evals = [({**facts, "lang": "sw", "trained_langs": "sw+de"}, side("multi", "sw,de", ("sw", "de", "en"), 0.9)),
             ({**facts, "lang": "sw"}, side("sw", "sw", ("sw", "en"), 0.3)),
             ({**facts, "lang": "de"}, side("de", "de", ("de", "en"), 0.3))]
    got = {(c["lang"], c["item_lang"], c["eval_lang"]) for c in run_comparisons(evals, resamples=200)
           if c["axis"] == "trained_langs" and c["task"] == "fidelity" and c["metric"] == "response_pass_rate"}
    assert got == {("sw", "sw", "target"), ("sw", "en", "en"), ("de", "de", "target")}


def _lang_eval(root: Path, name: str, lang: str, passes: list[bool]) -> Path:
    """An evaluation in `lang` of 20 parallel prompts (the same ids in every language, as demo-v2's)."""
    d = root / name
    write_jsonl(d / f"fidelity.{lang}.jsonl", [{"id": f"v2-{i:03d}", "response_pass": ok, "line_pass": ok,
                                                "line_langs": []} for i, ok in enumerate(passes)])
    write_json(d / "results.json", {"meta": {"lang": lang}, "fidelity": {lang: {}}})
    return d


def test_the_gain_is_set_against_the_same_gain_in_the_other_language_item_by_item(tmp_path):
    """(CLO − SFT in sw) − (CLO − SFT in de): SFT fails every other Swahili prompt and CLO none, while in German
    both pass the same prompts, so the difference of differences is exactly +0.5 and excludes zero."""
    from langshift.report.compare import run_interactions
    from langshift.report.comparison_tables import interaction_table, interaction_words

    facts = {"model": "m", "size": 96, "trainable": "attention"}
    half = [i % 2 == 0 for i in range(20)]
    de = [i % 3 != 0 for i in range(20)]
    evals = [({**facts, "lang": "sw", "method": "clo"}, _lang_eval(tmp_path, "sw-clo", "sw", [True] * 20)),
             ({**facts, "lang": "sw", "method": "sft"}, _lang_eval(tmp_path, "sw-sft", "sw", half)),
             ({**facts, "lang": "de", "method": "clo"}, _lang_eval(tmp_path, "de-clo", "de", de)),
             ({**facts, "lang": "de", "method": "sft"}, _lang_eval(tmp_path, "de-sft", "de", de)),
             ({**facts, "lang": "sw", "method": "base", "trainable": None}, _lang_eval(tmp_path, "b", "sw", half))]
    got = run_interactions(evals, resamples=1000)
    assert {(c["axis"], c["a"], c["b"], c["method"], c["method_b"]) for c in got} == {("lang", "sw", "de", "clo", "sft")}
    fid = next(c for c in got if c["metric"] == "response_pass_rate")
    assert fid["diff"] == pytest.approx(0.5) and fid["n"] == 20 and fid["excludes_zero"]
    assert "Swahili vs German" in interaction_table(got)
    assert "(CLO − SFT in Swahili) − (CLO − SFT in German)" in interaction_words(got)[0]
    # Without German's SFT there is nothing to set the Swahili gain against.
    assert run_interactions([e for e in evals if e[1].name != "de-sft"], resamples=100) == []
