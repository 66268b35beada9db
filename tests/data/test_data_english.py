"""The English source: oasst1's first-turn, highest-rank-first rule, and the generic field mappings."""

from __future__ import annotations

import copy
import gzip
import json
import random

import pytest

from langshift.data.english import load_english, select_oasst1
from langshift.files import InputError


def _triples(messages):
    return [("fixture.jsonl", i, m) for i, m in enumerate(messages, 1)]


def test_oasst1_rule_rank_order_and_exclusions(oasst1_messages):
    rows = select_oasst1(_triples(oasst1_messages))
    ids = [r["id"] for r in rows]
    # rank 0 first (by tree id), then rank 1, then unranked; deleted/failed/non-English/multi-turn never
    assert ids == ["oasst1-A1", "oasst1-B1", "oasst1-A2", "oasst1-F2", "oasst1-A4"]
    first = rows[0]
    assert first["en_prompt"] == "What is a prime number?"
    assert first["en_response"] == "A number with exactly two divisors."
    assert first["meta"] == {
        "source": "oasst1",
        "prompt_id": "tA",
        "reply_id": "A1",
        "message_tree_id": "tA",
        "rank": 0,
    }
    # English oasst1 has fewer prompts than n: a prompt comes back with its next-ranked reply
    top3 = select_oasst1(_triples(oasst1_messages), n=3)
    assert [r["meta"]["prompt_id"] for r in top3] == ["tA", "tB", "tA"]


def test_oasst1_rule_is_deterministic_whatever_the_input_order(oasst1_messages):
    messages = oasst1_messages
    expected = select_oasst1(_triples(messages))
    for seed in range(5):
        shuffled = messages[:]
        random.Random(seed).shuffle(shuffled)
        assert select_oasst1(_triples(shuffled)) == expected


def test_oasst1_local_formats(tmp_path, oasst1_messages):
    import pyarrow as pa
    import pyarrow.parquet as pq

    messages = oasst1_messages
    expected = [r["id"] for r in select_oasst1(_triples(messages), n=4)]
    # parquet, as on the hub (train and validation files in one directory)
    d = tmp_path / "hub" / "data"
    d.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(messages[:9]), d / "train-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(messages[9:]), d / "validation-00000-of-00001.parquet")
    assert [r["id"] for r in load_english(f"oasst1:{tmp_path / 'hub'}", n=4)] == expected
    # flat messages JSONL, gzipped like the 2023-04-12_oasst_ready.messages.jsonl.gz export
    gz = tmp_path / "messages.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(m) + "\n" for m in messages)
    assert [r["id"] for r in load_english(f"oasst1:{gz}", n=4)] == expected
    # the nested trees export
    by_parent: dict = {}
    for m in messages:
        by_parent.setdefault(m["parent_id"], []).append(m)

    def nest(m):
        node = {k: v for k, v in m.items() if k not in ("parent_id", "message_tree_id")}
        node["replies"] = [nest(c) for c in by_parent.get(m["message_id"], [])]
        return node

    trees = tmp_path / "trees.jsonl"
    trees.write_text(
        "".join(
            json.dumps(
                {"message_tree_id": r["message_id"], "tree_state": "ready_for_export", "prompt": nest(r)}
            )
            + "\n"
            for r in by_parent[None]
        )
    )
    assert [r["id"] for r in load_english(f"oasst1:{trees}", n=4)] == expected


