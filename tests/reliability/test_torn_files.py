"""What a kill leaves on disk: a torn last line in a resumable JSONL (even one cut inside a UTF-8
character) is dropped with a warning and redone; temporaries of a dead writer are removed by the next
write; invalid UTF-8 in user input is an error naming the file and line."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from langshift.eval.generate import generate_responses, generation_key
from langshift.files import (
    InputError,
    append_jsonl,
    atomic_dir,
    atomic_write_text,
    drop_torn_tail,
    iter_jsonl,
    read_jsonl,
)
from langshift.models import load

SWAHILI = "Habari — jibu lenye herufi “maalum” na emoji 🌍"
PROMPTS = [{"id": f"p{i}", "prompt": f"Eleza kwa nini anga ni la buluu. {i}"} for i in range(4)]


def _torn(path, rows, partial: dict, cut: int):
    """`rows` whole, then the first bytes of `partial`'s line, cut `cut` bytes into its last character."""
    whole = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    line = json.dumps(partial, ensure_ascii=False).encode()
    end = line.rindex("🌍".encode()) + cut  # inside the 4-byte emoji
    path.write_bytes(whole + line[:end])
    with pytest.raises(UnicodeDecodeError):
        path.read_text(encoding="utf-8")  # what every rerun used to die on


def test_resumable_reader_drops_a_line_torn_inside_a_character(tmp_path, caplog):
    path = tmp_path / "responses.jsonl"
    done = [{"id": "a", "response": SWAHILI}, {"id": "b", "response": "\u2028 stays one line"}]
    _torn(path, done, {"id": "c", "response": SWAHILI}, cut=2)
    with caplog.at_level(logging.WARNING, logger="langshift"):
        assert [obj for _, obj in iter_jsonl(path, skip_torn_tail=True)] == done
    assert str(path) in caplog.text and "incomplete last line" in caplog.text
    # The next append cuts the fragment off first, so the file stays one object per line.
    append_jsonl(path, {"id": "c", "response": SWAHILI})
    assert read_jsonl(path) == [*done, {"id": "c", "response": SWAHILI}]
    assert drop_torn_tail(path) is False  # nothing torn any more


def test_user_input_with_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"id": 1}\n{"id": "\xff\xfe"}\n{"id": 3}\n')
    with pytest.raises(InputError) as err:
        list(iter_jsonl(path))
    assert str(err.value).startswith(f"{path}:2: invalid UTF-8")
    with pytest.raises(InputError, match=r":2: invalid UTF-8"):
        list(iter_jsonl(path, skip_torn_tail=True))  # not the last line: not a torn tail, still an error


def test_generation_resumes_past_a_torn_utf8_tail(tiny_llama, tmp_path, caplog):
    model, tok = load(tiny_llama)
    out = tmp_path / "responses.jsonl"
    key = generation_key(max_new_tokens=4, temperature=0.6, top_p=0.9, seed=0, system=None, backend="hf")
    first = {"id": "p2", "prompt": PROMPTS[2]["prompt"], "response": SWAHILI, "settings": key}
    _torn(out, [first], {"id": "p0", "prompt": PROMPTS[0]["prompt"], "response": SWAHILI}, cut=1)
    with caplog.at_level(logging.WARNING, logger="langshift"):
        rows = generate_responses(model, tok, PROMPTS, out, seed=0, max_new_tokens=4, batch_size=2)
    assert "incomplete last line" in caplog.text
    assert rows[2] == first  # kept, not regenerated
    assert sorted(r["id"] for r in read_jsonl(out)) == [p["id"] for p in PROMPTS]  # each once, file parses


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from langshift.files import atomic_dir, atomic_write_text
    with atomic_dir(sys.argv[1] + "/report_plots") as tmp:
        (tmp / "half.png").write_bytes(b"half")
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # killed before report.md is renamed in
        atomic_write_text(sys.argv[1] + "/report.md", "# half a report")
""")

LIVE_WRITER = textwrap.dedent("""
    import sys, time
    from langshift.files import atomic_dir
    with atomic_dir(sys.argv[1] + "/report_plots") as tmp:
        (tmp / "started").write_text("x")
        time.sleep(60)
""")


def _python(code: str, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env)


def test_stale_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    killed = _python(KILLED_WRITER, tmp_path)
    assert killed.wait(timeout=60) == -signal.SIGKILL
    litter = sorted(p.name for p in tmp_path.iterdir())
    assert [n.split(".")[1] for n in litter] == ["report", "report_plots"] and all(n.startswith(".") for n in litter)

    live = _python(LIVE_WRITER, tmp_path)  # another process is building report_plots right now
    try:
        deadline = time.time() + 60
        while not list(tmp_path.glob(f".report_plots.{live.pid}.*/started")) and time.time() < deadline:
            time.sleep(0.05)
        with atomic_dir(tmp_path / "report_plots") as tmp:
            (tmp / "plot.png").write_bytes(b"png")
        atomic_write_text(tmp_path / "report.md", "# report\n")
        (live_tmp,) = tmp_path.glob(f".report_plots.{live.pid}.*")
        # The dead writer's temporaries are gone; the live writer's is untouched.
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live_tmp.name, "report.md", "report_plots"])
        assert (live_tmp / "started").is_file()
    finally:
        live.kill()
        live.wait()
