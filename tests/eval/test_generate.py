"""Batched generation: seeded sampling, resume from a partial or torn output file, chat format."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from langshift.eval.generate import generate_responses, generation_key
from langshift.files import InputError, read_jsonl
from langshift.models import chat_format, load

PROMPTS = [{"id": f"p{i}", "prompt": "Explain why the sky is blue." + " Please." * i} for i in range(5)]
KW = dict(max_new_tokens=8, batch_size=2)
# The settings key of rows made with KW, the default sampling and seed 0.
KEY = generation_key(max_new_tokens=8, temperature=0.6, top_p=0.9, seed=0, system=None, backend="hf")


@pytest.fixture(scope="module")
def tiny(tiny_llama):
    return load(tiny_llama)


def test_same_seed_same_outputs_other_seed_differs(tiny, tmp_path):
    model, tok = tiny
    a = generate_responses(model, tok, PROMPTS, tmp_path / "a.jsonl", seed=1, **KW)
    b = generate_responses(model, tok, PROMPTS, tmp_path / "b.jsonl", seed=1, **KW)
    c = generate_responses(model, tok, PROMPTS, tmp_path / "c.jsonl", seed=2, **KW)
    assert [r["id"] for r in a] == [p["id"] for p in PROMPTS]
    assert a == b
    assert [r["response"] for r in a] != [r["response"] for r in c]
    assert read_jsonl(tmp_path / "a.jsonl") and sorted(
        r["id"] for r in read_jsonl(tmp_path / "a.jsonl")
    ) == sorted(p["id"] for p in PROMPTS)
    end = chat_format(tok).end
    assert all(end not in r["response"] for r in a)


def test_greedy_is_deterministic_without_seed(tiny, tmp_path):
    model, tok = tiny
    a = generate_responses(model, tok, PROMPTS[:3], tmp_path / "a.jsonl", temperature=0, seed=1, **KW)
    b = generate_responses(model, tok, PROMPTS[:3], tmp_path / "b.jsonl", temperature=0, seed=99, **KW)
    assert a == b


def test_resume_skips_done_ids_and_drops_torn_tail(tiny, tmp_path):
    model, tok = tiny
    out = tmp_path / "out.jsonl"
    # A run killed after its first batch: one finished row, then half a line.
    done = {"id": "p3", "prompt": PROMPTS[3]["prompt"], "response": "FROM THE FIRST RUN", "settings": KEY}
    out.write_text(json.dumps(done) + "\n" + '{"id": "p1", "prompt": "Expl', encoding="utf-8")
    rows = generate_responses(model, tok, PROMPTS, out, seed=0, **KW)
    assert rows[3] == done
    on_disk = read_jsonl(out)
    assert sorted(r["id"] for r in on_disk) == sorted(p["id"] for p in PROMPTS)  # each id once, file parses
    # A third run has nothing left to do and returns what is on disk.
    out.write_text("".join(json.dumps(r) + "\n" for r in on_disk), encoding="utf-8")
    assert generate_responses(model, tok, PROMPTS, out, seed=0, **KW) == [
        {r["id"]: r for r in on_disk}[p["id"]] for p in PROMPTS
    ]


def test_resume_after_first_batch_matches_nothing_regenerated(tiny, tmp_path):
    model, tok = tiny
    out = tmp_path / "out.jsonl"
    first = generate_responses(model, tok, PROMPTS[:2], out, seed=0, **KW)
    rows = generate_responses(model, tok, PROMPTS, out, seed=0, **KW)
    assert rows[:2] == first
    assert len(read_jsonl(out)) == len(PROMPTS)


def test_stale_output_for_other_prompt_is_an_error(tiny, tmp_path):
    model, tok = tiny
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps({"id": "p0", "prompt": "something else", "response": "x", "settings": KEY}) + "\n")
    with pytest.raises(InputError, match="different prompt"):
        generate_responses(model, tok, PROMPTS, out, **KW)


def test_bad_arguments(tiny, tmp_path):
    model, tok = tiny
    with pytest.raises(ValueError, match="duplicate"):
        generate_responses(model, tok, PROMPTS + PROMPTS[:1], tmp_path / "x.jsonl", **KW)
    with pytest.raises(ValueError, match="backend"):
        generate_responses(model, tok, PROMPTS, tmp_path / "y.jsonl", backend="tgi", **KW)
    # Settings that would write empty or meaningless responses are refused before anything is written.
    for bad, named in (({"max_new_tokens": -5}, "max_new_tokens=-5"), ({"temperature": -1}, "temperature=-1"),
                       ({"top_p": 0}, "top_p=0")):
        with pytest.raises(ValueError, match=named):
            generate_responses(model, tok, PROMPTS, tmp_path / "z.jsonl", **{**KW, **bad})
    assert not (tmp_path / "z.jsonl").exists()


def test_a_rerun_with_other_settings_regenerates_and_keeps_one_row_per_id(tiny, tmp_path):
    """Rows remember the settings that made them: a corrected rerun into the same file regenerates them
    (the bug was a rerun that reused responses written with wrong settings), a same-settings rerun reuses."""
    model, tok = tiny
    out = tmp_path / "out.jsonl"
    short = generate_responses(model, tok, PROMPTS, out, seed=0, **{**KW, "max_new_tokens": 1})
    legacy = {"id": "p4", "prompt": PROMPTS[4]["prompt"], "response": "NO SETTINGS KEY"}  # an older file's row
    out.write_text("".join(json.dumps(r) + "\n" for r in [*short[:4], legacy]), encoding="utf-8")
    rows = generate_responses(model, tok, PROMPTS, out, seed=0, **KW)
    assert {r["settings"] for r in rows} == {KEY} and {r["settings"] for r in short} == {short[0]["settings"]} != {KEY}
    assert "NO SETTINGS KEY" not in [r["response"] for r in rows]
    assert any(len(r["response"]) > len(s["response"]) for r, s in zip(rows, short, strict=True))
    on_disk = read_jsonl(out)
    assert sorted(r["id"] for r in on_disk) == sorted(p["id"] for p in PROMPTS)  # the stale rows are gone
    assert generate_responses(model, tok, PROMPTS, out, seed=0, **KW) == rows  # same settings: all reused
    assert read_jsonl(out) == on_disk


def test_cli_generate(tiny_llama, tmp_path):
    from langshift.cli import app

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "sw": f"Habari {i}?"}) + "\n" for i in range(3)))
    out = tmp_path / "responses.jsonl"
    args = [
        "eval",
        "generate",
        "--model",
        str(tiny_llama),
        "--prompts",
        str(prompts),
        "--field",
        "sw",
        "--out",
        str(out),
        "--max-new-tokens",
        "4",
        "--batch-size",
        "2",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(out)] and {r["prompt"] for r in read_jsonl(out)} == {
        f"Habari {i}?" for i in range(3)
    }
    bad = CliRunner().invoke(app, [*args[:6], "--field", "de", "--out", str(out)])
    assert bad.exit_code == 2 and "prompts.jsonl:1: field 'de'" in bad.output


def test_rejected_responses_are_sampled_again(tiny, tmp_path):
    model, tok = tiny
    calls = []

    def never(text):
        calls.append(text)
        return False

    rows = generate_responses(model, tok, PROMPTS, tmp_path / "a.jsonl", seed=3, accept=never, retries=2, **KW)
    assert [r["attempts"] for r in rows] == [3] * len(PROMPTS) and len(calls) == 3 * len(PROMPTS)
    assert len(set(calls)) > len(PROMPTS)  # regenerations are new samples, not copies
    once = generate_responses(model, tok, PROMPTS, tmp_path / "b.jsonl", seed=3, accept=lambda t: True, retries=2, **KW)
    assert [r["attempts"] for r in once] == [1] * len(PROMPTS)
    plain = generate_responses(model, tok, PROMPTS, tmp_path / "c.jsonl", seed=3, **KW)
    assert [r["response"] for r in once] == [r["response"] for r in plain]  # first attempts: same samples
    assert "attempts" not in plain[0]
