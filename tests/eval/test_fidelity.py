"""Language fidelity on responses whose language we know: real sentences in the seven languages."""

from __future__ import annotations

import json
import math

import pytest

from langshift.eval import langid
from langshift.eval.fidelity import (
    counted_lines,
    prose_lines,
    read_responses,
    score_fidelity,
    score_file,
    word_count,
)
from langshift.files import InputError

# Two lines of at least five words each, per language.
TEXTS = {
    "en": "The river flows slowly through the old town.\nMany people walk along its banks every evening.",
    "sw": "Mto unapita polepole katikati ya mji wa zamani.\nWatu wengi hutembea kando yake kila jioni baada ya kazi.",
    "de": "Der Fluss fließt langsam durch die alte Stadt.\nViele Menschen gehen jeden Abend an seinem Ufer spazieren.",
    "zh": "这条河缓缓流过古老的小镇。\n每天傍晚都有很多人沿着河岸散步。",
    "ko": "강물이 오래된 마을을 천천히 흘러갑니다.\n매일 저녁 많은 사람들이 강둑을 따라 산책을 합니다.",
    "id": "Sungai itu mengalir perlahan melewati kota tua.\nBanyak orang berjalan di sepanjang tepinya setiap sore.",
    "yo": "Odò náà ń ṣàn díẹ̀díẹ̀ láàrin ìlú àtijọ́ náà.\nỌ̀pọ̀lọpọ̀ ènìyàn máa ń rìn lẹ́gbẹ̀ẹ́ rẹ̀ ní gbogbo ìrọ̀lẹ́.",
}


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_detect_each_language(lang):
    assert langid.detect(TEXTS[lang]) == lang
    assert [code for _, code in langid.detect_lines(TEXTS[lang])] == [lang, lang]


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_cld2_backend_agrees(lang):
    assert langid.detect(TEXTS[lang], backend="cld2") == lang


def test_detect_is_restricted_to_candidates_and_none_without_letters():
    # German text, but German is not a candidate: the detector must choose among the candidates.
    assert langid.detect(TEXTS["de"], ["en", "sw"]) in {"en", "sw"}
    assert langid.detect("12345 -- 678 !!", None) is None
    assert langid.detect("", ["en", "sw"]) is None


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_responses_in_the_expected_language_pass(lang):
    rows = [{"prompt": "q", "response": TEXTS[lang]}] * 3
    got = score_fidelity(rows, lang)
    m = got["metrics"]
    assert m["response_pass_rate"]["value"] == 1.0 and m["line_pass_rate"]["value"] == 1.0
    assert m["response_pass_rate"]["n"] == 3 and m["line_pass_rate"]["n"] == 3 and got["line_excluded"] == 0
    assert m["line_accuracy"]["value"] == 1.0 and m["line_accuracy"]["n"] == 6
    assert got["detected_as"] == {lang: 3}


def test_one_english_line_in_a_swahili_answer_fails_lpr_but_not_the_whole():
    mixed = (
        "Mto unapita polepole katikati ya mji wa zamani, na watu wengi hupenda kuutazama.\n"
        "Watu wengi hutembea kando yake kila jioni baada ya kazi ngumu ya siku nzima.\n"
        "Wakati wa mvua, maji yake huongezeka na kufurika mashamba yaliyo karibu nayo.\n"
        "However, I think you should also visit the museum in town.\n"
    )
    got = score_fidelity([{"prompt": "q", "response": mixed}, {"prompt": "q", "response": TEXTS["sw"]}], "sw")
    items = got["items"]
    assert items[0]["detected"] == "sw" and items[0]["response_pass"] is True  # mostly Swahili as a whole
    assert items[0]["line_langs"] == ["sw", "sw", "sw", "en"] and items[0]["line_pass"] is False
    m = got["metrics"]
    assert m["response_pass_rate"]["value"] == 1.0
    assert m["line_pass_rate"]["value"] == 0.5
    # two 0/1 outcomes {1, 0}: sample sd = sqrt(0.5), stderr = sqrt(0.5 / 2) = 0.5
    assert m["line_pass_rate"]["stderr"] == pytest.approx(0.5)
    assert m["line_accuracy"]["value"] == pytest.approx(5 / 6)


