"""`langshift chat`: the prompt it renders, its streaming, its history, and the REPL in a real terminal."""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import pytest

from langshift.chat import Bot, Sampling, Session, Stream, held_back, render

GREEDY = Sampling(temperature=0, max_new_tokens=24)


@pytest.fixture(scope="module")
def llama(tiny_llama):
    from langshift.models import load

    return load(tiny_llama, dtype="float32")


# ------------------------------------------------------------------------------------------ prompt


def test_one_turn_is_rendered_exactly_as_evaluation_asks(llama):
    from langshift.models import chat_format

    _, tok = llama
    for system in (None, "Jibu kwa Kiswahili."):
        fmt = chat_format(tok, system)
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "Habari?"}]
        assert render(tok, fmt, messages) == fmt.prompt_text(tok, "Habari?")


def test_plain_template_renders_history_as_training_writes_turns(llama):
    from transformers import AutoTokenizer

    from langshift.models import PLAIN_PROMPT, chat_format

    _, tok = llama
    plain = AutoTokenizer.from_pretrained(tok.name_or_path)
    plain.chat_template = None
    fmt = chat_format(plain)
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert render(plain, fmt, turns) == PLAIN_PROMPT.format(prompt="a") + "b" + fmt.end + PLAIN_PROMPT.format(prompt="c")
    assert render(plain, fmt, turns[-1:]) == fmt.prompt_text(plain, "c")


# --------------------------------------------------------------------------------------- streaming


def test_held_back_keeps_partial_characters_and_turn_ends_unprinted():
    assert held_back("Habari\ufffd", "<|im_end|>") == "Habari"
    assert held_back("Habari <|im_", "<|im_end|>") == "Habari "
    assert held_back("Habari <", "<|im_end|>") == "Habari "
    assert held_back("Habari", "<|im_end|>") == "Habari"
    assert held_back("x", "") == "x"


def test_streamed_pieces_add_up_to_the_reply_and_equal_evaluations_greedy_answer(llama, tmp_path):
    from langshift.eval.generate import generate_responses

    model, tok = llama
    bot = Bot("tiny", model, tok)
    pieces: list[str] = []
    reply = bot.reply("Explain why the sky is blue.", GREEDY, on_text=pieces.append)
    assert "".join(pieces) == reply.text
    rows = generate_responses(model, tok, [{"id": "q", "prompt": "Explain why the sky is blue."}], tmp_path / "r.jsonl",
                              max_new_tokens=GREEDY.max_new_tokens, temperature=0)
    assert reply.text == rows[0]["response"]


def test_stream_never_prints_text_the_final_reply_lacks(llama):
    _, tok = llama
    stream = Stream(tok, "<|im_end|>")
    ids = tok("Habari za asubuhi", add_special_tokens=False).input_ids + [tok.convert_tokens_to_ids("<|im_end|>")]
    printed = "".join(stream.feed(ids[:k]) for k in range(1, len(ids) + 1)) + stream.rest(ids)
    assert printed == stream.text(ids) == "Habari za asubuhi"


# ----------------------------------------------------------------------------------------- history


def test_history_is_kept_and_the_second_prompt_carries_the_first_turn(chatty):
    from langshift.models import load

    model, tok = load(chatty, dtype="float32")
    bot = Bot("chatty", model, tok)
    first = bot.reply("Habari?", Sampling(temperature=0, max_new_tokens=6))
    assert first.text and len(bot.history) == 2
    ids, dropped = bot.prompt_ids("Na wewe?", 6)
    text = tok.decode(ids)
    assert dropped == 0 and "Habari?" in text and first.text in text and text.index("Habari?") < text.index("Na wewe?")
    session = Session([bot], GREEDY, out=io.StringIO())
    session.handle("/reset")
    assert bot.history == []


