"""Fixtures for channel tests: real protocol peers on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dead_port() -> int:
    return closed_port()
