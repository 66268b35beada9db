"""Markdown-aware segmentation: what a translator may see, and how its output is put back.

A text becomes a list of pieces, each either *literal* (kept byte-for-byte) or *translatable* (one
sentence, at most `max_chars` long). Reassembly concatenates the pieces in order with each
translatable piece replaced by its translation, so

    reassemble(segment(t), segment(t).segments) == t          (exact round trip)

and every literal piece, code and URLs included, is byte-identical in the output. Literal:
  * fenced code blocks (``` or ~~~, up to the closing fence of the same kind, or to the end);
  * line structure: newlines, indentation, blockquote `>`, headings `#`, list markers `- * + 1. 1)`,
    task boxes `[ ]`, horizontal rules, table pipes and separator rows, trailing spaces;
  * inline code `...`, URLs, e-mail addresses, HTML tags, link targets `](...)`;
  * whitespace between sentences, and runs with no letters at all ("42", "->", "(3)").

A sentence is split around a protected span rather than sending a placeholder: M2M100-style
translators do not reliably keep placeholders, and a lost placeholder would lose the code. The price
is that "Call `f` twice." is translated as "Call" + "twice." — correctness over fluency. Indented
(4-space) code blocks are not detected: they are ambiguous with nested list content.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

FENCE_RE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
HR_RE = re.compile(r"^[ \t]*([-=*_])(?:[ \t]*\1){2,}[ \t]*$")
TABLE_SEP_RE = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
# Repeated line prefixes: blockquote, heading, bullet, ordered item, task box (each followed by space).
PREFIX_RE = re.compile(
    r"^(?:[ \t]*(?:>|#{1,6}(?=[ \t]|$)|[-*+•](?=[ \t])|\d{1,9}[.)](?=[ \t])|\[[ xX]\](?=[ \t]))[ \t]*)*[ \t]*"
)
TRAILING_WS_RE = re.compile(r"[ \t\r\f\v]*$")
LINK_RE = re.compile(r"(!?\[)([^\[\]\n]*)(\]\([^()\s]*(?:\([^()\s]*\)[^()\s]*)*(?:\s+\"[^\"\n]*\")?\))")
PROTECT_RE = re.compile(
    r"(?P<code>(?P<ticks>`+).+?(?P=ticks))"
    r"|(?P<url>(?:https?|ftp)://[^\s<>\"'`]+|www\.[^\s<>\"'`]+)"
    r"|(?P<email>[\w.+-]{1,64}@[\w-]+(?:\.[\w-]+)+)"  # local part <= 64 (RFC 5321): linear, not quadratic
    r"|(?P<html></?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>\n]*)?/?>)"
)
URL_TRAILING = ".,;:!?'\")]}"
WORD_WINDOW = 64
ABBREVIATIONS = {
    "e.g",
    "i.e",
    "etc",
    "vs",
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "no",
    "fig",
    "approx",
    "inc",
    "ltd",
    "co",
    "corp",
    "dept",
    "est",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "u.s",
    "u.k",
    "a.m",
    "p.m",
    "ph.d",
    "cf",
    "al",
}
# A sentence ends at . ! ? … (with closing quotes/brackets) followed by whitespace; CJK enders need none.
BOUNDARY_RE = re.compile(r"[.!?…]+[\"'”’)\]]*(?P<ws>\s+)|[。！？]+[”’」』）]*(?P<cjk>\s*)")


@dataclass
class Piece:
    text: str
    translate: bool


@dataclass
class Segmented:
    pieces: list[Piece] = field(default_factory=list)

    @property
    def segments(self) -> list[str]:
        return [p.text for p in self.pieces if p.translate]

    def reassemble(self, translations: Sequence[str]) -> str:
        return reassemble(self, translations)

    def _lit(self, text: str) -> None:
        if not text:
            return
        if self.pieces and not self.pieces[-1].translate:
            self.pieces[-1].text += text  # merge neighbouring literals: fewer, longer pieces
        else:
            self.pieces.append(Piece(text, False))

    def _tr(self, text: str) -> None:
        self.pieces.append(Piece(text, True))


def segment(text: str, max_chars: int = 400) -> Segmented:
    out = Segmented()
    lines = text.split("\n")
    tables = _table_lines(lines)
    fence: str | None = None
    for i, line in enumerate(lines):
        if i:
            out._lit("\n")
        if fence is not None:
            out._lit(line)
            m = FENCE_RE.match(line)
            if (
                m
                and m.group(1)[0] == fence[0]
                and len(m.group(1)) >= len(fence)
                and not line[m.end() :].strip()
            ):
                fence = None
            continue
        m = FENCE_RE.match(line)
        if m:
            fence = m.group(1)
            out._lit(line)
        elif (
            not line.strip() or HR_RE.match(line) or TABLE_SEP_RE.match(line) and "-" in line and i in tables
        ):
            out._lit(line)
        elif i in tables:
            _table_row(out, line, max_chars)
        else:
            prefix = PREFIX_RE.match(line).group(0)
            out._lit(prefix)
            _inline(out, line[len(prefix) :], max_chars)
    return out


def reassemble(seg: Segmented, translations: Sequence[str]) -> str:
    """Pieces in order, each translatable one replaced by its translation.

    A translation is kept on one line (newlines -> one space, outer whitespace stripped): a model that
    emits a newline must not break the list item or table cell it belongs to.
    """
    segs = seg.segments
    if len(translations) != len(segs):
        raise ValueError(f"{len(translations)} translations for {len(segs)} segments")
    it = iter(translations)
    parts = []
    for p in seg.pieces:
        parts.append(re.sub(r"\s*\n\s*", " ", next(it)).strip() if p.translate else p.text)
    return "".join(parts)


def prose(text: str) -> str:
    """The translatable part of a text (code, URLs, markup removed): what filters should judge."""
    return " ".join(segment(text).segments)


def _table_lines(lines: list[str]) -> set[int]:
    """Indices of table rows: a line with '|' followed by a separator row, and the '|' lines after it."""
    rows: set[int] = set()
    i = 0
    while i + 1 < len(lines):
        if (
            "|" in lines[i]
            and "-" in lines[i + 1]
            and "|" in lines[i + 1]
            and TABLE_SEP_RE.match(lines[i + 1])
        ):
            j = i
            while j < len(lines) and "|" in lines[j] and lines[j].strip():
                rows.add(j)
                j += 1
            i = j
        else:
            i += 1
    return rows


def _table_row(out: Segmented, line: str, max_chars: int) -> None:
    # Split on pipes that are not escaped (\|) and not inside inline code.
    cells, start, in_code = [], 0, False
    for k, ch in enumerate(line):
        if ch == "`":
            in_code = not in_code
        elif ch == "|" and not in_code and (k == 0 or line[k - 1] != "\\"):
            cells.append(line[start:k])
            cells.append("|")
            start = k + 1
    cells.append(line[start:])
    for c in cells:
        if c == "|":
            out._lit(c)
        else:
            _inline(out, c, max_chars)


def _inline(out: Segmented, s: str, max_chars: int) -> None:
    """Literal protected spans, translatable sentences in between."""
    pos = 0
    for m in _protected_spans(s):
        a, b, inner = m
        _text_run(out, s[pos:a], max_chars)
        if inner is None:
            out._lit(s[a:b])
        else:  # a markdown link: "[" literal, its text translated, "](target)" literal
            (la, lb), (ta, tb), (ra, rb) = inner
            out._lit(s[la:lb])
            _inline(out, s[ta:tb], max_chars)
            out._lit(s[ra:rb])
        pos = b
    _text_run(out, s[pos:], max_chars)


def _protected_spans(s: str):
    """(start, end, link_parts | None), left to right, non-overlapping."""
    spans = []
    pos = 0
    p = lk = None
    p_done = lk_done = False  # no match from some earlier position: none from any later one either
    while pos < len(s):
        # Search again only when the last match was consumed or overlapped: linear in len(s), where
        # searching both patterns from every span would be quadratic on a text with many spans.
        if not p_done and (p is None or p.start() < pos):
            p = PROTECT_RE.search(s, pos)
            p_done = p is None
        if not lk_done and (lk is None or lk.start() < pos):
            lk = LINK_RE.search(s, pos)
            lk_done = lk is None
        if lk and (p is None or lk.start() <= p.start()):
            # A protected span inside the link text (e.g. `code`) is handled by the recursion.
            spans.append((lk.start(), lk.end(), (lk.span(1), lk.span(2), lk.span(3))))
            pos = lk.end()
            continue
        if p is None:
            break
        a, b = p.span()
        if p.lastgroup == "url":
            url = s[a:b]
            while (
                url and url[-1] in URL_TRAILING and not (url[-1] == ")" and url.count("(") >= url.count(")"))
            ):
                url = url[:-1]
            b = a + len(url)
        spans.append((a, b, None))
        pos = b
    return spans


def _outer_space(s: str) -> tuple[str, str, str]:
    """(leading whitespace, core, trailing whitespace) of `s`."""
    core = s.strip()
    if not core:
        return s, "", ""
    return s[: len(s) - len(s.lstrip())], core, s[len(s.rstrip()) :]


def _text_run(out: Segmented, s: str, max_chars: int) -> None:
    lead, core, trail = _outer_space(s)
    out._lit(lead)
    for piece, is_text in _sentences(core):
        if not is_text:
            out._lit(piece)
        elif not any(ch.isalpha() for ch in piece):
            out._lit(piece)  # "42", "->", "(3)": nothing to translate
        else:
            for chunk, is_chunk in _bounded(piece, max_chars):
                # a hard cut can leave a chunk with no letters ("0000..."): nothing to translate there either
                if is_chunk and any(ch.isalpha() for ch in chunk):
                    # a hard cut can also end a chunk on whitespace ("…A\x1f"): a translation comes back
                    # stripped, so that whitespace is kept as it was, outside the segment
                    before, words, after = _outer_space(chunk)
                    out._lit(before)
                    out._tr(words)
                    out._lit(after)
                else:
                    out._lit(chunk)
    out._lit(trail)


def _sentences(s: str):
    """Alternating (sentence, True) and (whitespace, False); never splits after an abbreviation,
    a single letter ("J. R. R."), or before a lowercase word."""
    start = 0
    for m in BOUNDARY_RE.finditer(s):
        ws_group = "ws" if m.group("ws") is not None else "cjk"
        ws_start = m.start(ws_group)
        end = m.end()
        if end >= len(s):
            break
        if ws_group == "ws":
            # the word before the mark, from a bounded window: an abbreviation is short, and a search
            # over the whole sentence would be quadratic in a long run without spaces
            word = re.search(r"(\S+?)[.!?…]*[\"'”’)\]]*$", s[max(start, m.start() - WORD_WINDOW) : m.start() + 1])
            prev = (word.group(1) if word else "").lower().rstrip(".")
            nxt = s[end]
            if prev in ABBREVIATIONS or (len(prev) == 1 and prev.isalpha()) or nxt.islower():
                continue
        yield s[start:ws_start], True
        if end > ws_start:
            yield s[ws_start:end], False
        start = end
    yield s[start:], True


def _bounded(s: str, max_chars: int):
    """Split an over-long sentence at clause marks, else at spaces, else hard: (chunk, True) and the
    whitespace between chunks (False). Translators degrade long before their token limit."""
    while len(s) > max_chars:
        window = s[: max_chars + 1]
        cut = max((window.rfind(mark) + len(mark) - 1 for mark in ("; ", ": ", ", ")), default=-1)
        if cut <= 0:
            cut = window.rfind(" ")
        if cut <= 0:
            yield s[:max_chars], True
            s = s[max_chars:]
            continue
        head, rest = s[:cut], s[cut:]
        ws = rest[: len(rest) - len(rest.lstrip())]
        yield head, True
        yield ws, False
        s = rest[len(ws) :]
    if s:
        yield s, True
