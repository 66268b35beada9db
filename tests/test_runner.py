"""The experiment runner: config validation, stage keys, skip/resume, and the demo config end to end."""

import io
import json
from pathlib import Path

import pytest
import yaml

from langshift.experiment import load_experiment, plan, run_experiment
from langshift.files import InputError

DEMO = Path(__file__).parents[1] / "configs" / "demo.yaml"


def _config(tmp_path, **changes):
    raw = yaml.safe_load(DEMO.read_text())
    for dotted, value in changes.items():
        d = raw
        *parents, last = dotted.split(".")
        for p in parents:
            d = d.setdefault(p, {})
        d[last] = value
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


@pytest.mark.parametrize("change,field", [
    ({"methods": ["clo", "ppo"]}, "methods[1]"),
    ({"languages": ["sw", "klingon"]}, "languages[1]"),
    ({"eval.taks": ["fidelity"]}, "eval.taks"),
    ({"train.lamda": 0.5}, "train.lamda"),
    ({"train.lam": 2.0}, "train.lam"),
    ({"sizes": [0]}, "sizes[0]"),
    ({"eval.tasks": ["fidelity", "bleu"]}, "eval.tasks[1]"),
    ({"modles": []}, "modles"),
])
def test_config_errors_name_the_key(tmp_path, change, field):
    with pytest.raises(InputError) as e:
        load_experiment(_config(tmp_path, **change))
    assert e.value.field == field and str(tmp_path / "exp.yaml") in str(e.value)


def test_quick_and_set_overrides(tmp_path):
    exp = load_experiment(DEMO, quick=True, overrides=["eval.limit=3", "out=" + str(tmp_path)])
    assert exp.sizes == [16] and exp.eval.limit == 3 and exp.out == str(tmp_path)
    with pytest.raises(InputError, match="KEY=VALUE"):
        load_experiment(DEMO, overrides=["eval.limit"])


def _dirs(exp):
    return {f"{s.kind}:{s.label}": s.directory(Path(exp.out)) for s in plan(exp, Path(exp.out))}


def test_stage_keys_follow_their_inputs(tmp_path):
    base = _dirs(load_experiment(DEMO, overrides=[f"out={tmp_path}"]))
    assert len(base) == 1 + 1 + 4 + 4  # data, base eval, 2 methods x 2 sizes trained and evaluated
    lim = _dirs(load_experiment(DEMO, overrides=[f"out={tmp_path}", "eval.limit=3"]))
    assert all(lim[k] == base[k] for k in base if not k.startswith("eval:"))
    assert all(lim[k] != base[k] for k in base if k.startswith("eval:"))
    lr = _dirs(load_experiment(DEMO, overrides=[f"out={tmp_path}", "train.lr=1e-4"]))
    changed = {k for k in base if lr[k] != base[k]}
    assert changed == {k for k in base if k.startswith("train:") or (k.startswith("eval:") and "base" not in k)}


def test_nll_reduction_ablation_runs_sft_and_clo_both_ways_but_not_dpo(tmp_path):
    """`ablations.nll_reduction` varies every method with an NLL (SFT too, so the comparison is like for
    like); DPO has none. The per-token stages keep the directories they had before the option existed."""
    before = _dirs(load_experiment(_config(tmp_path, methods=["sft", "clo", "dpo"], out=str(tmp_path / "run"))))
    exp = load_experiment(_config(tmp_path, methods=["sft", "clo", "dpo"], out=str(tmp_path / "run"),
                                  **{"ablations.nll_reduction": ["token", "sequence"]}))
    stages = plan(exp, Path(exp.out))
    after = _dirs(exp)
    assert all(after[k] == before[k] for k in before)  # the default reduction changes no stage key
    added = sorted(k for k in after if k not in before)
    assert added == sorted(f"{kind}:smollm2-135m-sw-{m}-{n}-attention-target-sequence"
                           for kind in ("train", "eval") for m in ("sft", "clo") for n in (24, 48))
    seq = [s for s in stages if s.kind == "train" and s.label.endswith("-sequence")]
    assert {s.spec["train"]["nll_reduction"] for s in seq} == {"sequence"}
    facts = {(s.facts["method"], s.facts["nll_reduction"]) for s in stages if s.kind == "eval"}
    assert ("dpo", "sequence") not in facts and {("sft", "sequence"), ("clo", "token"), ("base", None)} <= facts
    with pytest.raises(InputError) as e:
        load_experiment(_config(tmp_path, **{"ablations.nll_reduction": ["mean"]}))
    assert e.value.field == "ablations.nll_reduction[0]"