def test_old_turns_are_dropped_when_the_context_is_full(chatty):
    from langshift.models import load

    model, tok = load(chatty, dtype="float32")
    bot = Bot("chatty", model, tok)
    for _ in range(3):
        bot.reply("Eleza kwa nini anga ni la buluu kwa sentensi mbili.", Sampling(temperature=0, max_new_tokens=20))
    full, _ = bot.prompt_ids("Na sasa?", 20)
    bot.context = len(full) + 20 - 1  # one token short of holding everything and a 20-token reply
    ids, dropped = bot.prompt_ids("Na sasa?", 20)
    assert dropped == 1 and len(ids) <= bot.context - 20
    assert "Na sasa?" in tok.decode(ids)


def test_system_message_and_lang_commands(llama):
    model, tok = llama
    out = io.StringIO()
    bot = Bot("tiny", model, tok)
    session = Session([bot], GREEDY, out=out)
    session.handle("/lang")
    session.handle("/system Jibu kwa Kiswahili.")
    assert bot.system == "Jibu kwa Kiswahili."
    assert "Jibu kwa Kiswahili." in tok.decode(bot.prompt_ids("Habari?", 8)[0])
    bot.history = [{"role": "user", "content": "Habari?"},
                   {"role": "assistant", "content": "Nzuri sana, asante. Ninaweza kukusaidia leo kwa jambo gani?"}]
    session.handle("/lang")
    session.handle("/nonsense")
    text = out.getvalue()
    assert "no reply yet" in text and "sw (Swahili)" in text and "unknown command /nonsense" in text


def test_compare_shows_both_models_side_by_side(llama, chatty):
    from langshift.models import load

    model, tok = llama
    other, other_tok = load(chatty, dtype="float32")
    alone = Bot("chatty", other, other_tok).reply("Habari?", Sampling(temperature=0, max_new_tokens=5)).text
    out = io.StringIO()
    session = Session([Bot("tiny", model, tok), Bot("chatty", other, other_tok)], Sampling(temperature=0, max_new_tokens=5), out=out)
    replies = session.ask("Habari?")
    assert replies[1].text == alone  # each model answers as it does alone
    header = next(line for line in out.getvalue().splitlines() if "tiny" in line)
    assert "chatty" in header  # one line, two columns


def test_cli_prompt_answers_once(chatty):
    from typer.testing import CliRunner

    from langshift.cli import app

    result = CliRunner().invoke(app, ["chat", str(chatty), "--prompt", "Habari?", "--max-new-tokens", "5", "--temperature", "0"])
    assert result.exit_code == 0, result.output
    assert result.output.strip()


# ---------------------------------------------------------------------------------------- terminal


def _spawn(model: Path, *args: str):
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # Started with SIGINT ignored, as a background job or a test runner's worker may start it: Ctrl-C
    # must still stop a reply (the REPL takes the signal back; a full-suite run once found it ignored).
    return pexpect.spawn(sys.executable, ["-m", "langshift.cli", "chat", str(model), "--temperature", "0.6", *args],
                         env=env, encoding="utf-8", timeout=90, dimensions=(40, 200),
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def test_repl_in_a_terminal(chatty):
    """One session in a pseudo-terminal: type a message, read the reply as it streams, stop it with
    Ctrl-C (the REPL survives and keeps what was said), ask /lang, /reset, and leave with Ctrl-D.
    (One session because starting one costs seconds; replies that end by themselves are the
    in-process tests' and --prompt's.)"""
    pexpect = pytest.importorskip("pexpect")
    child = _spawn(chatty, "--max-new-tokens", "100000")  # this model never ends a reply by itself
    try:
        child.expect_exact(">>> ")
        child.sendline("Eleza kwa nini anga ni la buluu.")
        child.expect(r"buluu\.\r?\n[A-Za-z ]{8}")  # streaming: reply text is on screen while it is being decoded
        child.sendintr()
        child.expect_exact("[stopped]")
        child.expect_exact(">>> ")
        child.sendline("/lang")
        child.expect(r"[a-z]{2} \([A-Z][a-z]+\)|undetermined")  # the detector ran on the stopped reply
        child.expect_exact(">>> ")
        child.sendline("/reset")
        child.expect_exact("(conversation cleared)")
        child.expect_exact(">>> ")
        child.sendline("/lang")
        child.expect_exact("no reply yet")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
