"""An API key never reaches disk or a message, even from a server that echoes the request headers; an
endpoint that answers HTML, a JSON list or nothing is one clear line naming the URL, not a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, completion

from langshift.llm_client import ChatClient, EndpointError, LLMError

KEY_ENV = "LANGSHIFT_TEST_SENTINEL_KEY"
KEY = "sk-SENTINEL-9f8e7d6c5b4a"


def echo_headers_in_completion(request):
    return completion(f"Tafsiri. You sent: {json.dumps(request['headers'])}")


def echo_headers_in_refusal(request):
    headers = request["headers"]
    body = json.dumps({"error": {"message": f"invalid key {headers.get('Authorization')}", "request_headers": headers}})
    return 401, "application/json", body.encode()


def echo_headers_in_server_error(request):
    headers = request["headers"]
    return 500, "text/plain", f"upstream failed for {headers.get('Authorization')}; headers: {headers}".encode()


def _langshift(run: Path, log_name: str, *args: str) -> subprocess.CompletedProcess:
    """The CLI in its own process, its output kept in run/logs/ as `langshift run` keeps a stage's."""
    env = {**os.environ, KEY_ENV: KEY, "PYTHONPATH": os.pathsep.join(sys.path), "TQDM_DISABLE": "1"}
    (run / "logs").mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "langshift.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    (run / "logs" / log_name).write_text(done.stdout + done.stderr)
    return done


def _error_lines(stderr: str) -> list[str]:
    """The `error: ...` lines (a progress bar redraws with carriage returns, so split on those too)."""
    return [line for line in re.split(r"[\r\n]", stderr) if line.startswith("error: ")]


def _files_holding_the_key(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


def _rows(path: Path) -> Path:
    rows = [{"id": f"r{i}", "en_prompt": f"What is item {i}?", "en_response": f"Item {i} is water."} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_translation_through_a_header_echoing_server_writes_no_key(tmp_path):
    run = tmp_path / "runs" / "exp"
    with FakeOpenAI(echo_headers_in_completion) as server:
        done = _langshift(run, "data.log", "data", "translate", "--in", str(_rows(tmp_path / "en.jsonl")),
                          "--lang", "sw", "--translator", "openai", "--model", "fake", "--base-url", server.url,
                          "--api-key-env", KEY_ENV, "--out", str(run / "data"), "--detector", "none",
                          "--keep-filtered")
    assert done.returncode == 0, done.stderr[-3000:]
    assert server.requests and all(r["headers"].get("Authorization") == f"Bearer {KEY}" for r in server.requests)
    written = (run / "data" / "records.jsonl").read_text() + (run / "data" / "rejected.jsonl").read_text()
    assert "[REDACTED]" in written  # the echo did come back, masked
    assert _files_holding_the_key(tmp_path) == []  # records, rejects, SQLite cache and WAL, data card, log


def test_a_judge_refusal_that_echoes_the_key_is_one_clean_error_line(tmp_path):
    run = tmp_path / "runs" / "exp"
    for side in ("a", "b"):
        (tmp_path / f"{side}.jsonl").write_text(json.dumps({"id": "q1", "prompt": "Habari?", "response": side}) + "\n")
    with FakeOpenAI(echo_headers_in_refusal) as server:
        done = _langshift(run, "alpaca.log", "eval", "alpaca", "--a", str(tmp_path / "a.jsonl"), "--b",
                          str(tmp_path / "b.jsonl"), "--lang", "sw", "--out", str(run / "eval"),
                          "--judge-base-url", server.url, "--judge-api-key-env", KEY_ENV)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = _error_lines(done.stderr)
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert f"{server.url}/chat/completions" in errors[0] and "HTTP 401" in errors[0] and "[REDACTED]" in errors[0]
    assert server.received <= 2  # a refusal is not retried
    assert _files_holding_the_key(tmp_path) == []


def test_no_exception_message_carries_the_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(echo_headers_in_server_error) as server:
        client = ChatClient(base_url=server.url, model="m", api_key_env=KEY_ENV, max_retries=1, backoff=0.01)
        with pytest.raises(LLMError) as err:
            client.chat([{"role": "user", "content": "hi"}])
    assert server.received == 2 and KEY not in str(err.value) and "[REDACTED]" in str(err.value)
    # A key pasted with a line break cannot go into a header: said plainly, without quoting it.
    monkeypatch.setenv(KEY_ENV, KEY + "\n")
    with pytest.raises(EndpointError, match=KEY_ENV) as err:
        ChatClient(base_url="http://127.0.0.1:9/v1", model="m", api_key_env=KEY_ENV).chat([])
    assert KEY not in str(err.value)
    # A key carried in the base URL is masked in messages too.
    client = ChatClient(base_url=f"http://127.0.0.1:9/v1?api-key={KEY}", model="m", api_key_env="", max_retries=0,
                        timeout=2)
    with pytest.raises(LLMError) as err:
        client.chat([{"role": "user", "content": "hi"}])
    assert KEY not in str(err.value)


NOT_A_COMPLETION = {
    "an HTML page": ((200, "text/html", b"<html><head><title>Welcome to nginx!</title></head>\n<body>hi</body></html>"),
                     "text/html: '<html><head><title>Welcome to nginx!"),
    "a JSON list": ((200, "application/json", b'[{"id": 1}, {"id": 2}]'), "a JSON list"),
    "an empty body": ((200, "application/json", b""), "empty body"),
    "JSON without choices": ((200, "application/json", b'{"object": "error", "detail": "no model"}'),
                             "keys ['detail', 'object']"),
}


@pytest.mark.parametrize("case", NOT_A_COMPLETION)
def test_an_endpoint_that_does_not_answer_a_completion_is_one_clear_line(case):
    answer, described = NOT_A_COMPLETION[case]
    with FakeOpenAI(lambda request: answer) as server:
        client = ChatClient(base_url=server.url, model="m", api_key_env="", max_retries=3, backoff=0.01)
        with pytest.raises(EndpointError) as err:
            client.chat([{"role": "user", "content": "hi"}])
    message = str(err.value)
    assert server.received == 1  # a wrong endpoint does not get better with retries
    assert "\n" not in message and f"{server.url}/chat/completions" in message and described in message


def test_the_cli_says_so_in_one_line_and_writes_nothing(tmp_path):
    answer, described = NOT_A_COMPLETION["an HTML page"]
    run = tmp_path / "run"
    with FakeOpenAI(lambda request: answer) as server:
        done = _langshift(run, "data.log", "data", "translate", "--in", str(_rows(tmp_path / "en.jsonl")),
                          "--lang", "sw", "--translator", "openai", "--model", "fake", "--base-url", server.url,
                          "--api-key-env", KEY_ENV, "--out", str(run / "data"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = _error_lines(done.stderr)
    assert len(errors) == 1 and described in errors[0] and "base URL" in errors[0] and KEY not in done.stderr
    assert not (run / "data" / "records.jsonl").exists()
