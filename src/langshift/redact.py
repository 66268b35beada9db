"""Keep API keys out of everything langshift writes: messages, logs, caches, result files.

A key can reach text in ways no caller controls: a server that echoes the request headers in an error
body or even in a completion, an exception from the HTTP stack that quotes a header value, a base URL
with `?api-key=...` or `user:password@`. So every client registers the secrets it sends
(`register_secret`), and every message built from anything a server or the HTTP stack said goes
through `redact`, which replaces

  * each registered secret, wherever it appears;
  * the value of any `Authorization`, `Proxy-Authorization`, `api-key`, `x-api-key` header or field,
    in the spellings a header echo takes (`Authorization: Bearer ...`, `"authorization": "..."`,
    `api_key=...`).
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import parse_qsl, urlsplit

MASK = "[REDACTED]"
_MIN_SECRET = 6  # shorter values would mask ordinary words; no real key is this short

_secrets: set[str] = set()
_lock = threading.Lock()

_HEADER = re.compile(
    r"""(?ix)
    (\b(?:proxy-)?authorization|\bx-api-key|\bapi[-_]key|\bapikey)   # the header or field name
    (\\?["']?\s*[:=]\s*\\?["']?)                                      # : or = with optional (escaped) quotes
    ((?:bearer|basic|token)\s+)?                                      # an auth scheme stays readable
    ([^\s"'\\,;}&]+)                                                  # the value
    """
)
_SECRET_QUERY = re.compile(r"(?i)(key|token|secret|password|signature|sig)")


def register_secret(value: str | None) -> None:
    """Mask `value` in everything `redact` sees from now on (in this process)."""
    if value and len(value) >= _MIN_SECRET:
        # also as a JSON string or a Python repr would quote it (an echo may escape it either way)
        forms = {value, json.dumps(value)[1:-1], repr(value)[1:-1]}
        with _lock:
            _secrets.update(forms)


def register_url_secrets(url: str | None) -> None:
    """Register the password and key-like query values a URL may carry."""
    if not url:
        return
    parts = urlsplit(url)
    register_secret(parts.password)
    for name, value in parse_qsl(parts.query):
        if _SECRET_QUERY.search(name):
            register_secret(value)


def redact(text: str, *, headers: bool = True) -> str:
    """`text` with every registered secret replaced by [REDACTED], and with `headers`, every auth-header
    value too. Model output (a translation, a judgment) is data: pass headers=False there, so a text that
    merely talks about an "api_key: ..." keeps its words, while a registered key is still masked."""
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # a key that contains another goes first
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if not headers:
        return text
    return _HEADER.sub(lambda m: m.group(1) + m.group(2) + (m.group(3) or "") + MASK, text)


def redact_url(url: str) -> str:
    """A URL for messages and records: password and key-like query values masked."""
    register_url_secrets(url)
    return redact(url)
