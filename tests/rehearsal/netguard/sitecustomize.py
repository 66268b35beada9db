"""A network guard that a Python process installs at start-up, so that the processes a run starts (stage
children of `jobs: N`, `accelerate launch` workers) are guarded like the test's own.

Python imports `sitecustomize` from sys.path when it starts; the `no_network` fixture puts this folder on
the PYTHONPATH that child processes inherit, and names a log in LANGSHIFT_NETGUARD_LOG. Name resolution
and connections to anything but loopback raise NetworkAttempt and are appended to that log (one JSON line
per attempt, with the process id), since a child's exception may be caught and its output lost.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket

LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
LOG_ENV = "LANGSHIFT_NETGUARD_LOG"


class NetworkAttempt(AssertionError):
    pass


def is_local(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX path
        return True
    host = address[0]
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def install(record, setattr=setattr) -> None:
    """Guard socket.connect, connect_ex and getaddrinfo; `record(what)` is called on each attempt.
    `setattr` may be pytest's monkeypatch.setattr, so that the guard is undone after a test."""
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guarded(method):
        def call(self, address, *args):
            if not is_local(address):
                record(address)
                raise NetworkAttempt(f"network access attempted: {address!r}")
            return method(self, address, *args)

        return call

    def resolve(host, *args, **kwargs):
        if host is not None and str(host) not in LOCAL_NAMES and not is_local((str(host), 0)):
            record(host)
            raise NetworkAttempt(f"name resolution attempted: {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    setattr(socket.socket, "connect", guarded(connect))
    setattr(socket.socket, "connect_ex", guarded(connect_ex))
    setattr(socket, "getaddrinfo", resolve)


def log_to(path: str):
    def record(what) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"pid": os.getpid(), "attempt": repr(what)}) + "\n")

    return record


if os.environ.get(LOG_ENV):
    install(log_to(os.environ[LOG_ENV]))
