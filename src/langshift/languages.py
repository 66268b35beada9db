"""The one registry of per-language facts.

Every module that needs a language code, a prompt or a template asks this file, so adding a language
is one entry here. Sources:
  * codes: ISO 639-1/-3, M2M100's and NLLB-200's tokenizer codes, BELEBELE configs (= FLORES-200
    codes), OpenAI MMMLU subsets, lingua's and CLD2's language names;
  * `mmmlu_prompt`: the paper's Table 6 (en, ko, zh, sw).  The zh row of our copy of the paper lost
    characters in extraction ("回答以下。保的回答…"); it is restored here to the evident sentence.
    de, id and yo are ours, written in the same form, as are the ten languages below them;
  * `belebele`: the paper's Table 7 (field labels, option labels, answer indicator); English uses
    lm-eval's labels spelled out; languages outside the paper's six are ours, with labels A-D;
  * `answer_words`: localized "Answer" words accepted by MMMLU answer extraction (simple-evals'
    multilingual list is the reference; it has none for ru, tr, vi, whose words are ours);
  * `same_language_instruction`: "Please answer in the same language as the input." (paper App. F,
    Table 8), translated by us.

Languages: the paper's six (zh, de / ko, id / sw, yo) and English, plus the rest of the Language
Confusion Benchmark's fifteen (for-ai/language-confusion: ar es fr hi it ja pt ru tr vi). Their order
is the paper's column order, high → medium → low resource, the paper's languages first in each group.

`resource` follows the paper (§4.1: "based on the amount of pre-training corpus data in the Llama-2"),
i.e. each language's share of Llama 2's pre-training data (Touvron et al. 2023, Table 10):
  high    >= 0.10 %   de 0.17, fr 0.16, zh 0.13, es 0.13, ru 0.13, it 0.11, ja 0.10
  medium  <  0.10 %   pt 0.09, vi 0.08, ko 0.06, id 0.03
  low     not listed  sw, yo, ar, hi, tr (Table 10 omits languages under 0.005 %)
The paper's own languages fix only that the cut between high and medium lies in (0.06, 0.13]; 0.10 %
is our round choice inside it, so ja (0.10) and pt (0.09) sit either side of a line the paper did not
draw. The grouping says what Llama 2 saw, not what a newer base model saw.

`mmmlu_subset`: openai/MMMLU translates MMLU into 14 locales (AR_XY BN_BD DE_DE ES_LA FR_FR HI_IN
ID_ID IT_IT JA_JP KO_KR PT_BR SW_KE YO_NG ZH_CN; Arabic is AR_XY). English has None (MMLU itself is
the English set); ru, tr and vi have NO_MMMLU, which is not None, so no reader can take a language
MMMLU lacks for English: `Language.mmmlu_config()` raises NoMMMLUError naming the language.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnknownLanguageError(ValueError):
    pass


class NoMMMLUError(ValueError):
    """openai/MMMLU has no translation into this language (a local JSONL in its schema still works)."""


# `mmmlu_subset` of a language MMMLU does not translate. A string, not None: None already means
# "English, use MMLU itself", and a reader that forgot this case must fail on the hub (no config of
# that name), never quietly load English questions for Russian.
NO_MMMLU = "<no MMMLU subset>"


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
    mmmlu_subset: str | None  # openai/MMMLU subset; None for English (MMLU itself); NO_MMMLU: none
    lingua: str  # lingua.Language member name
    cld2: str  # pycld2 language code
    mmmlu_prompt: str
    answer_words: tuple[str, ...]
    belebele: BelebeleTemplate
    same_language_instruction: str
    aliases: tuple[str, ...] = ()
    # The Language Confusion Benchmark's treatment (its compute_metrics.py): how a line is cut into the
    # tokens its >= 5-token rule counts, and whether its word pass rate (WPR) is computed, which it does
    # for non-Latin scripts only (an English word list would flag a Latin-script language's own words).
    lcb_tokenizer: str = "whitespace"  # "whitespace" | "jieba" (zh) | "mecab" (ja)
    lcb_wpr: bool = False
    # English words inside a Latin-script answer (eval/word_confusion.py): where the target's own word
    # list comes from ("wordfreq": the package's frequencies for L; "demo": langshift's own L text), and
    # the regex of L's native word shape (an unseen native-shaped word needs context to count as English).
    word_lexicon: str | None = None
    native_shape: str | None = None

    def mmmlu_config(self) -> str | None:
        """The openai/MMMLU subset to load; None for English (load MMLU itself).

        Raises NoMMMLUError for a language MMMLU does not translate (ru, tr, vi)."""
        if self.mmmlu_subset == NO_MMMLU:
            raise NoMMMLUError(
                f"openai/MMMLU has no {self.name} ({self.code}) subset; give a local JSONL in MMMLU's schema "
                f"(Question, A-D, Answer, Subject) instead"
            )
        return self.mmmlu_subset


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
            lcb_tokenizer="jieba", lcb_wpr=True,
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
            word_lexicon="wordfreq",
        ),
        Language(
            code="es", name="Spanish", native_name="Español", iso3="spa", resource="high",
            m2m100="es", nllb="spa_Latn", opus="es", belebele_config="spa_Latn", mmmlu_subset="ES_LA",
            lingua="SPANISH", cld2="es",
            mmmlu_prompt=(
                "Responde la siguiente pregunta de opción múltiple. Asegúrate de que la última línea de tu "
                "respuesta tenga el formato: 'Respuesta: $LETTER' (sin comillas), donde LETTER es una de las "
                "letras ABCD. Por ejemplo, 'Respuesta: A'."
            ),
            answer_words=("Respuesta",),
            belebele=BelebeleTemplate("Pasaje", "Pregunta", "Respuesta"),
            same_language_instruction="Por favor, responde en el mismo idioma que la entrada.",
            aliases=("es-ES", "es-MX", "es-419", "spa_Latn", "spanish"),
        ),
        Language(
            code="fr", name="French", native_name="Français", iso3="fra", resource="high",
            m2m100="fr", nllb="fra_Latn", opus="fr", belebele_config="fra_Latn", mmmlu_subset="FR_FR",
            lingua="FRENCH", cld2="fr",
            mmmlu_prompt=(
                "Réponds à la question à choix multiples suivante. Assure-toi que la dernière ligne de ta "
                "réponse soit au format : 'Réponse : $LETTER' (sans guillemets), où LETTER est l'une des "
                "lettres ABCD. Par exemple, 'Réponse : A'."
            ),
            answer_words=("Réponse",),
            belebele=BelebeleTemplate("Passage", "Question", "Réponse"),
            same_language_instruction="Merci de répondre dans la même langue que l'entrée.",
            aliases=("fre", "fr-FR", "fr-CA", "fra_Latn", "french"),
        ),
        Language(
            code="it", name="Italian", native_name="Italiano", iso3="ita", resource="high",
            m2m100="it", nllb="ita_Latn", opus="it", belebele_config="ita_Latn", mmmlu_subset="IT_IT",
            lingua="ITALIAN", cld2="it",
            mmmlu_prompt=(
                "Rispondi alla seguente domanda a scelta multipla. Assicurati che l'ultima riga della tua "
                "risposta sia nel formato: 'Risposta: $LETTER' (senza virgolette), dove LETTER è una delle "
                "lettere ABCD. Per esempio, 'Risposta: A'."
            ),
            answer_words=("Risposta",),
            belebele=BelebeleTemplate("Brano", "Domanda", "Risposta"),
            same_language_instruction="Per favore, rispondi nella stessa lingua dell'input.",
            aliases=("it-IT", "ita_Latn", "italian"),
        ),
        Language(
            code="ja", name="Japanese", native_name="日本語", iso3="jpn", resource="high",
            m2m100="ja", nllb="jpn_Jpan", opus="ja", belebele_config="jpn_Jpan", mmmlu_subset="JA_JP",
            lingua="JAPANESE", cld2="ja",
            mmmlu_prompt=(
                "次の多肢選択式の質問に答えてください。回答の最後の行は必ず '答え: $LETTER'（引用符なし）の"
                "形式にしてください。LETTER は ABCD のいずれかです。例えば、'答え: A'。"
            ),
            answer_words=("答え", "回答", "解答", "答"),
            belebele=BelebeleTemplate("文章", "質問", "答え"),
            same_language_instruction="入力と同じ言語で回答してください。",
            aliases=("ja-JP", "jpn_Jpan", "japanese"),
            lcb_tokenizer="mecab", lcb_wpr=True,
        ),
        Language(
            code="ru", name="Russian", native_name="Русский", iso3="rus", resource="high",
            m2m100="ru", nllb="rus_Cyrl", opus="ru", belebele_config="rus_Cyrl", mmmlu_subset=NO_MMMLU,
            lingua="RUSSIAN", cld2="ru",
            mmmlu_prompt=(
                "Ответь на следующий вопрос с несколькими вариантами ответа. Убедись, что последняя строка "
                "твоего ответа имеет формат: 'Ответ: $LETTER' (без кавычек), где LETTER — одна из латинских "
                "букв ABCD. Например, 'Ответ: A'."
            ),
            answer_words=("Ответ",),
            belebele=BelebeleTemplate("Отрывок", "Вопрос", "Ответ"),
            same_language_instruction="Пожалуйста, отвечай на том же языке, что и входной текст.",
            aliases=("ru-RU", "rus_Cyrl", "russian"),
            lcb_wpr=True,
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
            lcb_wpr=True,
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
            word_lexicon="wordfreq",
        ),
        Language(
            code="pt", name="Portuguese", native_name="Português", iso3="por", resource="medium",
            m2m100="pt", nllb="por_Latn", opus="pt", belebele_config="por_Latn", mmmlu_subset="PT_BR",
            lingua="PORTUGUESE", cld2="pt",
            mmmlu_prompt=(
                "Responda à seguinte pergunta de múltipla escolha. Certifique-se de que a última linha da sua "
                "resposta esteja no formato: 'Resposta: $LETTER' (sem aspas), onde LETTER é uma das letras "
                "ABCD. Por exemplo, 'Resposta: A'."
            ),
            answer_words=("Resposta",),
            belebele=BelebeleTemplate("Passagem", "Pergunta", "Resposta"),
            same_language_instruction="Por favor, responda no mesmo idioma da entrada.",
            aliases=("pt-BR", "pt-PT", "por_Latn", "portuguese"),
        ),
        Language(
            code="vi", name="Vietnamese", native_name="Tiếng Việt", iso3="vie", resource="medium",
            m2m100="vi", nllb="vie_Latn", opus="vi", belebele_config="vie_Latn", mmmlu_subset=NO_MMMLU,
            lingua="VIETNAMESE", cld2="vi",
            mmmlu_prompt=(
                "Hãy trả lời câu hỏi trắc nghiệm sau. Đảm bảo dòng cuối cùng trong câu trả lời của bạn có định "
                "dạng: 'Đáp án: $LETTER' (không có dấu ngoặc kép), trong đó LETTER là một trong các chữ cái "
                "ABCD. Ví dụ, 'Đáp án: A'."
            ),
            answer_words=("Đáp án", "Trả lời"),
            belebele=BelebeleTemplate("Đoạn văn", "Câu hỏi", "Đáp án"),
            same_language_instruction="Vui lòng trả lời bằng cùng ngôn ngữ với đầu vào.",
            aliases=("vi-VN", "vie_Latn", "vietnamese"),
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
            word_lexicon="demo",  # wordfreq has no Swahili
            # syllables: (syllabic m/n)(consonant or digraph, ng')(w/y)vowel
            native_shape=r"(?:(?:[mn](?![aeiou]))?(?:ch|sh|th|dh|gh|kh|ng'|ng|ny|[bdfghjklmnprstvwyz])?[wy]?[aeiou])+",
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
        Language(
            code="ar", name="Arabic", native_name="العربية", iso3="ara", resource="low",
            m2m100="ar", nllb="arb_Arab", opus="ar", belebele_config="arb_Arab", mmmlu_subset="AR_XY",
            lingua="ARABIC", cld2="ar",
            mmmlu_prompt=(
                "أجب عن سؤال الاختيار من متعدد التالي. تأكد من أن السطر الأخير من إجابتك بالصيغة: "
                "'الإجابة: $LETTER' (بدون علامات اقتباس) حيث LETTER هو أحد الأحرف ABCD. "
                "على سبيل المثال، 'الإجابة: A'."
            ),
            answer_words=("الإجابة", "الجواب", "إجابة"),
            belebele=BelebeleTemplate("المقطع", "السؤال", "الإجابة"),
            same_language_instruction="يرجى الإجابة بنفس لغة المدخلات.",
            # ara is the macrolanguage; arb (Modern Standard Arabic, NLLB's arb_Arab) is its member
            aliases=("arb", "ar-SA", "ar-EG", "arb_Arab", "arabic"),
            lcb_wpr=True,
        ),
        Language(
            code="hi", name="Hindi", native_name="हिन्दी", iso3="hin", resource="low",
            m2m100="hi", nllb="hin_Deva", opus="hi", belebele_config="hin_Deva", mmmlu_subset="HI_IN",
            lingua="HINDI", cld2="hi",
            mmmlu_prompt=(
                "निम्नलिखित बहुविकल्पीय प्रश्न का उत्तर दें। सुनिश्चित करें कि आपके उत्तर की अंतिम पंक्ति इस "
                "प्रारूप में हो: 'उत्तर: $LETTER' (उद्धरण चिह्नों के बिना), जहाँ LETTER, ABCD में से एक है। "
                "उदाहरण के लिए, 'उत्तर: A'।"
            ),
            answer_words=("उत्तर",),
            belebele=BelebeleTemplate("अनुच्छेद", "प्रश्न", "उत्तर"),
            same_language_instruction="कृपया उसी भाषा में उत्तर दें जिसमें इनपुट दिया गया है।",
            aliases=("hi-IN", "hin_Deva", "hindi"),
            lcb_wpr=True,
        ),
        Language(
            code="tr", name="Turkish", native_name="Türkçe", iso3="tur", resource="low",
            m2m100="tr", nllb="tur_Latn", opus="tr", belebele_config="tur_Latn", mmmlu_subset=NO_MMMLU,
            lingua="TURKISH", cld2="tr",
            mmmlu_prompt=(
                "Aşağıdaki çoktan seçmeli soruyu yanıtla. Yanıtının son satırının şu biçimde olduğundan emin "
                "ol: 'Cevap: $LETTER' (tırnak işaretleri olmadan), burada LETTER ABCD harflerinden biridir. "
                "Örneğin, 'Cevap: A'."
            ),
            answer_words=("Cevap", "Yanıt"),
            belebele=BelebeleTemplate("Metin", "Soru", "Cevap"),
            same_language_instruction="Lütfen girdiyle aynı dilde yanıt ver.",
            aliases=("tr-TR", "tur_Latn", "turkish"),
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