@pytest.mark.slow
def test_quick_demo_end_to_end_then_skip_then_resume(tmp_path, tiny_llama, monkeypatch):
    monkeypatch.setenv("LANGSHIFT_CACHE", str(tmp_path / "cache"))
    overrides = [f"out={tmp_path / 'run'}", f"models=[{{name: tiny, model: {tiny_llama}}}]", "eval.limit=3",
                 "train.cache_dir=" + str(tmp_path / "cache")]
    exp = load_experiment(DEMO, quick=True, overrides=overrides)
    root = run_experiment(exp, progress=False)
    rows = json.loads((root / "results.json").read_text())["rows"]
    methods = {r["method"] for r in rows}
    assert methods == {"base", "sft", "clo"}
    assert {r["task"] for r in rows} >= {"fidelity", "belebele", "mmmlu"}
    assert {r["eval_lang"] for r in rows} == {"target", "en"}
    from langshift.eval.tasks import TASKS

    assert all(0.0 <= r["value"] <= 1.0 for r in rows if TASKS[r["task"]].metric(r["metric"]).unit == "fraction")
    assert {r["task"] for r in rows} >= {"degeneration", "langpref", "heldout_nll"}  # the demo's judge-free tasks
    assert (root / "report.md").read_text().count("|") > 10
    done = {p: json.loads(p.read_text())["finished"] for p in root.glob("*/*/stage.json")}
    assert len(done) == 6
    # every CLO number has its paired difference from SFT, item by item, with a CI and a p-value
    comparisons = json.loads((root / "results.json").read_text())["comparisons"]
    fidelity = [c for c in comparisons if (c["axis"], c["a"], c["b"], c["task"], c["metric"]) ==
                ("method", "clo", "sft", "fidelity", "response_pass_rate")]
    assert {c["eval_lang"] for c in fidelity} == {"target", "en"}
    for c in fidelity:
        assert c["n"] == 6 and c["ci_low"] <= c["diff"] <= c["ci_high"] and 0 < c["p_value"] <= 1
    assert "## Paired differences" in (root / "report.md").read_text()

    # `langshift run` on the finished run prints the headline and the CLO − SFT line with its CI
    from typer.testing import CliRunner

    from langshift.cli import app

    config = tmp_path / "demo.yaml"
    config.write_text(DEMO.read_text())
    args = ["run", str(config), "--quick", *[x for o in overrides for x in ("--set", o)]]
    printed = CliRunner().invoke(app, args)
    assert printed.exit_code == 0, printed.output
    assert "CLO − SFT" in printed.output and "95% CI" in printed.output
    assert "distinguishable from zero" in printed.output

    run_experiment(exp, progress=False)  # everything done: nothing reruns
    assert {p: json.loads(p.read_text())["finished"] for p in done} == done

    victim = next(p for p in done if "/eval/" in str(p) and "-clo-" in str(p))
    victim.unlink()  # as if killed before finishing
    run_experiment(exp, progress=False)
    after = {p: json.loads(p.read_text())["finished"] for p in done}
    assert after[victim] > done[victim]
    assert all(after[p] == done[p] for p in done if p != victim)


@pytest.mark.parametrize("path", [DEMO, *sorted((DEMO.parent / "paper").glob("*.yaml")),
                                  *sorted((DEMO.parent / "study").glob("*.yaml"))], ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    exp = load_experiment(path)
    assert plan(exp, Path("/nonexistent"))


@pytest.mark.slow
def test_parallel_jobs_run_every_stage_after_its_inputs(tmp_path, tiny_llama, monkeypatch):
    monkeypatch.setenv("LANGSHIFT_CACHE", str(tmp_path / "cache"))
    overrides = [f"out={tmp_path / 'run'}", f"models=[{{name: tiny, model: {tiny_llama}}}]", "eval.limit=2",
                 "eval.tasks=[fidelity, belebele]", "train.cache_dir=" + str(tmp_path / "cache"), "jobs=2",
                 f"stages={tmp_path / 'shared' / 'stages'}"]  # stage outputs apart from the report, not yet there
    exp = load_experiment(DEMO, quick=True, overrides=overrides)
    assert exp.jobs == 2
    out = run_experiment(exp, progress=False)
    assert out == tmp_path / "run" and (out / "report.md").is_file()
    root = tmp_path / "shared" / "stages"
    stages = {s.directory(root): s for s in plan(exp, root)}
    info = {d: json.loads((d / "stage.json").read_text()) for d in stages}
    logs = sorted(p.name for p in (root / "logs").glob("*.log"))
    assert len(logs) == len(stages) == 6  # every stage ran in a child process
    for d, stage in stages.items():
        started = info[d]["finished"] - info[d]["seconds"]
        for need in stage.needs:  # a stage starts only after the stages it reads have finished
            assert info[need.directory(root)]["finished"] <= started + 0.5
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"base", "sft", "clo"}


