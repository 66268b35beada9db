"""MMMLU: loading, stratified sampling, Table 6 prompts, regeneration accounting, end to end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langshift.eval.mmmlu import (
    CATEGORY,
    category,
    evaluate_mmmlu,
    load_mmmlu,
    render_prompt,
    stratified_sample,
)
from langshift.files import InputError, append_jsonl, read_jsonl
from langshift.languages import get_language
from langshift.models import load

SUBJECTS = [
    "high_school_biology",
    "high_school_biology",
    "world_religions",
    "marketing",
    "econometrics",
    "college_physics",
    "college_physics",
    "prehistory",
]


def mmmlu_rows() -> list[dict]:
    """Rows in MMMLU's schema (Question, A-D, Answer, Subject) plus id and lang, for en and sw."""
    rows = []
    for i, subject in enumerate(SUBJECTS):
        for lang, q in (("en", f"Which option is number {i}?"), ("sw", f"Chaguo lipi ni namba {i}?")):
            rows.append(
                {
                    "id": f"q{i}",
                    "lang": lang,
                    "Question": q,
                    "A": "one",
                    "B": "two",
                    "C": "three",
                    "D": "four",
                    "Answer": "ABCD"[i % 4],
                    "Subject": subject,
                }
            )
    return rows


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mmmlu") / "mmmlu.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in mmmlu_rows()), encoding="utf-8")
    return path


def test_load_local_by_lang(data_file):
    sw = load_mmmlu(data_file, "sw")
    assert len(sw) == len(SUBJECTS) and sw[0]["question"].startswith("Chaguo")
    assert sw[1] == {
        "id": "q1",
        "question": "Chaguo lipi ni namba 1?",
        "options": ["one", "two", "three", "four"],
        "answer": "B",
        "subject": "high_school_biology",
    }
    assert len(load_mmmlu(data_file, "en", limit=3)) == 3
    with pytest.raises(InputError, match="no rows for Korean"):
        load_mmmlu(data_file, "ko")


def test_load_errors(tmp_path):
    rows = mmmlu_rows()[:2]
    rows[1]["Answer"] = "E"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'Answer'"):
        load_mmmlu(bad, "sw")
    rows[1]["lang"] = "klingon"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'lang'"):
        load_mmmlu(bad, "sw")


def test_stratified_sample_keeps_subject_shares():
    items = [{"id": str(i), "subject": s} for i, s in enumerate(["a"] * 60 + ["b"] * 30 + ["c"] * 10)]
    picked = stratified_sample(items, 10, seed=3)
    assert Counter(x["subject"] for x in picked) == {"a": 6, "b": 3, "c": 1}
    assert picked == stratified_sample(items, 10, seed=3) and picked != stratified_sample(items, 10, seed=4)
    odd = stratified_sample(items, 7, seed=0)  # 4.2 / 2.1 / 0.7 -> 4 / 2 / 1 (largest remainder)
    assert Counter(x["subject"] for x in odd) == {"a": 4, "b": 2, "c": 1}


def test_categories_follow_mmlu():
    assert len(CATEGORY) == 57 and set(CATEGORY.values()) == {
        "STEM",
        "humanities",
        "social sciences",
        "other",
    }
    assert category("college_physics") == "STEM" and category("prehistory") == "humanities"
    assert category("econometrics") == "social sciences" and category("marketing") == "other"
    assert category("not a subject") == "other"


def test_prompt_is_table6_then_question_and_options(data_file):
    item = load_mmmlu(data_file, "sw")[0]
    text = render_prompt(item, "sw")
    assert text.startswith(get_language("sw").mmmlu_prompt + "\n\nChaguo lipi ni namba 0?\n\nA) one\nB) two")
    assert text.endswith("D) four")


def scripted_generator(script: dict[str, list[str]], calls: list):
    """A deterministic generate_fn: item id -> response of attempt k (seed - base seed); writes real JSONL."""

    def generate_fn(prompts, out_path, seed):
        calls.append((seed, [p["id"] for p in prompts]))
        rows = []
        for p in prompts:
            responses = script[p["id"]]
            row = {
                "id": p["id"],
                "prompt": p["prompt"],
                "response": responses[min(seed - 7, len(responses) - 1)],
            }
            append_jsonl(out_path, row)
            rows.append(row)
        return rows

    return generate_fn


