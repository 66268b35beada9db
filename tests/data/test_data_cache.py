"""The SQLite translation cache: keys, several processes writing at once, and a run killed mid-way."""

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

from langshift.data.cache import TranslationCache

WRITER = textwrap.dedent("""
    import sys
    from langshift.data.cache import TranslationCache
    path, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cache = TranslationCache(path)
    for i in range(start, stop, 5):  # many small transactions, interleaving with the other writer
        cache.put_many("id", "en", "sw", [(f"s{j}", f"t{j}") for j in range(i, min(i + 5, stop))])
        cache.get_many("id", "en", "sw", [f"s{i}"])
    print("done")
""")


def test_keys_separate_identity_and_language_pair(tmp_path):
    with TranslationCache(tmp_path / "c.sqlite") as c:
        c.put_many("hf|m2m@1|beam=4", "en", "sw", [("Hello.", "Habari."), ("Bye.", "Kwaheri.")])
        assert c.get_many("hf|m2m@1|beam=4", "en", "sw", ["Hello.", "Bye.", "New."]) == {
            "Hello.": "Habari.",
            "Bye.": "Kwaheri.",
        }
        assert c.get_many("hf|m2m@1|beam=1", "en", "sw", ["Hello."]) == {}
        assert c.get_many("hf|m2m@1|beam=4", "en", "de", ["Hello."]) == {}
        c.put_many("hf|m2m@1|beam=4", "en", "sw", [("Hello.", "Different.")])  # first answer stays
        assert c.get_many("hf|m2m@1|beam=4", "en", "sw", ["Hello."]) == {"Hello.": "Habari."}
        assert c.count() == 2 and c.count("other") == 0
    db = sqlite3.connect(tmp_path / "c.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_two_processes_write_concurrently(tmp_path):
    path = tmp_path / "shared.sqlite"
    TranslationCache(path).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(a), str(b)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a, b in ((0, 600), (300, 900))
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == "done"
    with TranslationCache(path) as c:
        assert c.count() == 900
        got = c.get_many("id", "en", "sw", [f"s{j}" for j in range(900)])
        assert got == {f"s{j}": f"t{j}" for j in range(900)}


BUILD = textwrap.dedent("""
    import sys
    from langshift.data.build import build_dataset, read_rows
    from langshift.data.filters import FilterConfig
    from langshift.data.translators import make_translator
    model, rows, out, cache = sys.argv[1:5]
    tr = make_translator("hf", model=model, beam_size=2, max_length=24, batch_size=4, device="cpu")
    build_dataset(read_rows(rows), "sw", tr, out, cache_path=cache, val_size=0.2,
                  filter_config=FilterConfig(detector="none"))
""")


def english_rows(n: int) -> list[dict]:
    topics = ["the sea", "a red bicycle", "binary search", "my grandmother", "rain in Nairobi", "a lost key"]
    rows = []
    for i in range(n):
        t = topics[i % len(topics)]
        rows.append(
            {
                "id": f"r{i}",
                "en_prompt": f"Question {i}: tell me about {t}. Keep it short, please.",
                "en_response": f"Answer {i}. Here is one fact about {t}. Here is another one, number {i}.\n"
                f"- A list item about {t}.\n- See https://example.org/{i} for more.",
                "meta": {"source": "test"},
            }
        )
    return rows


@pytest.mark.slow
def test_killed_run_resumes_without_retranslating_and_matches_uninterrupted(tmp_path, tiny_m2m100):
    from langshift.data.build import build_dataset, read_rows
    from langshift.data.filters import FilterConfig
    from langshift.data.translators import make_translator

    rows_file = tmp_path / "en.jsonl"
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in english_rows(40)))
    cache_path, out = tmp_path / "cache.sqlite", tmp_path / "out"
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", BUILD, str(tiny_m2m100), str(rows_file), str(out), str(cache_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    cached = 0
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if cache_path.exists():
            try:
                cached = (
                    sqlite3.connect(cache_path, timeout=5)
                    .execute("SELECT COUNT(*) FROM translations")
                    .fetchone()[0]
                )
            except sqlite3.OperationalError:
                cached = 0  # table not created yet
            if cached >= 32:
                break
        time.sleep(0.02)
    assert proc.poll() is None, f"the build finished before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "records.jsonl").exists()  # killed before the end: no half-written output

    with TranslationCache(cache_path) as c:
        after_kill = {r[0]: r[1] for r in c.db.execute("SELECT source, target FROM translations")}
    assert 32 <= len(after_kill)

    tr = make_translator("hf", model=str(tiny_m2m100), beam_size=2, max_length=24, batch_size=4, device="cpu")
    sent: list[str] = []
    real = tr.translate
    tr.translate = lambda texts, src, tgt: (sent.extend(texts), real(texts, src, tgt))[1]
    build_dataset(
        read_rows(rows_file),
        "sw",
        tr,
        out,
        cache_path=cache_path,
        val_size=0.2,
        filter_config=FilterConfig(detector="none"),
    )
    assert sent and not set(sent) & set(after_kill)  # nothing translated twice
    stats = json.loads((out / "filter_report.json").read_text())["stats"]
    assert stats["from_cache"] == len(after_kill) and stats["translated"] == len(sent)
    assert stats["from_cache"] + stats["translated"] == stats["unique_segments"]

    # an uninterrupted run in a fresh cache writes the very same records
    fresh = tmp_path / "fresh"
    tr2 = make_translator(
        "hf", model=str(tiny_m2m100), beam_size=2, max_length=24, batch_size=4, device="cpu"
    )
    build_dataset(
        read_rows(rows_file),
        "sw",
        tr2,
        fresh,
        cache_path=tmp_path / "fresh.sqlite",
        val_size=0.2,
        filter_config=FilterConfig(detector="none"),
    )
    assert (fresh / "records.jsonl").read_text() == (out / "records.jsonl").read_text()

    # and a third run over the finished cache calls the model zero times
    sent.clear()
    build_dataset(
        read_rows(rows_file),
        "sw",
        tr,
        tmp_path / "again",
        cache_path=cache_path,
        val_size=0.2,
        filter_config=FilterConfig(detector="none"),
    )
    assert sent == []
    assert (tmp_path / "again" / "records.jsonl").read_text() == (out / "records.jsonl").read_text()
