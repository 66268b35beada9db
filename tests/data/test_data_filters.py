"""Each quality filter fires on its failure, stays quiet on a good translation, and is counted."""

from __future__ import annotations

import pytest

from langshift.data.filters import FilterConfig, apply_filters, check_record, detect_language, loop_length
from langshift.records import Record

EN_PROMPT = "Can you help me write a short letter to my friend about my holiday at the coast?"
EN_RESPONSE = (
    "Of course. Start with a warm greeting, describe the beach and the food you enjoyed, "
    "and end by asking how your friend has been."
)
SW_PROMPT = "Je, unaweza kunisaidia kuandika barua fupi kwa rafiki yangu kuhusu likizo yangu pwani?"
SW_RESPONSE = (
    "Bila shaka. Anza kwa salamu changamfu, eleza ufukwe na chakula ulichofurahia, "
    "na umalizie kwa kumuuliza rafiki yako hali yake."
)
DE_RESPONSE = (
    "Natürlich. Beginne mit einer herzlichen Begrüßung, beschreibe den Strand und das Essen, "
    "das dir geschmeckt hat, und frage am Ende, wie es deinem Freund geht."
)


def rec(rid, tgt_prompt=SW_PROMPT, tgt_response=SW_RESPONSE, en_prompt=EN_PROMPT, en_response=EN_RESPONSE):
    return Record(rid, "sw", en_prompt, en_response, tgt_prompt, tgt_response)


CASES = {
    "good": (rec("good"), {"prompt": [], "response": []}),
    "empty": (rec("empty", tgt_response="   "), {"prompt": [], "response": ["empty"]}),
    "untranslated": (
        rec("copy", tgt_prompt=EN_PROMPT + " "),
        {"prompt": ["untranslated", "wrong_language"], "response": []},
    ),
    "wrong_language": (
        rec("german", tgt_response=DE_RESPONSE),
        {"prompt": [], "response": ["wrong_language"]},
    ),
    "length_ratio": (
        rec("short", tgt_response="Ndiyo, asante."),
        {"prompt": [], "response": ["length_ratio"]},
    ),
    "repetition": (
        rec("loop", tgt_response="Bila shaka. Anza kwa salamu changamfu, " + "na ufukwe " * 8 + "basi."),
        {"prompt": [], "response": ["repetition"]},
    ),
    "code_only_copy": (
        rec(
            "code",
            en_response="```python\nprint('hello world, how are you')\n```",
            tgt_response="```python\nprint('hello world, how are you')\n```",
        ),
        {"prompt": [], "response": []},
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_each_filter_fires_with_its_reason(name):
    record, expected = CASES[name]
    assert check_record(record, "sw", FilterConfig()) == expected


def test_counts_per_reason_and_rejects_marked():
    records = [c[0] for c in CASES.values()]
    kept, rejected, report = apply_filters(records, "sw")
    assert [r.id for r in kept] == ["good", "code"]
    assert report.total == 7 and report.kept == 2 and report.rejected == 5
    assert report.reasons == {
        "empty": 1,
        "untranslated": 1,
        "wrong_language": 2,
        "length_ratio": 1,
        "repetition": 1,
    }
    assert report.by_field["prompt:untranslated"] == 1 and report.by_field["response:wrong_language"] == 1
    copy = next(r for r in rejected if r.id == "copy")
    assert copy.meta["filter_reasons"] == ["prompt:untranslated", "prompt:wrong_language"]


def test_cld2_detector_and_lingua_restricted_to_candidates():
    assert detect_language(SW_RESPONSE) == "sw"
    assert detect_language(DE_RESPONSE) == "de"
    assert detect_language(DE_RESPONSE, "cld2") == "de"
    # French is not a candidate: lingua must answer with one of ours (or nothing), never "fr"
    assert detect_language("Bonjour, je voudrais une baguette et un café, s'il vous plaît.") in (
        None,
        "en",
        "de",
        "id",
        "sw",
        "yo",
        "zh",
        "ko",
    )
    kept, _, report = apply_filters(
        [rec("german", tgt_response=DE_RESPONSE)], "sw", FilterConfig(detector="cld2")
    )
    assert not kept and report.reasons["wrong_language"] == 1
    kept, _, _ = apply_filters([rec("german", tgt_response=DE_RESPONSE)], "sw", FilterConfig(detector="none"))
    assert len(kept) == 1


def test_loop_detector():
    assert loop_length("sana sana sana sana sana") >= 20
    assert loop_length("futafutafutafutafuta") == 20
    assert loop_length("1111111111111111") == 0  # no letters: numbers are not a loop
    assert loop_length(SW_RESPONSE) == 0
    # a loop the English already has is not the translator's fault
    laugh = rec(
        "laugh",
        en_response="He laughed: ha ha ha ha ha ha ha ha.",
        tgt_response="Alicheka: ha ha ha ha ha ha ha ha.",
    )
    assert "repetition" not in check_record(laugh, "sw", FilterConfig())["response"]