def test_english_answer_to_swahili_prompt_fails_both():
    got = score_fidelity([{"prompt": "Habari?", "response": TEXTS["en"]}], "sw")
    assert got["metrics"]["response_pass_rate"]["value"] == 0.0 and got["metrics"]["line_pass_rate"]["value"] == 0.0
    assert got["detected_as"] == {"en": 1}


def test_code_blocks_urls_and_short_lines_are_not_counted():
    response = (
        "Hapa kuna mfano mfupi wa programu ya Python kwa ajili yako.\n"
        "```python\n"
        "def greet(name):\n"
        "    print('Hello there, my dear friend, how are you today?')\n"
        "```\n"
        "https://docs.python.org/3/tutorial/index.html\n"
        "Thanks!\n"
        "Unaweza kusoma zaidi kwenye tovuti hii https://example.com/guide kwa maelezo kamili.\n"
    )
    assert counted_lines(response) == [
        "Hapa kuna mfano mfupi wa programu ya Python kwa ajili yako.",
        "Unaweza kusoma zaidi kwenye tovuti hii   kwa maelezo kamili.",
    ]
    got = score_fidelity([{"prompt": "q", "response": response}], "sw")
    assert got["metrics"]["line_pass_rate"]["value"] == 1.0 and got["items"][0]["counted_lines"] == 2


def test_unclosed_code_fence_hides_the_rest():
    assert prose_lines("Intro line here.\n```\nprint('this is english code text here')") == [
        "Intro line here."
    ]


def test_word_count_rules():
    assert word_count("one two three four") == 4
    assert word_count("- 1. one two three four five") == 5  # bullets and numbers are not words
    assert word_count("我喜欢吃苹果") == 6  # one word per Chinese character
    assert word_count("我喜欢 Python 编程") == 6


def test_responses_without_counted_lines_are_excluded_from_lpr():
    rows = [
        {"prompt": "q", "response": "Ndiyo."},  # too short: no counted line
        {"prompt": "q", "response": "```\ncode only here in this block\n```"},
        {"prompt": "q", "response": ""},
        {"prompt": "q", "response": TEXTS["sw"]},
    ]
    got = score_fidelity(rows, "sw")
    m = got["metrics"]
    assert m["line_pass_rate"]["n"] == 1 and got["line_excluded"] == 3 and m["line_pass_rate"]["value"] == 1.0
    assert m["response_pass_rate"]["n"] == 4
    # the empty and code-only responses have no prose: detected as "none" and they fail
    assert got["detected_as"]["none"] == 2
    assert [it["line_pass"] for it in got["items"]] == [None, None, None, True]


def test_cli_contract_keys(tmp_path):
    from typer.testing import CliRunner

    from langshift.eval.cli import app

    path = tmp_path / "responses.jsonl"
    rows = [
        {"prompt": "Mto uko wapi?", "response": TEXTS["sw"]},
        {"prompt": "Mto uko wapi?", "response": TEXTS["en"]},
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["fidelity", "--responses", str(path), "--lang", "sw", "--out", str(out)])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    m = results["fidelity"]["sw"]["metrics"]  # results[task][lang], as every eval command writes
    assert m["response_pass_rate"]["value"] == 0.5
    assert m["line_pass_rate"]["value"] == 0.5
    assert math.isclose(m["response_pass_rate"]["stderr"], 0.5)
    assert m["response_pass_rate"]["n"] == 2
    assert len((out / "fidelity.sw.jsonl").read_text().splitlines()) == 2


def test_bad_lines_name_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a", "response": 3}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2: field 'response'"):
        read_responses(path)
    path.write_text('{"response": "b"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1: field 'prompt': missing"):
        score_file(path, "sw", tmp_path / "o")
