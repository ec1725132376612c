"""Alias kinds and their normalisation.

An alias is a value that names a member in a business system: an email address, a phone
number, a device id, or an external id from a named system (`external:shopify`). Two events
name the same member when any normalised alias is equal, so normalisation decides identity:
emails are trimmed and lowercased, phones are reduced to E.164.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

EMAIL = "email"
PHONE = "phone"
DEVICE_ID = "device_id"
EXTERNAL_PREFIX = "external:"
CONTACT_KINDS = frozenset({EMAIL, PHONE})
"""Alias kinds that are also contact points (a channel can deliver to them)."""

# No whitespace and no control characters (NUL included) anywhere in an address.
EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$"
_EMAIL_RE = re.compile(EMAIL_PATTERN)
_PHONE_STRIP = re.compile(r"[\s\-.()/]")
_E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SYSTEM_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


def normalise_email(value: str) -> str:
    """Trimmed and lowercased; raises ValueError naming the problem."""
    v = value.strip().lower()
    if len(v) > 320:
        raise ValueError("email address is longer than 320 characters")
    if not _EMAIL_RE.match(v):
        raise ValueError(f"{value!r} is not an email address (expected name@domain.tld)")
    return v


def normalise_phone(value: str) -> str:
    """E.164 (`+` and 7 to 15 digits); spaces, dashes, dots and brackets are dropped; a leading
    `00` counts as `+`. Numbers without a country code are refused: guessing one would merge
    strangers."""
    v = _PHONE_STRIP.sub("", value.strip())
    if v.startswith("00"):
        v = "+" + v[2:]
    if not _E164_RE.match(v):
        raise ValueError(
            f"{value!r} is not an E.164 phone number (expected + and country code, e.g. "
            "+14155550123)"
        )
    return v


def normalise_system(name: str) -> str:
    n = name.strip().lower()
    if not _SYSTEM_RE.match(n):
        raise ValueError(
            f"external id system {name!r} must be 1-64 of a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    return n


class Alias(NamedTuple):
    kind: str
    value: str


class PushSubscription(NamedTuple):
    """A Web Push subscription or an FCM/APNs token; `key` identifies it for dedupe."""

    kind: str
    key: str
    value: dict[str, Any]


class Claim(NamedTuple):
    """What one event says about who its member is (tuples: batches build many)."""

    event_id: str
    member_id: str | None = None
    aliases: tuple[Alias, ...] = ()
    push: tuple[PushSubscription, ...] = ()
    occurred_at: Any = None
    type: str = ""
    seal: bool = False
    """The event carries personal properties: its member needs a data key to seal them."""
