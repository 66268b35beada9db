import json
import subprocess
import sys

import pytest

from langshift.files import InputError
from langshift.languages import LANGUAGES, UnknownLanguageError, get_language
from langshift.records import load_records


@pytest.mark.parametrize("alias,code", [("sw", "sw"), ("swh", "sw"), ("sw-KE", "sw"), ("SWA", "sw"), ("swh_Latn", "sw"),
                                        ("zh-Hans", "zh"), ("zho", "zh"), ("de-AT", "de"), ("kor", "ko"), ("yo-NG", "yo"),
                                        ("ind", "id"), ("en-GB", "en")])
def test_aliases_resolve(alias, code):
    assert get_language(alias).code == code


def test_unknown_language():
    with pytest.raises(UnknownLanguageError) as e:
        get_language("xx")
    assert f"known: {', '.join(sorted(LANGUAGES))} (and" in str(e.value)


def test_registry_is_complete():
    for lang in LANGUAGES.values():
        assert "$LETTER" in lang.mmmlu_prompt
        assert len(lang.belebele.option_labels) == 4
        assert lang.answer_words and lang.same_language_instruction
    assert get_language("ko").belebele.option_labels[0] == "가)"
    assert get_language("sw").belebele.passage == "Hati"


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows))
    return path


GOOD = {"id": "a", "lang": "swh", "en_prompt": "Hi", "en_response": "Hello", "tgt_prompt": "Habari", "tgt_response": "Nzuri"}


def test_load_normalises_language(tmp_path):
    recs = load_records(_write(tmp_path / "r.jsonl", [GOOD, {**GOOD, "id": "b", "lang": "sw-KE"}]))
    assert [r.lang for r in recs] == ["sw", "sw"]


@pytest.mark.parametrize("rows,line,field", [
    ([GOOD, "{not json"], 2, None),
    ([GOOD, {**GOOD, "id": "b", "tgt_response": "  "}], 2, "tgt_response"),
    ([{k: v for k, v in GOOD.items() if k != "en_prompt"}], 1, "en_prompt"),
    ([GOOD, {**GOOD, "lang": "klingon", "id": "c"}], 2, "lang"),
    ([GOOD, GOOD], 2, "id"),
    ([{**GOOD, "lang": "en"}], 1, "lang"),
])
def test_bad_records_name_file_line_field(tmp_path, rows, line, field):
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError) as e:
        load_records(path)
    assert e.value.line == line and e.value.field == field
    assert str(e.value).startswith(f"{path}:{line}: ")


def test_cli_rejects_bad_data_before_loading_model(tmp_path):
    """A wrong --model must not be what the user sees first: data is validated before any load."""
    path = _write(tmp_path / "bad.jsonl", [GOOD, {**GOOD, "id": "z", "en_response": ""}])
    proc = subprocess.run([sys.executable, "-m", "langshift.cli", "train", "--model", "no/such-model",
                           "--data", str(path), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{path}:2: field 'en_response': empty" in proc.stderr


def test_record_language_must_match_flag(tmp_path):
    with pytest.raises(InputError, match="differs from --lang"):
        load_records(_write(tmp_path / "r.jsonl", [GOOD]), lang="de")
