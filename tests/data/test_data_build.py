"""build_dataset end to end: hf / ctranslate2 / precomputed backends, files written, splits, errors, CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from langshift.data.build import build_dataset, read_rows, split_by_group
from langshift.data.filters import FilterConfig
from langshift.data.seed import demo_english
from langshift.data.translators import make_translator
from langshift.files import InputError
from langshift.records import Record, load_records

pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")
KEEP_ALL = FilterConfig(
    detector="none", min_ratio=0, max_ratio=1e9, copy_similarity=2.0, loop_min_chars=10**9
)
CODE = "```python\ndef add(a, b):\n    return a + b  # see https://docs.python.org\n```"


def rows(n: int = 6) -> list[dict]:
    out = []
    for i in range(n):
        out.append(
            {
                "id": f"q{i}",
                "en_prompt": f"How do I add two numbers in Python? Question {i}.",
                "en_response": f"## Answer {i}\n\nUse a function. Mail help@example.org if stuck.\n\n{CODE}\n\n"
                f"1. Define it.\n2. Call `add(1, 2)`.",
                "meta": {"source": "test", "prompt_id": f"p{i // 2}"},  # two replies per prompt
            }
        )
    return out


def _check_outputs(out, n_rows):
    recs = load_records(out)  # records.jsonl
    assert len(recs) == n_rows and all(r.lang == "sw" for r in recs)
    train, val = (
        load_records(out / "dataset", split="train"),
        load_records(out / "dataset", split="validation"),
    )
    assert len(train) + len(val) == n_rows and val
    assert {r.id for r in train}.isdisjoint({r.id for r in val})
    # both replies of one prompt land on the same side of the split
    side = {r.meta["prompt_id"]: r.meta["split"] for r in recs}
    assert all(side[r.meta["prompt_id"]] == r.meta["split"] for r in recs)
    for r in recs:
        assert CODE in r.tgt_response  # never translated, byte-identical
        assert "help@example.org" in r.tgt_response and "`add(1, 2)`" in r.tgt_response
        assert r.tgt_response.split("\n")[0].startswith("## ")  # heading kept
        assert "\n1. " in r.tgt_response and "\n2. " in r.tgt_response  # numbering kept
    return recs


def test_hf_m2m100_end_to_end(tmp_path, tiny_m2m100):
    tr = make_translator("hf", model=str(tiny_m2m100), beam_size=2, max_length=12, batch_size=3, device="cpu")
    out = build_dataset(rows(), "sw", tr, tmp_path / "out", val_size=0.34, filter_config=KEEP_ALL)
    recs = _check_outputs(out, 6)
    assert recs[0].tgt_prompt != recs[0].en_prompt
    assert recs[0].meta["translator"] == "hf" and recs[0].meta["translator_model"] == str(tiny_m2m100)
    report = json.loads((out / "filter_report.json").read_text())
    assert report["total"] == 6 and report["kept"] == 6
    stats = report["stats"]
    assert stats["translated"] == stats["unique_segments"] > 0 and stats["from_cache"] == 0
    card = (out / "data_card.md").read_text()
    assert (
        "`hf`" in card
        and str(tiny_m2m100) in card
        and "Swahili" in card
        and "train: 4, validation: 2" in card
    )
    assert (out / "translation_cache.sqlite").exists()


def test_hf_marian_end_to_end(tmp_path, tiny_marian):
    tr = make_translator("hf", model=str(tiny_marian), beam_size=1, max_length=12, batch_size=4, device="cpu")
    assert tr.family == "marian"
    out = build_dataset(rows(4), "sw", tr, tmp_path / "out", val_size=0.5, filter_config=KEEP_ALL)
    _check_outputs(out, 4)


@pytest.mark.parametrize("family", ["m2m100", "marian"])
def test_ctranslate2_end_to_end(family, tmp_path, tiny_m2m100_ct2, tiny_marian):
    # M2M100: a dir converted by `convert`; Marian: the HF dir, converted on the fly
    model = tiny_m2m100_ct2 if family == "m2m100" else tiny_marian
    tr = make_translator("ctranslate2", model=str(model), beam_size=2, max_length=12, batch_size=3)
    assert tr.compute_type == "int8" and tr.family == family
    out = build_dataset(rows(), "sw", tr, tmp_path / "out", val_size=0.34, filter_config=KEEP_ALL)
    recs = _check_outputs(out, 6)
    assert recs[0].meta["translator"] == "ctranslate2"
    assert "ctranslate2|" in (out / "data_card.md").read_text()


def test_default_filters_count_garbage_and_keep_rejects_aside(tmp_path, tiny_m2m100):
    tr = make_translator("hf", model=str(tiny_m2m100), beam_size=1, max_length=16, batch_size=4, device="cpu")
    out = build_dataset(rows(), "sw", tr, tmp_path / "out", keep_filtered=True)
    report = json.loads((out / "filter_report.json").read_text())
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert report["kept"] + report["rejected"] == 6 and len(rejected) == report["rejected"] > 0
    assert all(r["meta"]["filter_reasons"] for r in rejected)
    # every rejected record is counted under each of its reasons
    for reason, count in report["reasons"].items():
        assert count == sum(
            any(f.endswith(":" + reason) for f in r["meta"]["filter_reasons"]) for r in rejected
        )
    # the same build without --keep-filtered removes a stale rejects file
    build_dataset(rows(), "sw", tr, out)
    assert not (out / "rejected.jsonl").exists()


def test_precomputed_calls_nothing_and_still_filters(tmp_path):
    demo = demo_english("sw")
    tr = make_translator("precomputed")
    out = build_dataset(demo, "sw", tr, tmp_path / "out", val_size=0.1)
    assert not (out / "translation_cache.sqlite").exists()
    recs = load_records(out)
    by_id = {r["id"]: r for r in demo}
    assert all(r.tgt_response == by_id[r.id]["tgt_response"] for r in recs)
    report = json.loads((out / "filter_report.json").read_text())
    assert report["total"] == len(demo) and report["kept"] == len(recs) and report["kept"] >= 0.9 * len(demo)


def test_precomputed_reads_translations_dict_and_limit(tmp_path):
    row = {
        "id": "m1",
        "en_prompt": "Why is the sky blue?",
        "en_response": "Air scatters blue light the most.",
        "translations": {
            "sw": {"prompt": "Kwa nini anga ni la buluu?", "response": "Hewa hutawanya mwanga."}
        },
    }
    out = build_dataset(
        [row, {**row, "id": "m2"}],
        "sw",
        make_translator("precomputed"),
        tmp_path / "o",
        val_size=0,
        limit=1,
        filter_config=KEEP_ALL,
    )
    recs = load_records(out)
    assert [r.id for r in recs] == ["m1"] and recs[0].tgt_prompt == "Kwa nini anga ni la buluu?"


def test_bad_input_names_file_line_field(tmp_path):
    f = tmp_path / "en.jsonl"
    f.write_text('{"id": "a", "en_prompt": "Hi", "en_response": "Hello"}\n\n{"id": "b", "en_prompt": "Hi"}\n')
    with pytest.raises(InputError, match=r"en.jsonl:3: field 'en_response': missing"):
        read_rows(f)
    f.write_text('{"id": "a", "en_prompt": "Hi", "en_response": "Hello", "tgt_prompt": "Habari"}\n')
    with pytest.raises(InputError, match=r"en.jsonl:1: field 'tgt_response': missing"):
        build_dataset(read_rows(f), "sw", make_translator("precomputed"), tmp_path / "o", rows_file=f)
    f.write_text('{"id": "a", "en_prompt": "Hi", "en_response": "Hello", "translations": {"de": {}}}\n')
    with pytest.raises(InputError, match=r"en.jsonl:1: field 'translations': no translation for 'sw'"):
        build_dataset(read_rows(f), "sw", make_translator("precomputed"), tmp_path / "o", rows_file=f)
    with pytest.raises(ValueError, match="cannot be English"):
        build_dataset(read_rows(f), "en", make_translator("precomputed"), tmp_path / "o")
    with pytest.raises(ValueError, match="unknown translator"):
        make_translator("google")


def test_split_by_group_is_seeded_and_grouped():
    recs = [Record(f"r{i}", "sw", "x", "y", "x", "y", meta={"prompt_id": f"p{i // 3}"}) for i in range(30)]
    train, val = split_by_group(recs, 0.2, seed=1)
    assert len(val) == 6 and len(train) == 24
    assert {r.meta["prompt_id"] for r in val}.isdisjoint({r.meta["prompt_id"] for r in train})
    assert split_by_group(recs, 0.2, seed=1) == (train, val)
    assert split_by_group(recs, 0.2, seed=2) != (train, val)
    assert split_by_group(recs, 0.0, seed=1) == (recs, [])


def test_cli_english_and_translate(tmp_path, oasst1_messages):
    from langshift.cli import app

    messages = tmp_path / "oasst.jsonl"
    messages.write_text("".join(json.dumps(m) + "\n" for m in oasst1_messages))
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "data",
            "english",
            "--source",
            f"oasst1:{messages}",
            "--n",
            "3",
            "--out",
            str(tmp_path / "en.jsonl"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert [json.loads(x)["id"] for x in (tmp_path / "en.jsonl").read_text().splitlines()] == [
        "oasst1-A1",
        "oasst1-B1",
        "oasst1-A2",
    ]

    res = runner.invoke(
        app,
        [
            "data",
            "translate",
            "--in",
            "demo",
            "--lang",
            "de",
            "--translator",
            "precomputed",
            "--out",
            str(tmp_path / "de"),
            "--limit",
            "10",
            "--keep-filtered",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(load_records(tmp_path / "de")) + len(read_rows(tmp_path / "de" / "rejected.jsonl")) == 10

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "en_prompt": "", "en_response": "x"}\n')
    res = runner.invoke(
        app,
        [
            "data",
            "translate",
            "--in",
            str(bad),
            "--lang",
            "sw",
            "--translator",
            "precomputed",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert res.exit_code == 2 and f"{bad}:1: field 'en_prompt': empty" in res.output
