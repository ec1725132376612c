"""An outage is never the event's fault: it is not counted towards parking an event."""

from __future__ import annotations

import asyncpg
import pytest
from journeyman.engine.core.parking import Attempts, is_transient
from temporalio.service import RPCError, RPCStatusCode


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.SerializationError("could not serialize access"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b""),
        RPCError("deadline", RPCStatusCode.DEADLINE_EXCEEDED, b""),
    ],
)
def test_outages_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        RPCError("workflow id too long", RPCStatusCode.INVALID_ARGUMENT, b""),
        asyncpg.InvalidTextRepresentationError("invalid input syntax for type json"),
        ValueError("bad"),
        KeyError("x"),
        FileNotFoundError("a template"),
    ],
)
def test_failures_of_the_event_count(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_attempts_count_per_event() -> None:
    attempts = Attempts(3)
    assert attempts.fail(7)[0] == 1 and attempts.fail(7)[0] == 2
    first = attempts.fail(8)[1]
    assert not attempts.exhausted(7)
    n, at = attempts.fail(7)
    assert n == 3 and attempts.exhausted(7) and at <= first
    attempts.clear(7)
    assert not attempts.exhausted(7) and attempts.fail(7)[0] == 1
