"""Degenerate responses: loops and echoes a small model really produces, and no false alarms on real answers."""

from __future__ import annotations

import pytest

from langshift.data.seed import demo_english, heldout_records
from langshift.eval.degeneration import (
    LOOP_LONG_CHARS,
    LOOP_MIN_SHARE,
    degeneration_reason,
    echo_share,
    score_degeneration,
    summarize,
)

SW_PROMPT = "Mtu anawezaje kuanza kukusanya stempu au sarafu kama burudani?"
SW_MORE = (
    "Weka stempu zako mahali pakavu, mbali na mwanga wa jua, na andika tarehe na mahali ulipozipata. "
    "Baada ya muda utajifunza historia ya kila kipande na utaweza kubadilishana na wakusanyaji wengine."
)
SW_ANSWER = (
    "Anza kwa kuchagua unachopenda zaidi, kwa mfano stempu za nchi moja au sarafu za zamani. "
    "Nunua albamu ndogo na kibanio, kisha tembelea masoko ya vitu vya kale au jiunge na klabu ya wakusanyaji."
)


@pytest.mark.parametrize(
    "response",
    [
        "aku, aku, aku, aku, aku, aku, aku, aku, aku, aku, aku, aku",
        "Jibu: aku, aku, aku, aku, aku, aku, aku, aku, aku, aku",
        "Stempu stempu stempu stempu stempu stempu stempu",
        "kukusanya na kukusanya na kukusanya na kukusanya na kukusanya na",
    ],
)
def test_swahili_loops_are_caught(response):
    assert degeneration_reason(SW_PROMPT, response) == "loop"


def test_a_loop_at_the_end_of_a_long_answer_cut_off_by_the_token_limit_is_caught():
    answer = SW_ANSWER + " " + SW_MORE
    tail = " ".join(["ni"] * 40)  # 119 characters of loop, under a quarter of the whole response
    response = answer + " " + tail
    assert len(tail) >= LOOP_LONG_CHARS and len(tail) < LOOP_MIN_SHARE * len(response)
    assert degeneration_reason(SW_PROMPT, response) == "loop"
    assert degeneration_reason(SW_PROMPT, answer + " " + " ".join(["ni"] * 8)) is None  # a short tail is not


def test_emphasis_inside_a_real_answer_is_not_a_loop():
    response = ("It is very, very, very, very important to rest. Drink water, sleep well and eat regular meals. "
                "Keep warm, take honey with lemon for the throat, and stay home until the fever is gone.")
    assert degeneration_reason("How do I recover from a cold?", response) is None


def test_a_sentence_said_again_and_again_is_repetitive():
    """docs/metrics.md: copies of a sentence back to back that fill a third of the answer are a loop; the
    character-level rule misses a unit longer than 40 characters, compression does not."""
    sentence = "Drink water, sleep well and eat regular meals. "
    response = "It is important to rest. " + sentence * 3
    assert degeneration_reason("How do I recover from a cold?", response) == "repetitive"
    assert degeneration_reason("How do I recover from a cold?", "It is important to rest. " + sentence) is None


def test_a_repetitive_code_block_is_not_a_prose_loop():
    response = "Print it four times:\n\n```python\nprint('hi')\nprint('hi')\nprint('hi')\nprint('hi')\n```"
    assert degeneration_reason("Write code that prints hi four times.", response) is None


@pytest.mark.parametrize(
    "prompt, response",
    [
        (SW_PROMPT, SW_PROMPT),
        (SW_PROMPT, f"{SW_PROMPT} {SW_PROMPT.lower()}"),
        (SW_PROMPT, "mtu anawezaje kuanza kukusanya stempu au sarafu, kama burudani"),
        ("Beschreibe, wie man eine kleine Geburtstagsfeier für einen Freund plant.",
         "Beschreibe wie man eine kleine Geburtstagsfeier für einen Freund plant. Beschreibe, wie man"),
        ("How do whales communicate with each other in the ocean?",
         "Question: How do whales communicate with each other in the ocean?"),
    ],
)
def test_an_echoed_prompt_is_caught(prompt, response):
    assert degeneration_reason(prompt, response) == "prompt_echo"


def test_restating_the_question_before_answering_is_not_an_echo():
    assert degeneration_reason("What is 15% of 80?", "15% of 80 is 12.") is None
    assert degeneration_reason(SW_PROMPT, SW_PROMPT + " " + SW_ANSWER) is None


def test_echo_share_by_hand():
    # prompt trigrams: (why, is, the) (is, the, sky) (the, sky, blue); the response's first four words
    # are covered by two of them, "because of light" by none: 4 / 7.
    assert echo_share("Why is the sky blue?", "Why is the sky, because of light") == pytest.approx(4 / 7)
    assert echo_share("Hi", "hi there") == 0.5  # a prompt shorter than a trigram is matched whole
    assert echo_share("", "anything") == 0.0


@pytest.mark.parametrize("response", ["", "   \n  ", "...", "—"])
def test_empty_responses(response):
    assert degeneration_reason(SW_PROMPT, response) == "empty"


@pytest.mark.parametrize("lang", ["sw", "de"])
def test_no_demo_answer_is_flagged(lang):
    """False-positive check: every real answer in the demo data (held-out and training pairs), in English
    and in the target language, against its own prompt."""
    pairs = [(r.en_prompt, r.en_response) for r in heldout_records(lang)]
    pairs += [(r.tgt_prompt, r.tgt_response) for r in heldout_records(lang)]
    pairs += [(r["tgt_prompt"], r["tgt_response"]) for r in demo_english(lang)]
    flagged = [(p[:40], degeneration_reason(p, r)) for p, r in pairs if degeneration_reason(p, r)]
    assert len(pairs) >= 328 and not flagged


def test_score_and_summarize():
    rows = [
        {"id": "a", "prompt": SW_PROMPT, "response": SW_ANSWER},
        {"id": "b", "prompt": SW_PROMPT, "response": "aku, " * 20},
        {"id": "c", "prompt": SW_PROMPT, "response": SW_PROMPT},
        {"id": "d", "prompt": SW_PROMPT, "response": None},
    ]
    items = score_degeneration(rows)
    assert [(it["id"], it["degenerate"], it["reason"]) for it in items] == [
        ("a", False, None), ("b", True, "loop"), ("c", True, "prompt_echo"), ("d", True, "empty")
    ]
    assert items[1]["loop_chars"] >= 90 and items[2]["echo_share"] == 1.0
    got = summarize(items)
    assert got["metrics"]["degenerate_rate"]["value"] == 0.75 and got["metrics"]["degenerate_rate"]["n"] == 4
    assert got["reasons"] == {"empty": 1, "prompt_echo": 1, "loop": 1, "repetitive": 0}
    with pytest.raises(ValueError):
        summarize([])
