"""A small client for OpenAI-compatible chat endpoints (OpenAI, vLLM, llama.cpp server, ...).

Shared by the LLM translator and the pairwise judge: retries with exponential backoff on 429/5xx
and network errors, bounded concurrency, token usage accounting. The API key is read from an
environment variable named by the caller and never logged or echoed in errors.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class LLMError(RuntimeError):
    pass


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

    def _headers(self) -> dict:
        key = os.environ.get(self.api_key_env, "")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def chat(self, messages: list[dict], **params) -> str:
        """One completion's text. `params` go into the request body (temperature, max_tokens, seed...)."""
        url = self.base_url.rstrip("/") + "/chat/completions"
        body = {"model": self.model, "messages": messages, **params}
        last: str = ""
        for attempt in range(self.max_retries + 1):
            try:
                with httpx.Client(timeout=self.timeout) as http:
                    r = http.post(url, json=body, headers=self._headers())
                if r.status_code == 200:
                    data = r.json()
                    self.usage.add(data.get("usage"))
                    return data["choices"][0]["message"]["content"] or ""
                last = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in RETRY_STATUS:
                    break
            except (httpx.TransportError, ValueError, KeyError) as e:
                last = f"{type(e).__name__}: {e}"
            if attempt < self.max_retries:
                time.sleep(self.backoff * (2**attempt) * (0.5 + random.random()))
        raise LLMError(f"{url} (model {self.model}) failed after {self.max_retries + 1} attempts: {last}")

    def chat_many(self, conversations: Sequence[list[dict]], **params) -> list[str]:
        """Completions in input order, `concurrency` requests in flight."""
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(lambda msgs: self.chat(msgs, **params), conversations))
