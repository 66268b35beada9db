"""An API translation killed after K answered requests resumes without paying for them again: every
completed request is committed to the cache at once (not every 512), and the resumed output is
byte-identical to an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from fake_openai import FakeOpenAI, completion

from langshift.data.build import build_dataset, read_rows
from langshift.data.filters import FilterConfig
from langshift.data.translators import make_translator

K = 7
KEEP_ALL = FilterConfig(detector="none", min_ratio=0, max_ratio=1e9, copy_similarity=2.0, loop_min_chars=10**9)

BUILD = textwrap.dedent("""
    import sys
    from langshift.data.build import build_dataset, read_rows
    from langshift.data.filters import FilterConfig
    from langshift.data.translators import make_translator
    url, rows, out = sys.argv[1:4]
    tr = make_translator("openai", model="fake", base_url=url, api_key_env="LANGSHIFT_TEST_NO_KEY", concurrency=1,
                         max_retries=0, timeout=300)
    keep = FilterConfig(detector="none", min_ratio=0, max_ratio=1e9, copy_similarity=2.0, loop_min_chars=10**9)
    build_dataset(read_rows(rows), "sw", tr, out, val_size=0, filter_config=keep)
""")


def swahili(request) -> tuple[int, str, bytes]:
    text = request["body"]["messages"][-1]["content"]
    return completion("SW " + " ".join(reversed(text.split())))


@pytest.fixture
def rows_file(tmp_path):
    rows = [{"id": f"r{i}", "en_prompt": f"Question {i}: what is item {i}?", "en_response": f"Item {i} is water."}
            for i in range(12)]
    path = tmp_path / "en.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cached(path) -> int:
    try:
        return sqlite3.connect(path, timeout=5).execute("SELECT COUNT(*) FROM translations").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _translator(url):
    return make_translator("openai", model="fake", base_url=url, api_key_env="LANGSHIFT_TEST_NO_KEY", concurrency=1,
                           max_retries=0)


def test_kill_after_k_requests_redoes_at_most_one(tmp_path, rows_file):
    out = tmp_path / "out"
    cache = out / "translation_cache.sqlite"
    with FakeOpenAI(swahili, hold_after=K) as server:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TQDM_DISABLE": "1"}
        child = subprocess.Popen([sys.executable, "-c", BUILD, server.url, str(rows_file), str(out)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while server.received <= K and child.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert child.poll() is None, child.stderr.read()[-3000:]
        time.sleep(0.5)  # request K+1 is held; the K answers before it had time to be committed
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        assert server.answered == K
        assert _cached(cache) == K  # every answered request was committed; before: none until 512 were done
        assert not (out / "records.jsonl").exists()

        server.release()  # the same endpoint (its URL is part of the cache identity) now answers everything
        first_run = server.received
        build_dataset(read_rows(rows_file), "sw", _translator(server.url), out, val_size=0, filter_config=KEEP_ALL)
    stats = json.loads((out / "filter_report.json").read_text())["stats"]
    unique = stats["unique_segments"]
    assert stats["from_cache"] == K and stats["translated"] == unique - K
    assert server.received <= unique + 1  # over both runs: at most one request (the one in flight) redone
    resent = [r["body"]["messages"][-1]["content"] for r in server.requests[first_run:]]
    assert not {r["body"]["messages"][-1]["content"] for r in server.requests[:K]} & set(resent)

    with FakeOpenAI(swahili) as whole:
        fresh = build_dataset(read_rows(rows_file), "sw", _translator(whole.url), tmp_path / "fresh", val_size=0,
                              filter_config=KEEP_ALL)
    assert whole.received == unique
    assert (fresh / "records.jsonl").read_bytes() == (out / "records.jsonl").read_bytes()


def test_output_length_is_capped_relative_to_the_input(tmp_path):
    with FakeOpenAI(swahili) as server:
        tr = make_translator("openai", model="fake", base_url=server.url, api_key_env="LANGSHIFT_TEST_NO_KEY",
                             max_length=512)
        tr.translate(["Hi.", "A longer sentence " * 40], "en", "sw")
    caps = sorted(r["body"]["max_tokens"] for r in server.requests)
    assert caps == [3 * 3 + 16, 512]  # 3 bytes -> 25 tokens at most; a long input keeps max_length
    assert "cap=3x+16" in tr.identity
