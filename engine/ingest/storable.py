"""What the store can hold *and read back*: the checks that keep one bad value out of it.

PostgreSQL and asyncpg accept some values that later cannot be read (a timestamp before
year 1 once in UTC) or refuse others only at the write (a lone surrogate at the COPY, a NUL
in jsonb text). A value that gets in and cannot be read back halts every reader of the
store, so ingestion refuses them, naming the field:

* timestamps: ISO 8601 text with a time zone only (no naive times, no Unix numbers: seconds
  and milliseconds cannot be told apart), inside the range an operator sets
  (`JOURNEYMAN_INGEST_EARLIEST_OCCURRED_AT` .. now + `JOURNEYMAN_INGEST_FUTURE_SKEW_SECONDS`);
* text: no NUL characters, no lone surrogates (`\\ud800` alone is not Unicode text);
* numbers: finite, and integers of at most `MAX_INT_DIGITS` digits (Python's own limit for
  turning text into an int, which every JSON reader of the store goes through).

The walk over a JSON value (`json_problem`) is cheap when nothing is wrong, and callers run
it only where it matters (the event store refuses a bad batch first; see
`journeyman.engine.ingest.ingestor`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300
_MAX_INT_BITS = int(MAX_INT_DIGITS * 3.3219280948873626)  # below 10**MAX_INT_DIGITS
UTC_MIN = dt.datetime.min.replace(tzinfo=dt.UTC)
UTC_MAX = dt.datetime.max.replace(tzinfo=dt.UTC)


class LongInteger:
    """Stands in for an integer literal too long to convert, so a JSON body still parses and
    the refusal can name the field that held it (see `journeyman.engine.api.body.parse_json`)."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __str__(self) -> str:
        return f"<integer of {self.digits} digits>"

    __repr__ = __str__


def _int(text: str) -> int | LongInteger:
    digits = len(text.lstrip("-"))
    return LongInteger(digits) if digits > MAX_INT_DIGITS else int(text)


def loads(text: str | bytes) -> Any:
    """`json.loads`, except that integer literals past `MAX_INT_DIGITS` digits become
    `LongInteger` markers instead of failing the whole text (JSON errors still raise)."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError:
        return json.loads(text, parse_int=_int)


def text_problem(value: str) -> str | None:
    """Why PostgreSQL cannot store `value` as text, or None."""
    if "\x00" in value:
        return "contains a NUL character (\\u0000)"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "contains a lone surrogate (such as \\ud800), which is not Unicode text"
    return None


def _fine(value: Any) -> bool:
    """Fast check: True when nothing in `value` needs a closer look."""
    t = type(value)
    if t is str:
        return "\x00" not in value and (value.isascii() or text_problem(value) is None)
    if t is dict:
        return all(type(k) is str and text_problem(k) is None for k in value) and all(
            _fine(v) for v in value.values()
        )
    if t is list:
        return all(_fine(v) for v in value)
    if t is float:
        return math.isfinite(value)
    if t is int:
        return value.bit_length() < _MAX_INT_BITS or len(str(abs(value))) <= MAX_INT_DIGITS
    return value is None or t is bool


def json_problem(value: Any, path: str) -> tuple[str, str] | None:
    """The first thing in a JSON value the store cannot hold or read back, as (field path,
    reason); None when there is none."""
    if _fine(value):
        return None
    if isinstance(value, str):
        return path, str(text_problem(value))
    if isinstance(value, float):
        return path, "is not a finite number (NaN and infinities cannot be stored)"
    if isinstance(value, LongInteger):
        return path, f"is an integer of {value.digits} digits (at most {MAX_INT_DIGITS})"
    if isinstance(value, int) and not isinstance(value, bool):
        return path, f"is an integer of more than {MAX_INT_DIGITS} digits"
    if isinstance(value, dict):
        for k, v in value.items():
            if type(k) is not str:
                return path, "has a key that is not text"
            problem = text_problem(k)
            if problem:
                return path, f"has a key that {problem}"
            found = json_problem(v, f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = json_problem(v, f"{path}[{i}]")
            if found:
                return found
        return None
    return path, f"holds a {type(value).__name__}, which is not JSON"


def deeper_than(value: Any, limit: int) -> bool:
    """True when arrays/objects in `value` nest more than `limit` levels (readers parse the
    store's JSON recursively: a deep enough value would fail every one of them)."""
    if limit < 0:
        return True
    if type(value) is dict:
        return any(deeper_than(v, limit - 1) for v in value.values())
    if type(value) is list:
        return any(deeper_than(v, limit - 1) for v in value)
    return False


def check_json(value: Any) -> Any:
    """A pydantic after-validator for JSON objects a caller sends (consent evidence)."""
    found = json_problem(value, "")
    if found:
        where, reason = found
        raise ValueError(f"{where.lstrip('.') or 'the value'} {reason}")
    return value


# ------------------------------------------------------------------------------ timestamps
def _no_numbers(value: Any) -> Any:
    if type(value) is str:
        bare = value.strip().lstrip("+-")
        if not bare.replace(".", "", 1).isdigit():
            return value
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return value
    raise ValueError(
        "must be an ISO 8601 date-time with a time zone, e.g. 2026-01-31T09:30:00Z; "
        "Unix timestamps are not accepted (seconds and milliseconds cannot be told apart)"
    )


def _readable(value: dt.datetime) -> dt.datetime:
    if value.year in (1, 9999):  # only these can fall outside years 1..9999 once in UTC
        try:
            value.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError(
                f"{value.isoformat()} is outside the years 1 to 9999 (UTC) the store can hold"
            ) from None
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_no_numbers), AfterValidator(_readable)]
"""An aware date-time given as ISO 8601 text (or a datetime), never a number, and one the
store can read back. Its range against the operator's limits is `time_problem`."""


def time_problem(value: dt.datetime, earliest: dt.datetime, latest: dt.datetime) -> str | None:
    """Why `value` is outside [earliest, latest], or None."""
    if value < earliest:
        return (
            f"{value.isoformat()} is before {earliest.isoformat()}, the earliest accepted "
            "(JOURNEYMAN_INGEST_EARLIEST_OCCURRED_AT)"
        )
    if value > latest:
        return f"{value.isoformat()} is in the future (later than {latest.isoformat()})"
    return None
