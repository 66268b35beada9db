"""A small client for OpenAI-compatible chat endpoints (OpenAI, vLLM, llama.cpp server, ...).

Shared by the LLM translator and the pairwise judge: retries with exponential backoff on 429/5xx
and network errors, bounded concurrency, token usage accounting. The API key is read from an
environment variable named by the caller and registered with `langshift.redact`: every error message
and every completion text passes through `redact`, so a server that echoes request headers cannot put
the key into a log, a cache or a result file.

An answer that is not a chat completion (an HTML page, a JSON list, an empty body) or a refusal
(HTTP 4xx other than 408/409/429) is a setting to fix, not a transient failure: it raises
`EndpointError` (a ValueError) at once, in one line naming the URL and what came back.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import httpx

from langshift.redact import redact, redact_url, register_secret, register_url_secrets

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
SNIPPET = 160  # characters of an unexpected body quoted in an error


class LLMError(RuntimeError):
    """The endpoint stayed unreachable or failing (network, 5xx, 429) through every retry."""


class EndpointError(ValueError):
    """The endpoint answered, but not with a chat completion, or refused the request: fix the settings."""


def _snippet(text: str) -> str:
    """One line of at most SNIPPET characters of a body, secrets masked."""
    flat = " ".join(redact(text).split())
    return repr(flat[:SNIPPET] + ("..." if len(flat) > SNIPPET else ""))


def _what_came_back(r: httpx.Response) -> str:
    kind = r.headers.get("content-type", "no content-type").split(";")[0].strip()
    if not r.content.strip():
        return f"HTTP {r.status_code} with an empty body"
    return f"HTTP {r.status_code} {kind}: {_snippet(r.text)}"


def completion_text(r: httpx.Response, where: str) -> tuple[str, dict | None]:
    """(message content, usage) of a 200 answer; EndpointError when it is not a chat completion."""
    try:
        data = r.json()
    except ValueError:
        raise EndpointError(f"{where} answered {_what_came_back(r)}, not a JSON chat completion "
                            "(is the base URL right? it usually ends in /v1)") from None
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        shape = f"a JSON {type(data).__name__}" + (f" with keys {sorted(data)[:8]}" if isinstance(data, dict) else "")
        raise EndpointError(f"{where} answered {shape}, not a chat completion (no choices[0].message.content): "
                            f"{_snippet(r.text)}") from None
    if content is not None and not isinstance(content, str):
        raise EndpointError(f"{where} answered a message whose content is {type(content).__name__}, not text")
    return content or "", data.get("usage") if isinstance(data.get("usage"), dict) else None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, usage: dict | None) -> None:
        with self._lock:
            self.requests += 1
            if usage:
                self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
                self.completion_tokens += int(usage.get("completion_tokens") or 0)

    def as_dict(self) -> dict:
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


@dataclass
class ChatClient:
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o"
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 120.0
    max_retries: int = 5
    concurrency: int = 4
    backoff: float = 1.0
    usage: Usage = field(default_factory=Usage)

    def __post_init__(self):
        register_url_secrets(self.base_url)

    def _headers(self) -> dict:
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        register_secret(key)
        if any(not " " <= ch <= "~" for ch in key):
            raise EndpointError(f"the API key in ${self.api_key_env} holds a character an HTTP header cannot carry "
                                "(a line break or a non-ASCII letter: copied with the key?)")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def chat(self, messages: list[dict], **params) -> str:
        """One completion's text. `params` go into the request body (temperature, max_tokens, seed...)."""
        url = self.base_url.rstrip("/") + "/chat/completions"
        where = f"{redact_url(url)} (model {self.model})"
        body = {"model": self.model, "messages": messages, **params}
        last: str = ""
        for attempt in range(self.max_retries + 1):
            try:
                with httpx.Client(timeout=self.timeout) as http:
                    r = http.post(url, json=body, headers=self._headers())
            except httpx.TransportError as e:
                last = redact(f"{type(e).__name__}: {e}")
            else:
                if r.status_code == 200:
                    content, usage = completion_text(r, where)
                    self.usage.add(usage)
                    return redact(content, headers=False)
                last = _what_came_back(r)
                if r.status_code not in RETRY_STATUS:
                    raise EndpointError(f"{where} refused the request: {last}")
            if attempt < self.max_retries:
                time.sleep(self.backoff * (2**attempt) * (0.5 + random.random()))
        raise LLMError(f"{where} failed after {self.max_retries + 1} attempts: {last}")

    def chat_stream(self, conversations: Sequence[list[dict]], params_each: Sequence[dict] | None = None,
                    **params) -> Iterator[tuple[int, str]]:
        """(index, completion text) as each request completes, `concurrency` in flight; `params_each[i]`
        adds to `params` for conversation i. A request that fails through every retry does not stop the
        others (their answers are paid for): they are all yielded, then the failure is raised. An
        EndpointError (a setting to fix) stops at once."""
        pool = ThreadPoolExecutor(max_workers=max(1, self.concurrency))
        try:
            futures = {
                pool.submit(self.chat, msgs, **params, **(params_each[i] if params_each else {})): i
                for i, msgs in enumerate(conversations)
            }
            failed: list[LLMError] = []
            for fut in as_completed(futures):
                try:
                    text = fut.result()
                except LLMError as e:
                    failed.append(e)
                    continue
                yield futures[fut], text
            if failed:
                raise LLMError(f"{len(failed)} of {len(futures)} requests failed (the answers that arrived are "
                               f"kept): {failed[0]}")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def chat_many(self, conversations: Sequence[list[dict]], **params) -> list[str]:
        """Completions in input order, `concurrency` requests in flight."""
        out = [""] * len(conversations)
        for i, text in self.chat_stream(conversations, **params):
            out[i] = text
        return out
