"""Answer-letter extraction on answers written in all seven languages, well-formed and not."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langshift.eval.extract import extract_answer

WELL_FORMED = [
    ("en", "The mitochondria produce energy.\nAnswer: B", "B"),
    ("en", "Let me think step by step...\n**Answer:** C", "C"),
    ("en", "**Answer: D**", "D"),
    ("en", "Answer: (B)", "B"),
    ("en", "Answer: [A]", "A"),
    ("en", "Answer: $\\boxed{C}$", "C"),
    ("en", "answer : a", None),  # lower-case letters are words ("answer: a dog"), not options
    ("zh", "细胞核含有遗传物质。\n答案：B", "B"),
    ("zh", "答案: Ｃ", "C"),
    ("zh", "所以选择\n答：Ｄ", "D"),
    ("de", "Die richtige Antwort: A wäre falsch, denn ...\nAntwort: C", "C"),  # simple-evals #33: last wins
    ("de", "Antwort： B", "B"),
    ("ko", "세포핵에 유전 물질이 있습니다.\n답변: A", "A"),
    ("ko", "정답: B입니다", "B"),
    ("ko", "정답: 라)", "D"),
    ("ko", "답: 나는 잘 모르겠다", None),  # "나는" is "I", not option 나
    ("id", "Inti sel menyimpan DNA.\nJawaban: D", "D"),
    ("id", "Jawaban : (A)", "A"),
    ("sw", "Kiini kina DNA.\nJibu: B", "B"),
    ("sw", "Jibu: A\n...hapana, nimekosea.\nAnswer: C", "C"),
    ("yo", "Ìdáhùn: C", "C"),
    ("yo", "Idahun: A", "A"),
    ("yo", unicodedata.normalize("NFD", "Ìdáhùn: D"), "D"),  # decomposed diacritics
    ("yo", "Idáhùn:B", "B"),
]

MALFORMED = [
    ("en", "Answer: Apple pie", None),
    ("en", "The answer is B", None),  # no "Answer:" line
    ("en", "Answer - B", None),
    ("en", "B", None),
    ("en", "", None),
    ("zh", "答案是 B", None),
    ("de", "Antwort: E", None),  # not an option
    ("sw", "Jibu ni B", None),
    ("en", "Ａｎｓｗｅｒ：Ｄ", "D"),  # full-width word, colon and letter
    ("ko", "답변\u200b: A", "A"),  # zero-width space (seen in MMMLU Korean)
    ("en", "Answer:\n\nB", None),  # the letter must be on the answer line
]


@pytest.mark.parametrize(("lang", "text", "expected"), WELL_FORMED + MALFORMED)
def test_extract(lang, text, expected):
    assert extract_answer(text, lang) == expected


def test_none_and_unknown_language():
    assert extract_answer(None) is None
    with pytest.raises(ValueError, match="unknown language"):
        extract_answer("Answer: A", lang="xx-nowhere")


def test_english_answer_counts_in_any_language():
    """App. D: a correct letter counts even when the answer is in English."""
    assert extract_answer("Answer: B", "yo") == extract_answer("Answer: B", "ko") == "B"


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.text(),
    letter=st.sampled_from("ABCD"),
    word=st.sampled_from(["Answer", "Jibu", "答案", "정답", "Antwort"]),
)
def test_last_line_wins_over_any_prefix(prefix, letter, word):
    assert extract_answer(f"{prefix}\n{word}: {letter}") == letter