def test_a_failed_child_stage_names_itself_and_shows_its_log(tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r"field 'models\[0\]\.model': local model path /nonexistent/model does not"):
        load_experiment(DEMO, overrides=["models=[{name: missing, model: /nonexistent/model}]"])  # said up front
    broken = tmp_path / "broken-model"  # passes the config check, fails in the stage that loads it
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama"}')
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    exp = load_experiment(DEMO, quick=True, overrides=[f"out={tmp_path / 'run'}", "jobs=2",
                                                       f"models=[{{name: broken, model: {broken}}}]"])
    with pytest.raises(RuntimeError, match=r"stage (train|eval) .*failed; the end of .*\.log") as e:
        run_experiment(exp, progress=False)
    assert "broken-model" in str(e.value)
    assert not list(tmp_path.glob("run/eval/*/stage.json")) and not list(tmp_path.glob("run/train/*/stage.json"))


def test_parent_view_reads_a_childs_progress_channel(tmp_path, monkeypatch):
    """A child's bars and training steps reach the parent through the channel file, not its terminal."""
    from langshift import progress

    channel = tmp_path / "child.progress.json"
    assert progress.read_progress(channel) == ""  # nothing reported yet
    monkeypatch.setenv(progress.ENV, str(channel))
    monkeypatch.setattr(progress, "_EVERY", 0.0)
    with progress.progress_bar(total=24, desc="generate", unit="prompt", file=io.StringIO()) as bar:
        bar.update(16)
        assert progress.read_progress(channel).startswith("generate 16/24 ")
        assert "prompt/s ETA " in progress.read_progress(channel)
    progress.report_steps(2, 8, elapsed=10.0)
    assert progress.read_progress(channel) == "steps 2/8 0.2 step/s ETA 00:30"


def test_multilingual_plans_one_training_stage_on_every_language_and_evaluates_it_in_each(tmp_path):
    """`ablations.multilingual: [false, true]`: a model per language as before (same stage keys), plus one
    model on sw+de that reads both data stages, takes `size` records in all (size / 2 of each) and is
    evaluated once, in sw, de and English."""
    single = _dirs(load_experiment(_config(tmp_path, languages=["sw", "de"], methods=["clo"], sizes=[48],
                                           out=str(tmp_path / "run"))))
    exp = load_experiment(_config(tmp_path, languages=["sw", "de"], methods=["clo"], sizes=[48],
                                  out=str(tmp_path / "run"), **{"ablations.multilingual": [False, True],
                                                                "train.cl_negatives": "all"}))
    stages = plan(exp, Path(exp.out))
    both = _dirs(exp)
    assert all(both[k] == v for k, v in single.items() if not k.startswith(("train:", "eval:")) or "base" in k)
    multi = [s for s in stages if "sw+de" in s.label]
    assert sorted(f"{s.kind}:{s.label}" for s in multi) == [
        "eval:smollm2-135m-sw+de-clo-48-attention-target", "train:smollm2-135m-sw+de-clo-48-attention-target"]
    train_stage, eval_stage = sorted(multi, key=lambda s: s.kind != "train")
    assert train_stage.spec["train"]["lang"] == "sw,de" and train_stage.spec["train"]["multilingual"] is True
    assert train_stage.spec["train"]["limit"] == 24  # 24 sw + 24 de: the 6 steps of a 48-record model
    assert [n.label for n in train_stage.needs] == ["sw", "de"] and len(train_stage.spec["data_dirs"]) == 2
    assert eval_stage.needs[0] is train_stage and eval_stage.spec["eval"]["lang"] == "sw,de"
    assert eval_stage.facts["trained_langs"] == "sw+de" and eval_stage.facts["lang"] == "sw"
    from langshift.eval.config import EvalConfig

    cfg = EvalConfig.parse({**eval_stage.spec["eval"], "model": "smollm2", "out": str(tmp_path / "e")})
    assert cfg.langs == ["sw", "de", "en"]
    singles = {s.label for s in stages if s.kind == "train" and "sw+de" not in s.label}
    assert singles == {"smollm2-135m-sw-clo-48-attention-target", "smollm2-135m-de-clo-48-attention-target"}
    with pytest.raises(InputError, match="at least two"):
        load_experiment(_config(tmp_path, **{"train.multilingual": True}))


