"""Every registry entry checked against the real tools that consume it: lingua, pycld2, the M2M100 and
NLLB tokenizers' language lists (from transformers), MMMLU's locales, our answer extraction, and the
readers that take JSONL keys for language codes."""

import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from langshift.eval import fidelity, langid
from langshift.eval.extract import extract_answer
from langshift.eval.mmmlu import HUB, load_mmmlu
from langshift.eval.suite import PACKAGED_PROMPTS, _is_lang, load_prompts
from langshift.languages import (
    LANGUAGES,
    NO_MMMLU,
    TARGET_LANGUAGES,
    NoMMMLUError,
    get_language,
)

# for-ai/language-confusion's languages; the registry adds only the paper's sw and yo to them.
LCB = ("ar", "de", "en", "es", "fr", "hi", "id", "it", "ja", "ko", "pt", "ru", "tr", "vi", "zh")
# openai/MMMLU's configs (its README); it translates into no other language.
MMMLU_LOCALES = ("AR_XY", "BN_BD", "DE_DE", "ES_LA", "FR_FR", "HI_IN", "ID_ID", "IT_IT", "JA_JP", "KO_KR",
                 "PT_BR", "SW_KE", "YO_NG", "ZH_CN")
ALL = list(LANGUAGES.values())
ids = [lang.code for lang in ALL]


def test_registry_is_the_lcb_languages_and_the_papers():
    assert set(LANGUAGES) == {*LCB, "sw", "yo"}
    assert all(code == lang.code for code, lang in LANGUAGES.items())


@pytest.mark.parametrize("attr", ["code", "name", "iso3", "m2m100", "nllb", "opus", "belebele_config", "lingua",
                                  "cld2"])
def test_codes_are_unique(attr):
    values = Counter(getattr(lang, attr) for lang in ALL)
    assert [v for v, n in values.items() if n > 1] == []


def test_every_name_a_language_answers_to_is_its_own():
    """The alias table is a dict: a key two languages claim would silently belong to the later one."""
    for lang in ALL:
        for key in (lang.code, lang.iso3, lang.nllb, lang.name, *lang.aliases):
            assert get_language(key) is lang, key
            assert get_language(key.upper()) is lang, key


@pytest.mark.parametrize("alias,code", [
    ("arb", "ar"), ("ara", "ar"), ("arb_Arab", "ar"), ("ar-EG", "ar"), ("spa", "es"), ("es-419", "es"),
    ("fre", "fr"), ("fr-CA", "fr"), ("hin_Deva", "hi"), ("ita", "it"), ("jpn_Jpan", "ja"), ("ja-JP", "ja"),
    ("pt-BR", "pt"), ("por", "pt"), ("rus_Cyrl", "ru"), ("tur", "tr"), ("vie_Latn", "vi"), ("Vietnamese", "vi"),
])
def test_new_aliases_resolve(alias, code):
    assert get_language(alias).code == code


@pytest.mark.parametrize("lang", ALL, ids=ids)
def test_lingua_and_cld2_names_exist_and_read_the_languages_own_text(lang):
    """The names are real (lingua's enum, pycld2's table) and map back: each language's own instruction
    and prompt are detected as that language among all 17, by both backends."""
    import lingua
    import pycld2

    # lingua's language carries its ISO code, so a near neighbour (AZERBAIJANI for tr) cannot pass
    assert getattr(lingua.Language, lang.lingua).iso_code_639_1.name.lower() == lang.code
    cld2_names = {code: name for name, code in reversed(pycld2.LANGUAGES)}  # the first name of each code
    assert cld2_names[lang.cld2].upper() == lang.name.upper()
    for backend in langid.BACKENDS:
        for text in (lang.mmmlu_prompt, lang.same_language_instruction):
            assert langid.detect(text, LANGUAGES, backend=backend) == lang.code, (backend, text)


@pytest.mark.parametrize("lang", ALL, ids=ids)
def test_translation_and_benchmark_codes(lang):
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES as M2M
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES as NLLB

    assert lang.m2m100 in M2M["m2m100"]
    assert lang.nllb in NLLB
    assert re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", lang.belebele_config)
    assert lang.belebele_config == lang.nllb  # BELEBELE's configs are FLORES-200 codes
    assert lang.nllb[:3] in (lang.iso3, *lang.aliases)  # swh for sw, arb for ar: the member is an alias
    assert re.fullmatch(r"[a-z]{3}", lang.iso3) and re.fullmatch(r"[a-z]{2}", lang.code)
    assert lang.opus == lang.code


def test_mmmlu_subsets_are_mmmlus_locales():
    assert LANGUAGES["en"].mmmlu_subset is None and LANGUAGES["en"].mmmlu_config() is None
    missing = {lang.code for lang in ALL if lang.mmmlu_subset == NO_MMMLU}
    assert missing == {"ru", "tr", "vi"}
    for lang in ALL:
        if lang.code != "en" and lang.code not in missing:
            assert lang.mmmlu_config() in MMMLU_LOCALES
            assert lang.mmmlu_subset.split("_")[0] == lang.code.upper()
    assert NO_MMMLU not in MMMLU_LOCALES and NO_MMMLU  # never None, never a real config, never falsy