def test_regenerations_and_accounting(data_file, tmp_path):
    items = load_mmmlu(data_file, "sw")[:4]  # answers A, B, C, D
    script = {
        "q0": ["Jibu: A"],  # right at once
        "q1": ["sijui", "Kwa hiyo... Jibu: B"],  # extracted on the first regeneration
        "q2": ["hmm", "hmm", "hmm", "hmm"],  # never: wrong after 3 regenerations
        "q3": ["Answer: A"],  # wrong letter, no regeneration
    }
    calls = []
    result = evaluate_mmmlu(
        None,
        None,
        items,
        "sw",
        out_dir=tmp_path,
        seed=7,
        retries=3,
        generate_fn=scripted_generator(script, calls),
    )
    assert calls == [(7, ["q0", "q1", "q2", "q3"]), (8, ["q1", "q2"]), (9, ["q2"]), (10, ["q2"])]
    assert result["regenerations"] == 4
    acc = result["metrics"]["accuracy"]
    assert acc["value"] == 0.5 and acc["n"] == 4 and result["extraction_failure_rate"] == 0.25
    assert acc["stderr"] == pytest.approx((0.25 / 3) ** 0.5)
    assert result["per_subject"]["high_school_biology"] == {"value": 1.0, "stderr": 0.0, "n": 2}
    assert result["per_category"]["humanities"]["value"] == 0.0  # world_religions: q2, no answer
    assert result["per_category"]["STEM"] == {"value": 1.0, "stderr": 0.0, "n": 2}
    rows = {r["id"]: r for r in read_jsonl(tmp_path / "mmmlu.sw.jsonl")}
    assert rows["q2"]["pred"] is None and rows["q2"]["attempts"] == 4 and rows["q2"]["correct"] == 0
    assert rows["q1"]["pred"] == "B" and rows["q1"]["attempts"] == 2 and rows["q3"]["pred"] == "A"
    assert [len(read_jsonl(tmp_path / f"mmmlu.sw.gen{k}.jsonl")) for k in range(4)] == [4, 2, 1, 1]


def test_retries_zero_means_one_generation(data_file, tmp_path):
    items = load_mmmlu(data_file, "en")[:2]
    calls = []
    result = evaluate_mmmlu(
        None,
        None,
        items,
        "en",
        out_dir=tmp_path,
        seed=7,
        retries=0,
        generate_fn=scripted_generator({"q0": ["no"], "q1": ["no"]}, calls),
    )
    assert len(calls) == 1 and result["regenerations"] == 0 and result["extraction_failure_rate"] == 1.0


def test_tiny_model_end_to_end(tiny_llama, data_file, tmp_path):
    """A random model rarely writes 'Jibu: X': regenerations happen, are counted, and failures count wrong."""
    model, tok = load(tiny_llama)
    items = load_mmmlu(data_file, "sw")[:3]
    result = evaluate_mmmlu(
        model, tok, items, "sw", out_dir=tmp_path, max_new_tokens=6, retries=1, batch_size=3
    )
    rows = read_jsonl(tmp_path / "mmmlu.sw.jsonl")
    failed = [r for r in rows if r["pred"] is None]
    assert result["metrics"]["accuracy"]["n"] == 3 and result["extraction_failure_rate"] == len(failed) / 3
    assert failed, "a random model should not follow the answer format"
    generated = read_jsonl(tmp_path / "mmmlu.sw.gen.jsonl")
    assert result["regenerations"] == sum(r["attempts"] - 1 for r in generated) >= len(failed)
    assert all(r["attempts"] == 2 and r["correct"] == 0 for r in failed)
    assert result["metrics"]["accuracy"]["value"] == sum(r["correct"] for r in rows) / 3
    # Resume: everything is on disk, so a rerun reads it back and gives the same result.
    assert (
        evaluate_mmmlu(model, tok, items, "sw", out_dir=tmp_path, max_new_tokens=6, retries=1, batch_size=3)
        == result
    )


def test_cli_mmmlu(tiny_llama, data_file, tmp_path):
    from langshift.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "mmmlu",
            "--model",
            str(tiny_llama),
            "--lang",
            "en",
            "--data",
            str(data_file),
            "--out",
            str(out),
            "--sample",
            "4",
            "--max-new-tokens",
            "4",
            "--retries",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())["mmmlu"]["en"]
    assert saved["metrics"]["accuracy"]["n"] == 4 and set(saved["per_category"]) <= {
        "STEM",
        "humanities",
        "social sciences",
        "other",
    }
    assert {"metrics", "extraction_failure_rate", "regenerations", "per_subject"} <= set(saved)
