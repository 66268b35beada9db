"""Fixtures for the offline rehearsal: a guard that fails any attempt to reach beyond loopback."""

from __future__ import annotations

import ipaddress
import socket

import pytest

LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}


class NetworkAttempt(AssertionError):
    pass


def _is_local(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX path
        return True
    host = address[0]
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture
def no_network(monkeypatch):
    """Within the test, name resolution and connections to anything but loopback raise NetworkAttempt
    (the llama.cpp judge on 127.0.0.1 stays reachable). Records every attempt in the returned list."""
    attempts: list = []
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guarded(method):
        def call(self, address, *args):
            if not _is_local(address):
                attempts.append(address)
                raise NetworkAttempt(f"network access attempted: {address!r}")
            return method(self, address, *args)

        return call

    def resolve(host, *args, **kwargs):
        if host is not None and str(host) not in LOCAL_NAMES and not _is_local((str(host), 0)):
            attempts.append(host)
            raise NetworkAttempt(f"name resolution attempted: {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return attempts
