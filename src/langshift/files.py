"""Small I/O helpers shared by every stage: atomic writes, JSONL read/append, content hashes.

Outputs are written to a temporary file in the same directory and renamed into place, so a killed
job never leaves a half-written result that a later run would mistake for a finished one. The
temporary name carries the writer's pid (`.NAME.PID.XXXXXXXX[.tmp]`): the next write of NAME removes
the ones whose process is gone (litter of a kill), never one a live process is still filling.
Resumable JSONL outputs are appended line by line; a line torn by a kill is dropped, with a warning,
by the next reader and the next append.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)

log = logging.getLogger("langshift")


class InputError(ValueError):
    """Bad user input, located: `file:line: field 'x': message`."""

    def __init__(self, file: str | os.PathLike, message: str, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field, self.message = str(file), line, field, message
        where = self.file + (f":{line}" if line is not None else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


def cache_dir() -> Path:
    """langshift's own cache (converted models, the reference cache, CTranslate2 models, wheels)."""
    return Path(os.environ.get("LANGSHIFT_CACHE", Path.home() / ".cache" / "langshift"))


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """`path` (given by option `flag`) as a place to write a directory of outputs: refused at once, before
    any work, when it is a file, lies under a file, or is not writable. Creates nothing."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(path, f"{flag} exists and is not a directory")
    _check_writable(path, flag)
    return path


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """`path` (given by option `flag`) as a file to write: refused at once when it is a directory, lies
    under a file, or its directory is not writable. Creates nothing."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(path, f"{flag} is a directory; give a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(path, f"{flag} is read-only")
    _check_writable(path.parent, flag, for_file=path)
    return path


def _check_writable(directory: Path, flag: str, for_file: Path | None = None) -> None:
    """The nearest existing directory at or above `directory` must be a directory we may write in (it
    is where the missing ones, then the outputs, will be created)."""
    target = for_file or directory
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(target, f"{flag}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(target, f"{flag}: cannot write in {existing} (read-only or not ours)")


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give outputs the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path)))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that a killed writer of `path` left next to it; returns what was removed.

    Only our own names (`.NAME.PID.XXXXXXXX` from `atomic_dir`, `.NAME.PID.XXXXXXXX.tmp` from
    `atomic_write_text`; the 8 characters are tempfile's) and only when process PID no longer exists
    on this machine, so a concurrent writer's work in progress is never touched.
    """
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[a-z0-9_]{8}(?:\.tmp)?")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if not found or _pid_alive(int(found.group(1))):
            continue
        stale = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        removed.append(stale)
    if removed:
        log.warning("removed %d temporary file(s) a killed run left next to %s", len(removed), path)
    return removed


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive lock between processes (POSIX `flock` on `path`), e.g. around a one-time build."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one line and flush it: for logs and resumable per-item outputs. A torn last line (a writer
    killed mid-append) is cut off first, so the new line never fuses with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    with open(path, "a+b") as f:
        _cut_torn_tail(f, path)
        f.write(line)
        f.flush()


def drop_torn_tail(path: str | os.PathLike) -> bool:
    """Cut a torn last line (a writer killed mid-append: unterminated, invalid UTF-8 or JSON) off a
    resumable JSONL file, with a warning naming the file; True when something was cut."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "r+b") as f:
        return _cut_torn_tail(f, path)


def _cut_torn_tail(f, path: Path) -> bool:
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return False
    start = _last_line_start(f, end)
    f.seek(start)
    tail = f.read(end - start)
    try:
        whole = not tail.strip() or isinstance(json.loads(tail.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError):
        whole = False
    if whole:
        if not tail.endswith(b"\n"):
            f.write(b"\n")  # a complete object that only lacks its newline
        return False
    f.truncate(start)
    f.seek(start)
    log.warning("%s: dropped an incomplete last line (%d bytes) left by a killed run; it will be redone",
                path, end - start)
    return True


def _last_line_start(f, end: int) -> int:
    """Offset just past the newline that precedes the last line (a final newline belongs to that line)."""
    pos, block = end - 1, 1 << 16  # the byte at end - 1 may be the last line's own newline
    while pos > 0:
        start = max(0, pos - block)
        f.seek(start)
        newline = f.read(pos - start).rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        pos = start
    return 0


def iter_jsonl(path: str | os.PathLike, *, skip_torn_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, object) for each non-blank line; errors name file and line.

    `skip_torn_tail` tolerates an unreadable *last* line (invalid UTF-8 or JSON), which is what a
    process killed mid-append leaves behind in a resumable output file; it is skipped with a warning.
    Never used for user input, where invalid UTF-8 or JSON anywhere is an error naming the line.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, expected a JSONL file")
    # Bytes, split on b"\n" only: str.splitlines() would also split inside a JSON string holding U+2028.
    lines = path.read_bytes().split(b"\n")
    last = max((i for i, raw in enumerate(lines, start=1) if raw.strip()), default=0)
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8-sig" if i == 1 else "utf-8")
            obj = json.loads(text)
        except UnicodeDecodeError as e:
            if skip_torn_tail and i == last:
                log.warning("%s:%d: skipped an incomplete last line left by a killed run", path, i)
                return
            raise InputError(path, f"invalid UTF-8 (byte {e.start + 1} of the line)", line=i) from None
        except json.JSONDecodeError as e:
            if skip_torn_tail and i == last:
                log.warning("%s:%d: skipped an incomplete last line left by a killed run", path, i)
                return
            raise InputError(path, f"invalid JSON ({e.msg} at column {e.colno})", line=i) from None
        if not isinstance(obj, dict):
            raise InputError(path, f"expected a JSON object, got {type(obj).__name__}", line=i)
        yield i, obj


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file; a missing, non-UTF-8 or malformed one is an InputError naming the file (and line)."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, expected a JSON file") from None
    except UnicodeDecodeError as e:
        raise InputError(path, f"invalid UTF-8 (byte {e.start + 1})") from None
    except json.JSONDecodeError as e:
        raise InputError(path, f"invalid JSON ({e.msg} at column {e.colno})", line=e.lineno) from None


def read_jsonl(path: str | os.PathLike, **kw) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path, **kw)]


def stable_hash(*parts: Any, length: int = 16) -> str:
    """sha256 over a canonical JSON of `parts` (dicts key-sorted); used for cache and stage keys."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_hash(path: str | os.PathLike, length: int = 16) -> str:
    h = hashlib.sha256()
    p = Path(path)
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for q in files:
        h.update(str(q.relative_to(p) if p.is_dir() else q.name).encode())
        with open(q, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:length]