@pytest.mark.slow
def test_a_multilingual_run_ends_with_its_report_and_model_card(tmp_path, tiny_llama, monkeypatch):
    """`train.multilingual: true` end to end: one model on sw+de, evaluated in sw, de and English, then the
    report and the model's card (the card once failed on the language list "sw,de", after every stage)."""
    monkeypatch.setenv("LANGSHIFT_CACHE", str(tmp_path / "cache"))
    overrides = [f"out={tmp_path / 'run'}", f"models=[{{name: tiny, model: {tiny_llama}}}]", "eval.limit=2",
                 "eval.tasks=[fidelity, langpref]", "train.cache_dir=" + str(tmp_path / "cache"),
                 "languages=[sw, de]", "methods=[clo]", "train.multilingual=true", "train.cl_negatives=all"]
    root = run_experiment(load_experiment(DEMO, quick=True, overrides=overrides), progress=False)
    rows = json.loads((root / "results.json").read_text())["rows"]
    trained = {(r["lang"], r["eval_lang"]) for r in rows if r.get("trained_langs") == "sw+de"}
    assert trained == {("sw", "target"), ("de", "target"), ("sw", "en")}
    report = (root / "report.md").read_text()
    assert "**tiny · Swahili**" in report and "**tiny · German**" in report
    card = next(root.glob("train/*sw+de*/README.md")).read_text()
    assert "- sw\n- de\n- en\n" in card and "| Language fidelity | German |" in card


def test_seeds_per_language_cuts_one_arms_replicates_and_keeps_every_other_stage(tmp_path):
    """A grid that does not fit cuts the high-resource arm's seeds first (issue 22): the stages kept are
    the very stages (same directories) of the run with every seed everywhere, so nothing is recomputed."""
    both = _config(tmp_path, languages=["sw", "de"], seeds=[0, 1], out=str(tmp_path / "run"))
    full = _dirs(load_experiment(both))
    cut = _dirs(load_experiment(both, overrides=["seeds_per_language={de: [0]}"]))
    assert set(cut) < set(full) and all(cut[k] == full[k] for k in cut)
    dropped = sorted(set(full) - set(cut))
    assert dropped and all("-de-" in k and k.endswith("-s1") for k in dropped)
    assert not any("-sw-" in k for k in dropped)
    for bad, field in [("seeds_per_language={fr: [0]}", "seeds_per_language"),
                       ("seeds_per_language={de: [0, 0]}", "seeds_per_language")]:
        with pytest.raises(InputError) as e:
            load_experiment(both, overrides=[bad])
        assert e.value.field.startswith(field)
    with pytest.raises(InputError, match="needs `seeds`"):
        load_experiment(_config(tmp_path, languages=["sw", "de"], out=str(tmp_path / "run")),
                        overrides=["seeds_per_language={de: [0]}"])


def test_stage_keys_do_not_depend_on_where_langshift_is_installed(tmp_path, monkeypatch):
    """The packaged demo BELEBELE/MMMLU sets enter an evaluation's key by their content, not their path: a
    second checkout (or a new machine) sharing the `stages:` directory reuses every stage."""
    import shutil

    from langshift.data import seed

    here = _dirs(load_experiment(DEMO, overrides=[f"out={tmp_path}"]))
    moved = tmp_path / "elsewhere" / "demo"
    shutil.copytree(seed.demo_dir(), moved)
    monkeypatch.setattr(seed, "demo_dir", lambda: moved)
    exp = load_experiment(DEMO, overrides=[f"out={tmp_path}"])
    assert _dirs(exp) == here
    assert any(str(moved) in json.dumps(s.spec) for s in plan(exp, Path(exp.out)))  # the run reads the files there
    (moved / "belebele.jsonl").write_text((moved / "belebele.jsonl").read_text()[:-200])  # a changed set
    changed = _dirs(load_experiment(DEMO, overrides=[f"out={tmp_path}"]))
    assert {k for k in here if changed[k] != here[k]} == {k for k in here if k.startswith("eval:")}
