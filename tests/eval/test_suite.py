"""The suite end to end on a tiny random Llama with tiny local sets in the benchmarks' real schemas."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from langshift.eval.config import EvalConfig, JudgeConfig
from langshift.eval.suite import evaluate, load_prompts
from langshift.files import InputError, read_jsonl, write_jsonl
from langshift.fingerprints import weight_files_fingerprint as model_fingerprint

SW_ANSWER = "Mto unapita polepole katikati ya mji wa zamani.\nWatu wengi hutembea kando yake kila jioni."

PROMPTS = [
    {
        "id": "p1",
        "category": "qa",
        "en": "Name a long river.",
        "sw": "Taja mto mrefu.",
        "de": "Nenne einen Fluss.",
    },
    {"id": "p2", "category": "qa", "en": "Why is the sky blue?", "sw": "Kwa nini anga ni la buluu?"},
]


def _belebele_rows():
    passages = {
        "eng_Latn": (
            "The market opens at seven and closes at one.",
            "When does the market close?",
            ["At seven", "At nine", "At one", "At noon"],
        ),
        "swh_Latn": (
            "Soko hufunguliwa saa moja na hufungwa saa saba.",
            "Soko hufungwa lini?",
            ["Saa moja", "Saa tatu", "Saa saba", "Mchana"],
        ),
    }
    rows = []
    for dialect, (passage, question, options) in passages.items():
        for q in (1, 2):
            rows.append(
                {
                    "link": f"test/{dialect}",
                    "question_number": q,
                    "flores_passage": passage,
                    "question": question,
                    "mc_answer1": options[0],
                    "mc_answer2": options[1],
                    "mc_answer3": options[2],
                    "mc_answer4": options[3],
                    "correct_answer_num": "3",
                    "dialect": dialect,
                    "ds": "2023-01-01",
                }
            )
    return rows


def _mmmlu_rows():
    rows = []
    for lang, question, options in (
        ("en", "Which gas do humans breathe in to live?", ["Oxygen", "Helium", "Neon", "Argon"]),
        ("sw", "Binadamu huvuta gesi gani ili kuishi?", ["Oksijeni", "Heliamu", "Neoni", "Agoni"]),
    ):
        for i, subject in enumerate(("high_school_biology", "nutrition")):
            rows.append(
                {
                    "id": f"q{i}",
                    "lang": lang,
                    "Question": question,
                    "A": options[0],
                    "B": options[1],
                    "C": options[2],
                    "D": options[3],
                    "Answer": "A",
                    "Subject": subject,
                }
            )
    return rows


@pytest.fixture()
def data(tmp_path):
    paths = {
        "prompts": tmp_path / "prompts.jsonl",
        "belebele": tmp_path / "belebele.jsonl",
        "mmmlu": tmp_path / "mmmlu.jsonl",
    }
    write_jsonl(paths["prompts"], PROMPTS)
    write_jsonl(paths["belebele"], _belebele_rows())
    write_jsonl(paths["mmmlu"], _mmmlu_rows())
    return {k: str(v) for k, v in paths.items()}


def _config(tiny_llama, out, data, **kw):
    return EvalConfig.from_dict(
        {
            "model": str(tiny_llama),
            "lang": "sw",
            "out": str(out),
            "tasks": "fidelity,belebele,mmmlu,alpaca",
            "max_new_tokens": 8,
            "mmmlu_max_new_tokens": 8,
            "batch_size": 4,
            "seed": 0,
            **data,
            **kw,
        }
    )


def test_evaluate_end_to_end_and_resume(tiny_llama, tmp_path, data):
    out = tmp_path / "run"
    state = evaluate(_config(tiny_llama, out, data))

    # results.json: results[task][lang], every number with its n and standard error
    saved = json.loads((out / "results.json").read_text())
    assert saved == state
    assert set(saved) == {"model", "meta", "fidelity", "belebele", "mmmlu", "alpaca", "skipped"}
    for task in ("fidelity", "belebele", "mmmlu"):
        assert list(saved[task]) == ["sw", "en"], task
    for lang in ("sw", "en"):
        fid = saved["fidelity"][lang]
        rate = fid["metrics"]["response_pass_rate"]
        assert rate["n"] == 2 and 0 <= rate["value"] <= 1
        assert rate["stderr"] is not None and sum(fid["detected_as"].values()) == 2
        for task in ("belebele", "mmmlu"):
            r = saved[task][lang]["metrics"]["accuracy"]
            assert r["n"] == 2 and 0 <= r["value"] <= 1 and r["stderr"] >= 0
    assert saved["alpaca"] == {} and "judge" in saved["skipped"]["alpaca"]
    assert saved["meta"]["langs"] == ["sw", "en"] and saved["meta"]["config"]["lang"] == "sw"
    # the default backend, auto, says what it picked and why: 2 prompts are too few to measure llama.cpp for
    for lang in ("sw", "en"):
        chosen = saved["meta"]["generation_backend"][lang]
        assert chosen["backend"] == "hf" and "too few to pay for measuring" in chosen["reason"]
    assert "Open responses (sw) generated with torch: " in (out / "report.md").read_text()

    # raw per-item files
    for lang, prompts in (
        ("sw", ["Taja mto mrefu.", "Kwa nini anga ni la buluu?"]),
        ("en", ["Name a long river.", "Why is the sky blue?"]),
    ):
        rows = read_jsonl(out / f"responses.{lang}.jsonl")
        assert sorted(r["prompt"] for r in rows) == sorted(prompts)
        assert len(read_jsonl(out / f"fidelity.{lang}.jsonl")) == 2
        assert len(read_jsonl(out / f"belebele.{lang}.jsonl")) == 2

    # report.md: one table per task in the paper's shape (rows Target / English)
    report = (out / "report.md").read_text()
    for title in ("## BELEBELE", "## MMMLU", "## Language fidelity", "## AlpacaEval"):
        assert title in report
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert sum(r.startswith("| Target (sw) ") for r in rows) == 3  # fidelity, belebele, mmmlu
    assert sum(r.startswith("| English (en) ") for r in rows) == 3
    assert re.search(r"\| Category +\| Target \(sw\) +\| English \(en\) +\|", report)  # MMMLU per category
    acc = 100 * saved["belebele"]["sw"]["metrics"]["accuracy"]["value"]
    assert re.search(rf"\| Target \(sw\) +\| {acc:.1f} ± ", report)
    assert "_skipped: needs both a judge" in report

    png = (out / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    # Rerun: responses come from disk (edited ones included), model tasks are reused, nothing regenerated.
    sw_rows = read_jsonl(out / "responses.sw.jsonl")
    write_jsonl(out / "responses.sw.jsonl", [{**r, "response": SW_ANSWER} for r in sw_rows])
    before = (out / "responses.sw.jsonl").read_bytes()
    again = evaluate(_config(tiny_llama, out, data))
    assert (out / "responses.sw.jsonl").read_bytes() == before
    assert again["fidelity"]["sw"]["metrics"]["response_pass_rate"]["value"] == 1.0
    assert again["fidelity"]["sw"]["metrics"]["line_pass_rate"]["value"] == 1.0
    assert again["belebele"] == state["belebele"] and again["mmmlu"] == state["mmmlu"]
    assert not any(k.startswith(("generate.", "belebele.", "mmmlu.")) for k in again["meta"]["seconds"])
    assert again["meta"]["generation_backend"]["sw"] == {"backend": "hf", "reason": "read from responses.sw.jsonl"}

    # Responses sampled with other settings are not mixed in.
    with pytest.raises(ValueError, match=r"other settings \(max_new_tokens: 8 -> 9\)"):
        evaluate(_config(tiny_llama, out, data, tasks="fidelity", max_new_tokens=9))

    # A different model may not write into this directory.
    (tmp_path / "another-model").mkdir()
    with pytest.raises(ValueError, match="different model"):
        evaluate(_config(tmp_path / "another-model", out, data, tasks="fidelity"))


def test_changed_limit_reruns_the_model_task(tiny_llama, tmp_path, data):
    out = tmp_path / "run"
    first = evaluate(_config(tiny_llama, out, data, tasks="belebele", english=False, limit=1))
    assert first["belebele"]["sw"]["metrics"]["accuracy"]["n"] == 1 and list(first["belebele"]) == ["sw"]
    second = evaluate(_config(tiny_llama, out, data, tasks="belebele", english=False, limit=2))
    assert second["belebele"]["sw"]["metrics"]["accuracy"]["n"] == 2 and "belebele.sw" in second["meta"]["seconds"]


def test_config_from_dict_validates():
    cfg = EvalConfig.from_dict(
        {
            "model": "m",
            "lang": "swh_Latn",
            "out": "o",
            "tasks": "fidelity, alpaca",
            "judge": {"model": "smollm2", "base_url": "http://x/v1", "api_key_env": None},
        }
    )
    assert cfg.lang == "sw" and cfg.tasks == ["fidelity", "alpaca"] and cfg.langs == ["sw", "en"]
    assert isinstance(cfg.judge, JudgeConfig) and cfg.judge.api_key_env is None
    with pytest.raises(ValueError, match="field 'tempreature': unknown key"):
        EvalConfig.from_dict({"model": "m", "lang": "sw", "out": "o", "tempreature": 1})
    with pytest.raises(ValueError, match=r"field 'tasks\[1\]': Input should be 'fidelity', .*got 'mmlu'"):
        EvalConfig.from_dict({"model": "m", "lang": "sw", "out": "o", "tasks": ["fidelity", "mmlu"]})
    with pytest.raises(ValueError, match="field 'judge.modle': unknown key"):
        EvalConfig.from_dict({"model": "m", "lang": "sw", "out": "o", "judge": {"modle": "x"}})
    with pytest.raises(ValueError, match="field 'batch_size': Input should be greater than or equal to 1, got -1"):
        EvalConfig.from_dict({"model": "m", "lang": "sw", "out": "o", "batch_size": -1})


def test_load_prompts_shapes(tmp_path, data):
    got = load_prompts(data["prompts"], ["sw", "en"], "sw")
    assert got["sw"] == [
        {"id": "p1", "prompt": "Taja mto mrefu."},
        {"id": "p2", "prompt": "Kwa nini anga ni la buluu?"},
    ]
    assert [p["id"] for p in got["en"]] == ["p1", "p2"]
    assert load_prompts(data["prompts"], ["de"], "de") == {
        "de": [{"id": "p1", "prompt": "Nenne einen Fluss."}]
    }
    single = tmp_path / "single.jsonl"
    write_jsonl(single, [{"id": "a", "prompt": "Habari?"}, {"id": "b", "prompt": "Hello?", "lang": "en"}])
    assert load_prompts(single, ["sw", "en"], "sw") == {
        "sw": [{"id": "a", "prompt": "Habari?"}],
        "en": [{"id": "b", "prompt": "Hello?"}],
    }
    write_jsonl(single, [{"id": "a", "text": "Habari?"}])
    with pytest.raises(InputError, match=r"single\.jsonl:1: field 'prompt'"):
        load_prompts(single, ["sw"], "sw")
    assert load_prompts(None, ["sw", "en"], "sw", limit=3)["sw"][0]["id"]  # the packaged demo prompts


def test_model_fingerprint_follows_the_weights(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"1234")
    fp = model_fingerprint(str(model), None)
    assert model_fingerprint(str(model), None) == fp
    (model / "model.safetensors").write_bytes(b"123456")
    assert model_fingerprint(str(model), None) != fp
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    assert model_fingerprint(str(copy), None) != fp  # another path is another model


@pytest.mark.server
@pytest.mark.slow
def test_run_cli_with_judge_and_baseline(tiny_llama, tmp_path, data, llm_server):
    """`langshift eval run` with a real judge on loopback: A's responses against a baseline run's."""
    from typer.testing import CliRunner

    from langshift.eval.cli import app

    baseline = tmp_path / "baseline"
    write_jsonl(
        baseline / "responses.sw.jsonl", [{"id": "p1", "prompt": "Taja mto mrefu.", "response": "Nile."}]
    )
    config = tmp_path / "eval.yaml"
    config.write_text(json.dumps({"judge": {"max_tokens": 16, "concurrency": 1}, "model_name": "clo"}))
    out = tmp_path / "run"
    args = [
        "run",
        "--config",
        str(config),
        "--model",
        str(tiny_llama),
        "--lang",
        "sw",
        "--out",
        str(out),
        "--tasks",
        "fidelity,alpaca",
        "--prompts",
        data["prompts"],
        "--limit",
        "1",
        "--max-new-tokens",
        "8",
        "--no-english",
        "--judge-model",
        "smollm2",
        "--judge-base-url",
        llm_server,
        "--judge-api-key-env",
        "",
        "--baseline-responses",
        str(baseline),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["alpaca"]) == ["sw"] and list(saved["fidelity"]) == ["sw"]
    r = saved["alpaca"]["sw"]
    assert (
        r["judgments"] == 2
        and r["metrics"]["win_rate"]["n"] + r["invalid"] == 1
        and (r["model_a"], r["model_b"]) == ("clo", "baseline")
    )
    assert r["usage"]["this_run"]["requests"] == 2
    (judged,) = read_jsonl(out / "alpaca.sw.jsonl")
    assert judged["output_b"] == "Nile." and judged["instruction"] == "Taja mto mrefu."
    assert saved["meta"]["config"]["judge"]["model"] == "smollm2"
    assert "## AlpacaEval: clo vs baseline (judge smollm2)" in (out / "report.md").read_text()
    # the rerun is free: every judgment comes from the cache
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    again = json.loads((out / "results.json").read_text())
    assert again["alpaca"]["sw"]["usage"]["this_run"]["requests"] == 0
    assert again["alpaca"]["sw"]["usage"]["all_runs"]["requests"] == 2


def test_run_cli_requires_lang_and_out(tmp_path):
    from typer.testing import CliRunner

    from langshift.eval.cli import app

    res = CliRunner().invoke(app, ["run", "--model", "m", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "field 'lang': missing" in res.output
