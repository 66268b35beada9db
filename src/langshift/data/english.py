"""The English SFT source: rows {"id", "en_prompt", "en_response", "meta"}.

Sources (`load_english(source, n)`):
  * `oasst1`        OpenAssistant/oasst1 from the hub (train + validation splits);
  * `oasst1:PATH`   a local export with oasst1's columns: parquet, JSONL(.gz) of flat messages, the
                    nested `*.trees.jsonl(.gz)` export, or a directory of such files;
  * `jsonl:PATH`    any instruction JSONL (shapes below);
  * `hf:NAME`       any hub dataset with those shapes (`split=`, `config=` in the mapping).

The oasst1 rule (paper §4.1: "6,400 samples ... selected in order of highest ranking", first turn):
  1. rebuild each message tree from (message_id, parent_id, message_tree_id); a root has no parent
     (`parent_id` null, or "" as some exports write it); a message whose parent is not in the export
     (an orphan, e.g. from a partial export) is skipped and counted (`select_oasst1(..., stats=)`);
  2. keep a tree only if its root is an English (`lang == "en"`) prompter message that is neither
     deleted nor failed review (`review_result is False`); a deleted root drops its whole tree;
  3. candidates are first-turn pairs (root, r) for every direct assistant reply r of the root with
     `lang == "en"`, not deleted, not failed review, and non-empty text; deeper turns are ignored;
  4. order candidates by rank (0 = best as ranked by annotators; unranked replies last), ties broken
     by (message_tree_id, message_id), i.e. deterministically; take the first n.
  English oasst1 has fewer root prompts than 6,400, so after rank 0 is used up, rank-1 replies to the
  same prompts follow: one prompt can appear with several of its replies (`meta.prompt_id` groups them).

Generic shapes (auto-detected per row, or forced with `format=`):
  * Alpaca: instruction, input, output -> prompt = instruction + "\n\n" + input (if any);
  * prompt/response: `prompt_field` / `response_field` (defaults "prompt" / "response");
  * messages: a list of {"role", "content"} (`messages_field`, default "messages"), or ShareGPT's
    "conversations" list of {"from", "value"}: the first user turn and the reply right after it.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from langshift.files import InputError

log = logging.getLogger("langshift")

OASST1_HUB = "OpenAssistant/oasst1"
OASST1_REQUIRED = ("message_id", "parent_id", "message_tree_id", "role", "lang", "text")
USER_ROLES = {"user", "human", "prompter"}
ASSISTANT_ROLES = {"assistant", "gpt", "bot", "model"}


def load_english(source: str, n: int | None = None, **mapping) -> list[dict]:
    """Rows {"id", "en_prompt", "en_response", "meta"} from `source`; the first `n` by its rule."""
    kind, _, arg = str(source).partition(":")
    if kind == "oasst1":
        messages = _oasst1_local(Path(arg)) if arg else _oasst1_hub()
        stats: dict = {}
        rows = select_oasst1(messages, n, stats)
        if not rows:
            raise InputError(source, f"no usable English pairs found ({stats['messages']} messages, {stats['roots']} "
                             f"roots, {stats['orphans']} orphans whose parent is not in the export)")
    elif kind == "jsonl":
        if not arg:
            raise InputError(source, "expected jsonl:PATH")
        rows = list(_take(_mapped_rows(_jsonl_objects(Path(arg)), arg, mapping), n))
    elif kind == "hf":
        if not arg:
            raise InputError(source, "expected hf:NAME")
        rows = list(_take(_mapped_rows(_hub_objects(arg, mapping), f"hf:{arg}", mapping), n))
    else:
        raise InputError(source, "unknown source; use oasst1, oasst1:PATH, jsonl:PATH or hf:NAME")
    if not rows:
        raise InputError(source, "no usable English pairs found")
    seen: set[str] = set()
    for r in rows:
        if r["id"] in seen:
            raise InputError(source, f"duplicate id {r['id']!r}", field="id")
        seen.add(r["id"])
    return rows


def _take(it: Iterable[dict], n: int | None) -> Iterator[dict]:
    for i, row in enumerate(it):
        if n is not None and i >= n:
            return
        yield row


# ----------------------------------------------------------------------------------------- oasst1


def _parent(m: dict) -> str | None:
    """The parent's id; None for a root (null, or an empty string as some exports write it)."""
    parent = m.get("parent_id")
    return parent if isinstance(parent, str) and parent.strip() else None


