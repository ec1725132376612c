"""Decoding the store's jsonb columns: `json.loads`, less its per-call overhead.

Every event read carries two jsonb values (data and metadata), usually small, and for small
values most of `json.loads` is Python around the C scanner (type checks, a new decode call,
two whitespace regex matches). PostgreSQL prints jsonb as exactly one value with no
surrounding whitespace, so `from_json` calls CPython's C scanner directly and hands anything
else (an error, trailing text, another interpreter) to `json.loads`. The parse is the very
same: integers through `int()` and its digit limit (a `ValueError`, as with `json.loads`),
floats through `float()`, the same recursion limit.
"""

from __future__ import annotations

import json
from json.scanner import c_make_scanner  # type: ignore[attr-defined]
from typing import Any

_scan = c_make_scanner(json.JSONDecoder()) if c_make_scanner is not None else None


def from_json(text: str) -> Any:
    """`json.loads(text)` for a str, faster for the small values events carry."""
    if _scan is not None:
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            pass  # not a JSON value at all: json.loads raises the proper error
        else:
            if end == len(text):
                return value
    return json.loads(text)