@pytest.mark.parametrize("code", ["ru", "tr", "vi"])
def test_no_mmmlu_is_an_error_naming_the_language_not_english(code, tmp_path):
    name = get_language(code).name
    with pytest.raises(NoMMMLUError, match=rf"no {name} \({code}\) subset"):
        load_mmmlu(HUB, code)
    # a local file in MMMLU's schema still serves the language
    row = {"id": "q1", "lang": code, "Question": "2+2?", "A": "3", "B": "4", "C": "5", "D": "6", "Answer": "B",
           "Subject": "elementary_mathematics"}
    path = tmp_path / "mmmlu.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert [i["answer"] for i in load_mmmlu(path, code)] == ["B"]


@pytest.mark.parametrize("lang", ALL, ids=ids)
def test_mmmlu_prompt_asks_for_a_format_extraction_reads(lang):
    """The prompt names LETTER, ABCD and a format '<answer word>: $LETTER'; a model that ends its reply
    with that format, letter filled in, has its letter extracted — for every answer word too."""
    assert "$LETTER" in lang.mmmlu_prompt and "ABCD" in lang.mmmlu_prompt
    formats = re.findall(r"'([^']*\$LETTER)'", lang.mmmlu_prompt)
    assert formats, lang.mmmlu_prompt
    for fmt in formats:
        word = re.sub(r"\s*:\s*\$LETTER$", "", fmt)
        assert word in lang.answer_words
        assert extract_answer(f"{lang.same_language_instruction}\n{fmt.replace('$LETTER', 'C')}", lang.code) == "C"
    for word in lang.answer_words:
        assert extract_answer(f"... {word}: D", lang.code) == "D", word


@pytest.mark.parametrize("lang", ALL, ids=ids)
def test_templates_are_filled(lang):
    b = lang.belebele
    assert all(s.strip() for s in (b.passage, b.question, b.answer, *b.option_labels))
    assert len(set(b.option_labels)) == 4
    assert lang.same_language_instruction.strip() and lang.native_name.strip()
    assert lang.resource in ("high", "medium", "low")


def test_registry_order_is_high_medium_low():
    """report.rows.lang_order sorts table columns by TARGET_LANGUAGES: the paper's high → medium → low."""
    rank = {"high": 0, "medium": 1, "low": 2}
    order = [rank[LANGUAGES[c].resource] for c in TARGET_LANGUAGES]
    assert order == sorted(order)
    paper = ("zh", "de", "ko", "id", "sw", "yo")
    assert [c for c in TARGET_LANGUAGES if c in paper] == list(paper)


# ---- readers that take JSONL keys for language codes


def _demo_files() -> list[Path]:
    return sorted(Path(str(resources.files("langshift.data") / "demo")).glob("*.jsonl"))


def test_no_key_of_the_packaged_files_reads_as_a_new_language():
    """suite._is_lang decides which columns of a prompt file are languages. Over every key of every
    packaged JSONL (nested ones too), only the demo's en / sw / de columns may qualify."""
    keys: set[str] = set()

    def walk(obj):
        if isinstance(obj, dict):
            keys.update(obj)
            for v in obj.values():
                walk(v)

    for path in _demo_files():
        for line in path.read_text().splitlines():
            walk(json.loads(line))
    assert {"id", "it", "pt"} & keys == {"id"}  # the "id" row key is there; no Italian or Portuguese key
    assert {k for k in keys if _is_lang(k)} == {"en", "sw", "de", "en_prompt", "en_response"}
    # en_prompt/en_response read as English through the BCP-47 fallback, as before; the pair files that
    # hold them are read by langshift.records by name, never through _is_lang.


@pytest.mark.parametrize("name", sorted(PACKAGED_PROMPTS))
def test_packaged_prompt_sets_still_have_exactly_en_sw_de(name):
    prompts = load_prompts(name, list(LANGUAGES), default_lang="sw")
    filled = {code for code, rows in prompts.items() if rows}
    assert filled == {"en", "sw", "de"}
    assert len({len(prompts[c]) for c in filled}) == 1


# ---- fidelity's candidate set


def test_fidelity_default_candidates_stay_the_seven():
    assert langid.candidate_codes() == tuple(sorted(langid.FIDELITY_CANDIDATES))
    assert len(langid.FIDELITY_CANDIDATES) == 7 and set(langid.FIDELITY_CANDIDATES) < set(LANGUAGES)
    # the target and English are always candidates, a new language included
    assert {"fr", "en"} <= set(langid.candidate_codes(None, "fr", "en"))
    assert langid.candidate_codes(["sw"], "sw", "en") == ("en", "sw")


def test_fidelity_verdict_that_seventeen_candidates_would_flip():
    """A German training prompt of the demo: lingua calls it French once French is a candidate. With the
    default candidates the verdict is the one published; with all 17 it is not."""
    row = [{"id": "demo-b-056", "response": "Was war die Industrielle Revolution?"}]
    assert fidelity.fidelity_items(row, "de")[0]["detected"] == "de"
    assert fidelity.fidelity_items(row, "de", candidates=LANGUAGES)[0]["detected"] == "fr"
    # French as the target puts French among the candidates, as it must
    assert fidelity.fidelity_items([{"response": "Bonjour, je voudrais un café, s'il vous plaît."}],
                                   "fr")[0]["response_pass"]