def select_oasst1(messages: Iterable[tuple[str, int, dict]], n: int | None = None,
                  stats: dict | None = None) -> list[dict]:
    """Apply the first-turn, highest-rank-first rule to (file, line, message) triples. `stats`, when
    given, receives the counts: messages, roots, orphans (parent not in the export), candidates."""
    by_id: dict[str, dict] = {}
    children: dict[str, list[dict]] = {}
    for file, line, m in messages:
        for name in OASST1_REQUIRED:
            if name not in m:
                raise InputError(file, "missing (not an oasst1 message?)", line=line, field=name)
        for name in ("message_id", "message_tree_id", "role", "lang"):
            if not isinstance(m[name], str):
                raise InputError(
                    file, f"expected a string, got {type(m[name]).__name__}", line=line, field=name
                )
        if m["role"] not in ("prompter", "assistant"):
            raise InputError(file, f"unknown role {m['role']!r}", line=line, field="role")
        rank = m.get("rank")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, (int, float))):
            raise InputError(file, f"expected an integer or null, got {rank!r}", line=line, field="rank")
        if m["parent_id"] is not None and not isinstance(m["parent_id"], str):
            raise InputError(file, f"expected a string or null, got {type(m['parent_id']).__name__}", line=line,
                             field="parent_id")
        by_id[m["message_id"]] = m
        if _parent(m) is not None:
            children.setdefault(_parent(m), []).append(m)

    def ok(m: dict) -> bool:
        text = m.get("text")
        return (
            m["lang"] == "en"
            and not m.get("deleted")
            and m.get("review_result") is not False
            and isinstance(text, str)
            and bool(text.strip())
        )

    orphans = sum(1 for m in by_id.values() if _parent(m) is not None and _parent(m) not in by_id)
    roots = [m for m in by_id.values() if _parent(m) is None]
    candidates = []
    for root in roots:
        if root["role"] != "prompter" or not ok(root):
            continue
        for reply in children.get(root["message_id"], []):
            if reply["role"] == "assistant" and ok(reply):
                candidates.append((root, reply))

    def rank_key(pair):
        rank = _rank(pair[1])
        return (rank is None, rank or 0, pair[0]["message_tree_id"], pair[1]["message_id"])

    candidates.sort(key=rank_key)
    if stats is not None:
        stats.update(messages=len(by_id), roots=len(roots), orphans=orphans, candidates=len(candidates))
    if orphans:
        log.warning("oasst1: %d of %d messages have a parent that is not in the export (orphans); skipped",
                    orphans, len(by_id))
    rows = []
    for root, reply in candidates[:n] if n is not None else candidates:
        rows.append(
            {
                "id": f"oasst1-{reply['message_id']}",
                "en_prompt": root["text"],
                "en_response": reply["text"],
                "meta": {
                    "source": "oasst1",
                    "prompt_id": root["message_id"],
                    "reply_id": reply["message_id"],
                    "message_tree_id": root["message_tree_id"],
                    "rank": _rank(reply),
                },
            }
        )
    return rows


def _rank(m: dict) -> int | None:
    """rank as an int; None when unranked (null, or NaN as pandas-written parquet spells null)."""
    rank = m.get("rank")
    return None if rank is None or rank != rank else int(rank)


def _flatten_tree(node: dict, tree_id: str, parent_id: str | None) -> Iterator[dict]:
    """The nested `trees.jsonl` export -> flat messages (replies nested under each message)."""
    msg = {k: v for k, v in node.items() if k != "replies"}
    msg.setdefault("parent_id", parent_id)
    msg.setdefault("message_tree_id", tree_id)
    yield msg
    for child in node.get("replies") or []:
        yield from _flatten_tree(child, tree_id, msg.get("message_id"))


def _oasst1_local(path: Path) -> Iterator[tuple[str, int, dict]]:
    if not path.exists():
        raise InputError(path, "file not found")
    files = sorted(p for p in path.rglob("*") if p.is_file() and _is_table(p)) if path.is_dir() else [path]
    if not files:
        raise InputError(path, "no .parquet or .jsonl(.gz) files in this directory")
    for f in files:
        if f.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            for i, m in enumerate(pq.read_table(f).to_pylist(), start=1):
                yield str(f), i, m
        else:
            for i, obj in _jsonl_objects(f):
                if "prompt" in obj and "message_id" not in obj:  # nested trees export
                    for m in _flatten_tree(obj["prompt"], obj.get("message_tree_id"), None):
                        yield str(f), i, m
                else:
                    yield str(f), i, obj


def _is_table(p: Path) -> bool:
    return p.name.endswith((".parquet", ".jsonl", ".jsonl.gz", ".json"))


def _oasst1_hub() -> Iterator[tuple[str, int, dict]]:
    from langshift.hub import load_split

    for split in ("train", "validation"):
        ds = load_split(OASST1_HUB, split=split)
        for i, m in enumerate(ds, start=1):
            yield f"{OASST1_HUB}[{split}]", i, m


