"""A minimal Hugging Face Hub stand-in on loopback, for tests that really upload.

    with hub_server(tmp_path / "hub") as hub:
        env = {**os.environ, **hub.env()}  # HF_ENDPOINT=hub.url, a dummy HF_TOKEN, HF_HUB_OFFLINE=0
        subprocess.run([sys.executable, "-m", "langshift.cli", "push", DIR, "--repo", "me/x"], env=env)
        assert hub.files("me/x")["model.safetensors"] == (DIR / "model.safetensors").read_bytes()
        assert ("POST", "/api/repos/create") in hub.requests

`huggingface_hub` reads HF_ENDPOINT (and HF_HUB_OFFLINE) once, at import, into `constants` and every
`HfApi` it builds (transformers keeps one, `transformers.utils.hub.hf_api()`), so the client should be
a process started with `hub.env()` in its environment rather than this one patched. `hub.env()` also
sets HF_HUB_DISABLE_TELEMETRY=1: otherwise the client's user agent looks the caller up in the Hub's
registry of AI agents (GET /api/agent-harnesses, once a day), which has nothing to do with uploading.

What it implements: the requests `huggingface_hub` 2.x sends for `create_repo`, `upload_folder` /
`create_commit` / `upload_file`, which is also all that `transformers.Trainer` sends for
`push_to_hub=True` (`init_hf_repo`: create_repo; each save and `push_to_hub()`: upload_folder):

  POST /api/repos/create                  {"name", "organization", "type"?, "visibility"?}
       -> 200 {"url", "name"}; 409 {"error", "url"} when the repo exists (create_repo(exist_ok=True)
          reads "url" from the 409 as well)
  POST /api/validate-yaml                 {"content", "repoType"} (a README.md about to be committed)
       -> 200 {"errors": [], "warnings": []}; 400 with "errors" when the front matter is not a mapping
  POST /api/{models|datasets|spaces}/OWNER/NAME/preupload/main    {"files": [{"path", "sample", "size"}]}
       -> {"files": [{"path", "uploadMode": "regular", "shouldIgnore": false}]}: every file is "regular"
          (its bytes travel base64 in the commit), so no LFS or Xet endpoint is ever asked for
  POST /api/{models|datasets|spaces}/OWNER/NAME/commit/main       NDJSON: a "header" line ({"summary",
       "description"}), then "file" lines ({"path", "content", "encoding": "base64"}) and "deletedFile" /
       "deletedFolder" lines ({"path"}) -> {"success", "commitOid", "commitUrl", "hookOutput"}

Writes need `Authorization: Bearer <hub.token>` (401 otherwise); a repo that was not created answers 404
with `X-Error-Code: RepoNotFound`, a revision other than main 404 `RevisionNotFound`, as the Hub does, and
`hf_raise_for_status` turns them into the same exceptions. Committed files are stored under
`root/{models|datasets|spaces}/OWNER/NAME/`; `hub.commits` keeps each commit's summary and paths.

What it does not: LFS / Xet uploads ("lfsFile" lines are refused with 400), pull requests (create_pr),
branches and revisions other than main, parent_commit checks, .gitignore rules, file copies, downloads,
repo_info / model_info / listings (preupload sends no remote "oid", so the client never finds a file
unchanged and never asks), whoami, visibility (recorded, not enforced). Every other request is recorded
and answered 404, so a test that asserts on `hub.requests` sees anything unexpected the client asked for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

TOKEN = "hf_loopback_stand_in_not_a_real_token"  # what hub.env() gives the client as HF_TOKEN
REPO_TYPES = ("model", "dataset", "space")
REPO_API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit)/([^/]+)$")


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass
class Commit:
    oid: str
    summary: str
    added: list[str]
    deleted: list[str]


def _key(kind: str, repo_id: str) -> str:
    """How `Hub.repos` and `Hub.commits` name a repo: OWNER/NAME for a model, datasets/OWNER/NAME else."""
    return repo_id if kind == "models" else f"{kind}/{repo_id}"


@dataclass
class Hub:
    """What a running stand-in holds: its URL, every request, the repos and their commits."""

    url: str
    root: Path
    token: str = TOKEN
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path without query)
    repos: dict[str, dict] = field(default_factory=dict)  # repo key (see _key) -> its create_repo payload
    commits: dict[str, list[Commit]] = field(default_factory=dict)  # repo key -> its commits, oldest first
    lock: threading.Lock = field(default_factory=threading.Lock)

    def env(self) -> dict[str, str]:
        """Environment for a client process: this endpoint, the dummy token, online."""
        return {"HF_ENDPOINT": self.url, "HF_TOKEN": self.token, "HF_HUB_OFFLINE": "0",
                "HF_HUB_DISABLE_TELEMETRY": "1"}

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        """Every stored file of a repo, path in repo -> bytes."""
        top = self.root / f"{repo_type}s" / repo_id
        return {p.relative_to(top).as_posix(): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}

    # ------------------------------------------------------------------------------- endpoints

    def create_repo(self, body: dict) -> tuple[int, dict]:
        repo_type = body.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"unknown repo type {repo_type!r}")
        name, owner = body.get("name"), body.get("organization")
        if not owner or not name or "/" in name:
            raise HubError(400, "this stand-in needs an OWNER/NAME repo id (it has no user to default to)")
        kind, repo_id = f"{repo_type}s", f"{owner}/{name}"
        url = self.url + ("" if kind == "models" else f"/{kind}") + f"/{repo_id}"
        with self.lock:
            if _key(kind, repo_id) in self.repos:
                return 409, {"error": "You already created this repo", "url": url}
            self.repos[_key(kind, repo_id)] = body
            self.commits[_key(kind, repo_id)] = []
            (self.root / kind / repo_id).mkdir(parents=True)
        return 200, {"url": url, "name": repo_id}

    def validate_yaml(self, body: dict) -> tuple[int, dict]:
        import yaml

        content = body.get("content", "")
        if not content.startswith("---"):
            return 200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]}
        try:
            meta = yaml.safe_load(content.split("\n---", 1)[0][3:])
        except yaml.YAMLError as e:
            return 400, {"errors": [{"message": f"invalid YAML: {e}"}]}
        if meta is not None and not isinstance(meta, dict):
            return 400, {"errors": [{"message": "metadata must be a mapping"}]}
        return 200, {"errors": [], "warnings": []}

    def _check(self, kind: str, repo_id: str, revision: str) -> None:
        if _key(kind, repo_id) not in self.repos:
            raise HubError(404, f"Repository Not Found: {_key(kind, repo_id)}", "RepoNotFound")
        if unquote(revision) != "main":
            raise HubError(404, f"Invalid rev id: {unquote(revision)} (this stand-in has main only)",
                           "RevisionNotFound")

    def preupload(self, kind: str, repo_id: str, revision: str, body: dict) -> tuple[int, dict]:
        self._check(kind, repo_id, revision)
        return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                               for f in body.get("files", [])]}

    def commit(self, kind: str, repo_id: str, revision: str, lines: list[dict]) -> tuple[int, dict]:
        self._check(kind, repo_id, revision)
        header, added, deleted = {}, {}, []
        for line in lines:
            key, value = line.get("key"), line.get("value") or {}
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"file {value.get('path')!r}: encoding must be base64")
                added[_safe(value.get("path"))] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(_safe(value.get("path", "").rstrip("/")))
            elif key == "lfsFile":
                raise HubError(400, f"lfsFile {value.get('path')!r}: no LFS here (preupload answered regular)")
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        if not header.get("summary"):
            raise HubError(400, "commit header without a summary")
        top = self.root / kind / repo_id
        with self.lock:
            for path in deleted:
                if (top / path).is_dir():
                    shutil.rmtree(top / path)
                else:
                    (top / path).unlink(missing_ok=True)
            for path, data in added.items():
                (top / path).parent.mkdir(parents=True, exist_ok=True)
                (top / path).write_bytes(data)
            history = self.commits[_key(kind, repo_id)]
            digest = hashlib.sha1((history[-1].oid if history else "").encode() + header["summary"].encode())
            for path, data in sorted(added.items()):
                digest.update(path.encode() + hashlib.sha1(data).digest())
            history.append(Commit(digest.hexdigest(), header["summary"], sorted(added), deleted))
        url = self.url + ("" if kind == "models" else f"/{kind}") + f"/{repo_id}/commit/{history[-1].oid}"
        return 200, {"success": True, "commitOid": history[-1].oid, "commitUrl": url, "hookOutput": ""}


def _safe(path: str | None) -> str:
    """A path in the repo that stays inside it."""
    p = PurePosixPath(path or "")
    if not path or p.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise HubError(400, f"invalid path in repo: {path!r}")
    return p.as_posix()


class _Handler(BaseHTTPRequestHandler):
    hub: Hub  # set on the subclass each server makes
    timeout = 30  # a connection that sends nothing is dropped: shutdown never waits on it for long

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def log_message(self, format, *args) -> None:  # requests are in hub.requests; keep test output clean
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                out += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return out
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self) -> None:
        hub = self.hub
        url = urlsplit(self.path)
        with hub.lock:
            hub.requests.append((self.command, url.path))
        code = None
        try:
            status, answer = self._route(hub, url.path, parse_qs(url.query), self._body())
        except HubError as e:
            status, answer, code = e.status, {"error": e.message}, e.code
        except Exception as e:  # a stand-in bug reaches the client as a 500, not as a hang
            status, answer = 500, {"error": f"stand-in failed: {e!r}"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code:
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", answer["error"])
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _route(self, hub: Hub, path: str, query: dict, body: bytes) -> tuple[int, dict]:
        if self.command == "POST" and path == "/api/validate-yaml":
            return hub.validate_yaml(json.loads(body))
        writes = self.command == "POST" and (path == "/api/repos/create" or REPO_API.match(path))
        if writes and self.headers.get("Authorization") != f"Bearer {hub.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        if self.command == "POST" and path == "/api/repos/create":
            return hub.create_repo(json.loads(body))
        if self.command == "POST" and (m := REPO_API.match(path)):
            kind, repo_id, what, revision = m.groups()
            if query.get("create_pr"):
                raise HubError(400, "pull requests are not implemented by this stand-in")
            if what == "preupload":
                return hub.preupload(kind, repo_id, revision, json.loads(body))
            return hub.commit(kind, repo_id, revision, [json.loads(x) for x in body.splitlines() if x.strip()])
        raise HubError(404, f"not implemented by the stand-in: {self.command} {path}")


@contextmanager
def hub_server(root: str | Path) -> Iterator[Hub]:
    """Serve a Hub stand-in on 127.0.0.1 (a free port) storing repos under `root`; yields its `Hub`.
    The server and its thread stop when the block ends."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    handler = type("Handler", (_Handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    hub = Hub(url=f"http://127.0.0.1:{server.server_address[1]}", root=root)
    handler.hub = hub
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                              name="hub-stand-in")
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
