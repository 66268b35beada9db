"""Answer-letter extraction for generated multiple-choice answers (MMMLU).

Rule: find every `<answer word> : <letter>` in the response and take the **last** one. The first
match misreads answers whose reasoning mentions the format before the final line (simple-evals issue
#33: ~20% of German answers). The pieces of one match:

    <word>      any localized "Answer" (the registry's `answer_words` of every language, plus the
                simple-evals multilingual list), case-insensitive; a model may answer a Swahili
                question in English, and that still counts (paper, App. D)
    [*_ ]*  :   colon, ASCII or full-width (：), markdown emphasis around it (`**Answer:** C`)
    [*_ ]*  (   any of `(`, `[`, `$`, `\\boxed{` before the letter (`$\\boxed{B}$`)
    A-D         upper-case, ASCII or full-width (Ｂ); not followed by a Latin letter ("Answer: Apple" is
                none, "정답: B입니다" is B); Korean option labels 가 나 다 라 read as A B C D

Text is normalised first: NFKC (full-width → ASCII), zero-width characters dropped, combining marks
removed (so `Ìdáhùn`, `Idahun` and `Ìdahùn` are the same word to the regex).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from langshift.languages import LANGUAGES, get_language

# simple-evals' MULTILINGUAL_ANSWER_REGEXES, reduced to the words themselves (reference list).
REFERENCE_WORDS = (
    "Answer",
    "Antwort",
    "답변",
    "정답",
    "답",
    "答案",
    "答",
    "答复",
    "答曰",
    "回答",
    "解答",
    "答え",
    "Jawaban",
    "Jibu",
    "Idahun",
    "Ìdáhùn",
    "Idáhùn",
    "Àmọ̀nà",
    "Àdáhùn",
    "Ànúgọ",
    "Àṣàyàn",
    "Respuesta",
    "Risposta",
    "Réponse",
    "Resposta",
    "উত্তর",
    "उत्तर",
    "الإجابة",
    "الجواب",
    "إجابة",
)

_HANGUL_LABELS = {"가": "A", "나": "B", "다": "C", "라": "D"}
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def normalize(text: str) -> str:
    """NFKC, no zero-width characters, no combining marks (Hangul and CJK are left intact)."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH)
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))


@cache
def _pattern() -> re.Pattern:
    words = {normalize(w) for lang in LANGUAGES.values() for w in lang.answer_words} | {
        normalize(w) for w in REFERENCE_WORDS
    }
    # Longest first, so "答案" wins over "答" at the same position.
    alternation = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(
        rf"(?i:{alternation})[ \t]*[*_]*[ \t]*:[ \t]*[*_]*[ \t]*(?:\\boxed\{{|\$|\(|\[|[ \t])*([A-D](?![A-Za-z])|[가나다라](?!\w))"
    )


def extract_answer(text: str | None, lang: str | None = None) -> str | None:
    """The last answer letter A-D stated in `text`, or None.

    `lang` is validated but does not narrow the search: every language's answer words are accepted,
    because a model asked in Swahili may well answer "Answer: B".
    """
    if lang is not None:
        get_language(lang)
    if not text:
        return None
    matches = _pattern().findall(normalize(text))
    return _HANGUL_LABELS.get(matches[-1], matches[-1]) if matches else None