# ----------------------------------------------------------------------------------- generic shapes


def _jsonl_objects(path: Path) -> Iterator[tuple[int, dict]]:
    if not path.exists():
        raise InputError(path, "file not found")
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:  # bytes: a line that is not UTF-8 is named, not a decoder traceback
        for i, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8-sig" if i == 1 else "utf-8"))
            except UnicodeDecodeError as e:
                raise InputError(path, f"invalid UTF-8 (byte {e.start + 1} of the line)", line=i) from None
            except json.JSONDecodeError as e:
                raise InputError(path, f"invalid JSON ({e.msg} at column {e.colno})", line=i) from None
            if not isinstance(obj, dict):
                raise InputError(path, f"expected a JSON object, got {type(obj).__name__}", line=i)
            yield i, obj


def _hub_objects(name: str, mapping: dict) -> Iterator[tuple[int, dict]]:
    from langshift.hub import load_split

    ds = load_split(name, mapping.get("config"), split=mapping.get("split") or "train")
    for i, row in enumerate(ds, start=1):
        yield i, dict(row)


def _text(obj: dict, name: str, file, line: int, *, optional: bool = False) -> str:
    value = obj.get(name)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        got = "missing" if name not in obj else f"expected a string, got {type(value).__name__}"
        raise InputError(file, got, line=line, field=name)
    return value


def _first_exchange(turns, file, line: int, field: str) -> tuple[str, str]:
    """First user turn and the assistant reply right after it (system turns skipped)."""
    if not isinstance(turns, list):
        raise InputError(file, "expected a list of turns", line=line, field=field)
    norm = []
    for j, t in enumerate(turns):
        if not isinstance(t, dict):
            raise InputError(file, f"turn {j} is not an object", line=line, field=field)
        role = t.get("role", t.get("from"))
        content = t.get("content", t.get("value"))
        if not isinstance(role, str) or not isinstance(content, str):
            raise InputError(
                file, f"turn {j} needs role/content (or from/value) strings", line=line, field=field
            )
        norm.append((role.lower(), content))
    for j, (role, content) in enumerate(norm):
        if role in USER_ROLES:
            if j + 1 < len(norm) and norm[j + 1][0] in ASSISTANT_ROLES:
                return content, norm[j + 1][1]
            break
    raise InputError(file, "no user turn followed by an assistant reply", line=line, field=field)


def detect_format(obj: dict, mapping: dict) -> str:
    if mapping.get("format"):
        return mapping["format"]
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    if mapping.get("messages_field", "messages") in obj or "conversations" in obj:
        return "messages"
    if mapping.get("prompt_field", "prompt") in obj:
        return "prompt_response"
    return "unknown"


def _mapped_rows(
    objects: Iterable[tuple[int, dict]], file: str | os.PathLike, mapping: dict
) -> Iterator[dict]:
    stem = Path(str(file)).name.split(".")[0] or "row"
    id_field = mapping.get("id_field", "id")
    for line, obj in objects:
        fmt = detect_format(obj, mapping)
        if fmt == "alpaca":
            prompt = _text(obj, mapping.get("instruction_field", "instruction"), file, line)
            extra = _text(obj, mapping.get("input_field", "input"), file, line, optional=True)
            prompt = f"{prompt}\n\n{extra}" if extra.strip() else prompt
            response = _text(obj, mapping.get("output_field", "output"), file, line)
        elif fmt == "prompt_response":
            prompt = _text(obj, mapping.get("prompt_field", "prompt"), file, line)
            response = _text(obj, mapping.get("response_field", "response"), file, line)
        elif fmt in ("messages", "sharegpt"):
            name = mapping.get("messages_field", "messages")
            name = name if name in obj else "conversations"
            prompt, response = _first_exchange(obj.get(name), file, line, name)
        else:
            raise InputError(
                file,
                f"unrecognised row shape (fields: {sorted(obj)}); expected Alpaca "
                "instruction/input/output, prompt/response or a messages list",
                line=line,
            )
        for name, text in (("prompt", prompt), ("response", response)):
            if not text.strip():
                raise InputError(file, f"empty {name}", line=line, field=name)
        rid = obj.get(id_field)
        meta = {"source": str(file), "line": line, "format": fmt}
        if isinstance(obj.get("meta"), dict):
            meta = {**obj["meta"], **meta}
        yield {
            "id": str(rid) if rid is not None else f"{stem}-{line}",
            "en_prompt": prompt,
            "en_response": response,
            "meta": meta,
        }