def test_oasst1_bad_input_names_file_line_field(tmp_path, oasst1_messages):
    messages = copy.deepcopy(oasst1_messages)
    del messages[4]["message_tree_id"]
    path = tmp_path / "broken.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    with pytest.raises(InputError) as e:
        load_english(f"oasst1:{path}")
    assert (e.value.file, e.value.line, e.value.field) == (str(path), 5, "message_tree_id")
    assert f"{path}:5: field 'message_tree_id'" in str(e.value)

    messages = copy.deepcopy(oasst1_messages)
    messages[2]["rank"] = "first"
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    with pytest.raises(InputError, match=r"broken.jsonl:3: field 'rank'"):
        load_english(f"oasst1:{path}")
    with pytest.raises(InputError, match="file not found"):
        load_english(f"oasst1:{tmp_path / 'nope.parquet'}")


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_field_mappings(tmp_path):
    alpaca = _write(
        tmp_path / "alpaca.jsonl",
        [
            {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
            {"instruction": "Name a colour.", "input": "", "output": "Blue."},
        ],
    )
    rows = load_english(f"jsonl:{alpaca}")
    assert [(r["en_prompt"], r["en_response"]) for r in rows] == [
        ("Translate to French.\n\nGood morning", "Bonjour"),
        ("Name a colour.", "Blue."),
    ]
    assert rows[0]["id"] == "alpaca-1" and rows[0]["meta"]["format"] == "alpaca"

    pr = _write(tmp_path / "pr.jsonl", [{"id": 7, "prompt": "Hi?", "response": "Hello."}])
    assert load_english(f"jsonl:{pr}")[0] == {
        "id": "7",
        "en_prompt": "Hi?",
        "en_response": "Hello.",
        "meta": {"source": str(pr), "line": 1, "format": "prompt_response"},
    }

    msgs = _write(
        tmp_path / "msgs.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "2+2?"},
                    {"role": "assistant", "content": "4"},
                    {"role": "user", "content": "3+3?"},
                    {"role": "assistant", "content": "6"},
                ]
            }
        ],
    )
    assert [(r["en_prompt"], r["en_response"]) for r in load_english(f"jsonl:{msgs}")] == [("2+2?", "4")]

    sharegpt = _write(
        tmp_path / "sg.jsonl",
        [
            {
                "id": "x",
                "conversations": [
                    {"from": "human", "value": "Capital of Kenya?"},
                    {"from": "gpt", "value": "Nairobi."},
                ],
            }
        ],
    )
    assert load_english(f"jsonl:{sharegpt}")[0]["en_response"] == "Nairobi."

    custom = _write(tmp_path / "custom.jsonl", [{"q": "Why?", "a": "Because."}, {"q": "How?", "a": "So."}])
    rows = load_english(
        f"jsonl:{custom}", n=1, format="prompt_response", prompt_field="q", response_field="a"
    )
    assert [(r["en_prompt"], r["en_response"]) for r in rows] == [("Why?", "Because.")]


def test_hf_source_reads_a_local_dataset(tmp_path):
    d = tmp_path / "my_sft"
    d.mkdir()
    _write(
        d / "train.jsonl",
        [{"instruction": f"Task {i}", "input": "", "output": f"Done {i}"} for i in range(4)],
    )
    rows = load_english(f"hf:{d}", n=2)
    assert [r["en_prompt"] for r in rows] == ["Task 0", "Task 1"]


def test_mapping_errors_name_file_line_field(tmp_path):
    bad = _write(
        tmp_path / "bad.jsonl", [{"prompt": "ok", "response": "ok"}, {"prompt": "ok", "response": 3}]
    )
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'response': expected a string, got int"):
        load_english(f"jsonl:{bad}")
    unknown = _write(tmp_path / "unknown.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(InputError, match=r"unknown.jsonl:1: unrecognised row shape"):
        load_english(f"jsonl:{unknown}")
    lonely = _write(tmp_path / "lonely.jsonl", [{"messages": [{"role": "user", "content": "hello?"}]}])
    with pytest.raises(InputError, match=r"lonely.jsonl:1: field 'messages': no user turn followed by"):
        load_english(f"jsonl:{lonely}")
    torn = tmp_path / "torn.jsonl"
    torn.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a", "resp\n')
    with pytest.raises(InputError, match=r"torn.jsonl:2: invalid JSON"):
        load_english(f"jsonl:{torn}")
    dup = _write(tmp_path / "dup.jsonl", [{"id": 1, "prompt": "a", "response": "b"}] * 2)
    with pytest.raises(InputError, match="duplicate id '1'"):
        load_english(f"jsonl:{dup}")
    with pytest.raises(InputError, match="unknown source"):
        load_english("csv:whatever")
