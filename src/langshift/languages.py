"""The one registry of per-language facts.

Every module that needs a language code, a prompt or a template asks this file, so adding a language
is one entry here. Sources:
  * codes: ISO 639-1/-3, M2M100's and NLLB-200's tokenizer codes, BELEBELE configs (= FLORES-200
    codes), OpenAI MMMLU subsets, lingua's and CLD2's language names;
  * `mmmlu_prompt`: the paper's Table 6 (en, ko, zh, sw).  The zh row of our copy of the paper lost
    characters in extraction ("回答以下。保的回答…"); it is restored here to the evident sentence.
    de, id and yo are ours, written in the same form;
  * `belebele`: the paper's Table 7 (field labels, option labels, answer indicator); English uses
    lm-eval's labels spelled out;
  * `answer_words`: localized "Answer" words accepted by MMMLU answer extraction (simple-evals'
    multilingual list is the reference);
  * `same_language_instruction`: "Please answer in the same language as the input." (paper App. F,
    Table 8), translated by us.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnknownLanguageError(ValueError):
    pass


@dataclass(frozen=True)
class BelebeleTemplate:
    passage: str
    question: str
    answer: str
    option_labels: tuple[str, str, str, str] = ("A", "B", "C", "D")


@dataclass(frozen=True)
class Language:
    code: str  # canonical: ISO 639-1
    name: str  # English name
    native_name: str
    iso3: str  # ISO 639-3 (macrolanguage members go in aliases)
    resource: str  # "high" | "medium" | "low" as grouped by the paper (Llama-2 pre-training share)
    m2m100: str  # M2M100 tokenizer code
    nllb: str  # NLLB-200 tokenizer code (= FLORES-200)
    opus: str  # Helsinki-NLP/opus-mt model suffix
    belebele_config: str  # facebook/belebele config name
    mmmlu_subset: str | None  # openai/MMMLU subset; None for English (use MMLU itself)
    lingua: str  # lingua.Language member name
    cld2: str  # pycld2 language code
    mmmlu_prompt: str
    answer_words: tuple[str, ...]
    belebele: BelebeleTemplate
    same_language_instruction: str
    aliases: tuple[str, ...] = ()


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in [
        Language(
            code="en", name="English", native_name="English", iso3="eng", resource="high",
            m2m100="en", nllb="eng_Latn", opus="en", belebele_config="eng_Latn", mmmlu_subset=None,
            lingua="ENGLISH", cld2="en",
            mmmlu_prompt=(
                "Answer the following multiple choice question. Ensure the last line of your response is "
                "in the format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. "
                "For example, 'Answer: A'."
            ),
            answer_words=("Answer",),
            belebele=BelebeleTemplate("Passage", "Question", "Answer"),
            same_language_instruction="Please answer in the same language as the input.",
            aliases=("en-US", "en-GB", "english"),
        ),
        Language(
            code="zh", name="Chinese", native_name="中文", iso3="zho", resource="high",
            m2m100="zh", nllb="zho_Hans", opus="zh", belebele_config="zho_Hans", mmmlu_subset="ZH_CN",
            lingua="CHINESE", cld2="zh",
            mmmlu_prompt=(
                "回答以下选择题。确保你的回答的最后一行格式为：'答案: $LETTER'（不含引号），其中 LETTER 是 "
                "ABCD 之一。例如，'答案: A'。"
            ),
            answer_words=("答案", "答", "答复", "回答", "解答"),
            belebele=BelebeleTemplate("文档", "问题", "答案"),
            same_language_instruction="请用与输入相同的语言回答。",
            aliases=("zh-Hans", "zh-CN", "zh-cn", "cmn", "chi", "zho_Hans", "chinese"),
        ),
        Language(
            code="de", name="German", native_name="Deutsch", iso3="deu", resource="high",
            m2m100="de", nllb="deu_Latn", opus="de", belebele_config="deu_Latn", mmmlu_subset="DE_DE",
            lingua="GERMAN", cld2="de",
            mmmlu_prompt=(
                "Beantworte die folgende Multiple-Choice-Frage. Stelle sicher, dass die letzte Zeile deiner "
                "Antwort das Format 'Antwort: $LETTER' (ohne Anführungszeichen) hat, wobei LETTER einer der "
                "Buchstaben ABCD ist. Zum Beispiel: 'Antwort: A'."
            ),
            answer_words=("Antwort",),
            belebele=BelebeleTemplate("Dokument", "Frage", "Antwort"),
            same_language_instruction="Bitte antworte in derselben Sprache wie die Eingabe.",
            aliases=("de-DE", "de-AT", "de-CH", "ger", "deu_Latn", "german"),
        ),
        Language(
            code="ko", name="Korean", native_name="한국어", iso3="kor", resource="medium",
            m2m100="ko", nllb="kor_Hang", opus="ko", belebele_config="kor_Hang", mmmlu_subset="KO_KR",
            lingua="KOREAN", cld2="ko",
            mmmlu_prompt=(
                "다음 선택형 질문에 답하십시오. 당신의 응답 마지막 줄을 '답변: $LETTER' (따옴표 제외) 형식으로 "
                "작성하십시오. 여기서 LETTER는 ABCD 중 하나입니다. 예를 들어, '답변: A'로 대답하세요."
            ),
            answer_words=("답변", "정답", "답"),
            belebele=BelebeleTemplate("문서", "질문", "정답", ("가)", "나)", "다)", "라)")),
            same_language_instruction="입력과 같은 언어로 답변해 주세요.",
            aliases=("ko-KR", "kor_Hang", "korean"),
        ),
        Language(
            code="id", name="Indonesian", native_name="Bahasa Indonesia", iso3="ind", resource="medium",
            m2m100="id", nllb="ind_Latn", opus="id", belebele_config="ind_Latn", mmmlu_subset="ID_ID",
            lingua="INDONESIAN", cld2="id",
            mmmlu_prompt=(
                "Jawablah pertanyaan pilihan ganda berikut. Pastikan baris terakhir dari jawaban Anda "
                "menggunakan format: 'Jawaban: $LETTER' (tanpa tanda kutip) di mana LETTER adalah salah satu "
                "dari ABCD. Contohnya, 'Jawaban: A'."
            ),
            answer_words=("Jawaban", "Jawab"),
            belebele=BelebeleTemplate("Dokumen", "Pertanyaan", "Jawaban"),
            same_language_instruction="Harap jawab dalam bahasa yang sama dengan masukan.",
            aliases=("id-ID", "in", "ind_Latn", "indonesian"),
        ),
        Language(
            code="sw", name="Swahili", native_name="Kiswahili", iso3="swh", resource="low",
            m2m100="sw", nllb="swh_Latn", opus="sw", belebele_config="swh_Latn", mmmlu_subset="SW_KE",
            lingua="SWAHILI", cld2="sw",
            mmmlu_prompt=(
                "Jibu swali lifuatalo la chaguo nyingi. Hakikisha mstari wa mwisho wa jibu lako uko katika "
                "muundo: 'Answer: $LETTER' au 'Jibu: $LETTER' (bila nukuu) ambapo LETTER ni moja ya ABCD. "
                "Kwa mfano, 'Answer: A' au 'Jibu: A'."
            ),
            answer_words=("Jibu", "Answer"),
            belebele=BelebeleTemplate("Hati", "Swali", "Jibu"),
            same_language_instruction="Tafadhali jibu kwa lugha ileile iliyotumika katika swali.",
            aliases=("swa", "sw-KE", "sw-TZ", "swh_Latn", "swahili"),
        ),
        Language(
            code="yo", name="Yoruba", native_name="Yorùbá", iso3="yor", resource="low",
            m2m100="yo", nllb="yor_Latn", opus="yo", belebele_config="yor_Latn", mmmlu_subset="YO_NG",
            lingua="YORUBA", cld2="yo",
            mmmlu_prompt=(
                "Dáhùn ìbéèrè aláṣàyàn yìí. Rí i dájú pé ìlà tó kẹ́yìn nínú ìdáhùn rẹ wà ní ọ̀nà yìí: "
                "'Answer: $LETTER' tàbí 'Ìdáhùn: $LETTER' (láìsí àmì àyọkà) níbi tí LETTER jẹ́ ọ̀kan lára "
                "ABCD. Fún àpẹẹrẹ, 'Answer: A' tàbí 'Ìdáhùn: A'."
            ),
            answer_words=("Ìdáhùn", "Idahun", "Idáhùn", "Ìdahùn", "Answer"),
            belebele=BelebeleTemplate("Iwe", "Ibèèrè", "Idahun"),
            same_language_instruction="Jọ̀wọ́ dáhùn ní èdè kan náà tí a fi béèrè ìbéèrè náà.",
            aliases=("yo-NG", "yor_Latn", "yoruba"),
        ),
    ]
}

TARGET_LANGUAGES = tuple(code for code in LANGUAGES if code != "en")


def _alias_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for lang in LANGUAGES.values():
        for key in (lang.code, lang.iso3, lang.nllb, lang.name, *lang.aliases):
            table[key.lower().replace("_", "-")] = lang.code
    return table


_ALIASES = _alias_table()


def get_language(code: str) -> Language:
    """Look a language up by ISO 639-1/-3 code, BCP-47 tag (`sw-KE`, `zh-Hans`), NLLB code or name."""
    key = str(code).strip().lower().replace("_", "-")
    if key in _ALIASES:
        return LANGUAGES[_ALIASES[key]]
    # BCP-47 with a region/script we do not list: fall back to its primary subtag.
    primary = key.split("-")[0]
    if primary in _ALIASES:
        return LANGUAGES[_ALIASES[primary]]
    known = ", ".join(sorted(LANGUAGES))
    raise UnknownLanguageError(f"unknown language {code!r}; known: {known} (and their ISO 639-3/BCP-47 aliases)")


def canonical_code(code: str) -> str:
    return get_language(code).code


def canonical_code_list(value: str) -> str:
    """"sw, swh,de" -> "sw,de": a comma-separated list of language codes made canonical, each once, in the
    order given (how --lang names the several target languages of one multilingual model)."""
    codes = [canonical_code(part.strip()) for part in value.split(",") if part.strip()]
    if not codes:
        raise ValueError("expected a language code or a comma-separated list of them")
    return ",".join(dict.fromkeys(codes))
