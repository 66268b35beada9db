"""A small OpenAI-compatible chat endpoint on loopback, for what a real server will not do on demand:
count requests, hold them, echo the request back, answer HTML or nothing.

    with FakeOpenAI(answer) as server:   # server.url is ".../v1"
        ...
`answer(request) -> (status, content_type, body)` where request = {"body": parsed JSON, "headers": dict};
`completion(text)` builds a chat completion body. `hold_after=K` answers K requests, then holds every
later one until `release()` (a client killed meanwhile never gets them).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(text: str) -> tuple[int, str, bytes]:
    body = {"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    return 200, "application/json", json.dumps(body).encode()


class FakeOpenAI:
    def __init__(self, answer, hold_after: int | None = None):
        self.answer, self.hold_after = answer, hold_after
        self.received = 0  # requests that arrived
        self.answered = 0  # requests answered
        self.requests: list[dict] = []
        self._lock, self._release = threading.Lock(), threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                request = {"body": json.loads(raw or b"{}"), "headers": dict(self.headers.items()), "path": self.path}
                with server._lock:
                    server.received += 1
                    server.requests.append(request)
                    hold = server.hold_after is not None and server.received > server.hold_after
                if hold:
                    server._release.wait(timeout=120)
                status, kind, body = server.answer(request)
                try:
                    self.send_response(status)
                    if kind:
                        self.send_header("content-type", kind)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client was killed while its request was held
                with server._lock:
                    server.answered += 1

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def release(self):
        """Answer the held requests, and hold no more."""
        self.hold_after = None
        self._release.set()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()
