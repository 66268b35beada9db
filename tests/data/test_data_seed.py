"""The shipped held-out pairs: valid, in the right languages, and disjoint from everything trained on."""

from __future__ import annotations

import json

import pytest

from langshift.data.seed import HELDOUT_FILE, check_disjoint, demo_dir, demo_english, heldout_records
from langshift.eval import langid
from langshift.files import InputError, iter_jsonl
from langshift.records import Record, validate_record

LANGS = ("sw", "de")


def training_records(lang: str) -> list[Record]:
    return [Record(lang=lang, **row) for row in demo_english(lang)]


def prompt_records(lang: str) -> list[Record]:
    """The held-out generation prompts (`prompts.jsonl`) as records with no responses."""
    return [
        Record(id=row["id"], lang=lang, en_prompt=row["en"], en_response="", tgt_prompt=row[lang], tgt_response="")
        for _, row in iter_jsonl(demo_dir() / "prompts.jsonl")
    ]


@pytest.mark.parametrize("lang", LANGS)
def test_heldout_records_are_valid_quadruples(lang):
    records = heldout_records(lang)
    assert len(records) >= 64
    assert len({r.id for r in records}) == len(records)
    for r in records:
        assert validate_record(r.to_dict(), file=HELDOUT_FILE, line=None) == r
        assert r.lang == lang and r.meta["source"] == f"demo/{HELDOUT_FILE}" and r.meta["category"]


@pytest.mark.parametrize("lang", LANGS)
def test_heldout_texts_are_in_their_languages(lang):
    records = heldout_records(lang)
    texts = {"en": [t for r in records for t in (r.en_prompt, r.en_response)],
             lang: [t for r in records for t in (r.tgt_prompt, r.tgt_response)]}
    for code, batch in texts.items():
        found = langid.detect_many(batch, ["en", "sw", "de"])
        wrong = [(t[:40], f) for t, f in zip(batch, found, strict=True) if f != code]
        assert not wrong, f"not detected as {code}: {wrong}"


@pytest.mark.parametrize("lang", LANGS)
def test_shipped_heldout_pairs_are_disjoint_from_training_and_prompts(lang):
    heldout = heldout_records(lang)
    check_disjoint(heldout, training_records(lang), demo_dir() / HELDOUT_FILE)
    check_disjoint(heldout, prompt_records(lang), demo_dir() / HELDOUT_FILE)


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def shipped_rows() -> list[dict]:
    return [row for _, row in iter_jsonl(demo_dir() / HELDOUT_FILE)]


def test_a_heldout_text_seen_in_training_is_refused_naming_both_ids(tmp_path):
    train = training_records("sw")
    rows = shipped_rows()[:5]
    # the Swahili response of a training pair, with its case and punctuation changed
    rows[3]["translations"]["sw"]["response"] = train[7].tgt_response.upper().replace(",", " ;")
    path = write_rows(tmp_path / "heldout.jsonl", rows)
    with pytest.raises(InputError) as err:
        check_disjoint(heldout_records("sw", path), train, path)
    assert err.value.field == "id" and err.value.file == str(path)
    assert rows[3]["id"] in err.value.message and train[7].id in err.value.message
    assert "tgt_response" in err.value.message


def test_a_heldout_prompt_equal_to_a_training_response_in_english_is_refused(tmp_path):
    train = training_records("de")
    rows = shipped_rows()[:3]
    rows[0]["en_prompt"] = train[0].en_response
    path = write_rows(tmp_path / "heldout.jsonl", rows)
    with pytest.raises(InputError, match=rf"{rows[0]['id']}.*{train[0].id}.*en_prompt .* en_response"):
        check_disjoint(heldout_records("de", path), train, path)


def test_a_training_id_is_refused(tmp_path):
    train = training_records("sw")
    rows = shipped_rows()[:2]
    rows[1]["id"] = train[0].id
    path = write_rows(tmp_path / "heldout.jsonl", rows)
    with pytest.raises(InputError, match=rf"held-out id '{train[0].id}' is also a training id"):
        check_disjoint(heldout_records("sw", path), train, path)


def test_bad_heldout_rows_are_located(tmp_path):
    rows = shipped_rows()[:3]
    rows[2]["id"] = rows[0]["id"]
    path = write_rows(tmp_path / "dup.jsonl", rows)
    with pytest.raises(InputError, match=r"dup.jsonl:3: field 'id': duplicate id .*first at line 1"):
        heldout_records("sw", path)
    rows = shipped_rows()[:2]
    del rows[1]["translations"]["de"]["response"]
    path = write_rows(tmp_path / "missing.jsonl", rows)
    with pytest.raises(InputError, match=r"missing.jsonl:2: field 'translations.de.response'"):
        heldout_records("de", path)
