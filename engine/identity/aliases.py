"""Alias kinds and their normalisation.

An alias is a value that names a member in a business system: an email address, a phone
number, a device id, or an external id from a named system (`external:shopify`). Two events
name the same member when any normalised alias is equal, so normalisation decides identity,
and it must never let a look-alike link to another person:

- emails: see `normalise_email` (ASCII-only case folding in the local part, IDNA for the
  domain, invisible and compatibility characters refused);
- phones are reduced to E.164 (ASCII digits only);
- user ids, device ids and external ids are compared exactly, as sent.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, NamedTuple

import idna

EMAIL = "email"
PHONE = "phone"
USER_ID = "user_id"
"""The client's own id of the member (`member.id`, Segment's `userId`): an alias like any
other, so the store's member ids stay opaque even when a client uses an email as its id."""
DEVICE_ID = "device_id"
EXTERNAL_PREFIX = "external:"
CONTACT_KINDS = frozenset({EMAIL, PHONE})
"""Alias kinds that are also contact points (a channel can deliver to them)."""

# No whitespace and no control characters (NUL included) anywhere in an address.
EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$"
_EMAIL_RE = re.compile(EMAIL_PATTERN)
_ASCII_EMAIL_RE = re.compile(r"^[!-?A-~]+@[!-?A-~]+\.[!-?A-~]+$")  # printable, no space or @
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
"""Control, format (zero-width, bidi, soft hyphen), surrogate, private-use, unassigned and
space characters: nothing a reader can see."""
_PHONE_STRIP = re.compile(r"[\s\-.()/]")
_E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SYSTEM_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


def normalise_email(value: str) -> str:
    """The address that identifies a mailbox; raises ValueError naming the problem.

    Surrounding whitespace is trimmed. ASCII letters are lowercased everywhere; no other
    character is folded, so `\\u212aate@…` (Kelvin sign) never becomes `kate@…`. The
    local part must not contain invisible characters (zero-width, bidi controls, soft
    hyphen, controls, spaces) nor characters that Unicode compatibility normalisation
    (NFKC) would change (full-width letters, ligatures, the Kelvin and Ohm signs): such an
    address is refused rather than kept as a second, look-alike member. Canonically
    equivalent spellings (a decomposed `é`) are composed (NFC). Other non-ASCII letters keep
    their case, so `Ä` and `ä` name two mailboxes (as RFC 6531 allows). The domain is
    converted to its IDNA A-label (`bücher.example` -> `xn--bcher-kva.example`), which is
    how mail reaches it, so both spellings of one domain are one domain.
    """
    v = value.strip()
    if len(v) > 320:
        raise ValueError("email address is longer than 320 characters")
    if "\x00" in v:
        raise ValueError("email address contains a NUL character")
    if v.isascii():
        # The common case, without Unicode tables: printable ASCII, lowercased.
        if not _ASCII_EMAIL_RE.match(v):
            raise ValueError(f"{value!r} is not an email address (expected name@domain.tld)")
        return v.lower()
    for ch in v:
        if unicodedata.category(ch) in _INVISIBLE:
            raise ValueError(
                f"email address contains an invisible or control character "
                f"(U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')})"
            )
    if not _EMAIL_RE.match(v):
        raise ValueError(f"{value!r} is not an email address (expected name@domain.tld)")
    local, _, domain = v.rpartition("@")
    for ch in local:
        if not ch.isascii() and unicodedata.normalize("NFKC", ch) != ch:
            raise ValueError(
                f"email address contains the look-alike character U+{ord(ch):04X} "
                f"{unicodedata.name(ch, 'unnamed')} (write "
                f"{unicodedata.normalize('NFKC', ch)!r} if that is what is meant)"
            )
    # What is left composes only canonically equivalent sequences (e + U+0301 -> é): the
    # singletons NFC would map (Kelvin, Ohm, Angstrom signs) were refused above.
    local = unicodedata.normalize("NFC", local)
    try:
        ascii_domain = idna.encode(domain, uts46=True, std3_rules=True).decode("ascii")
    except UnicodeError as exc:  # idna.IDNAError and the codec errors it wraps
        raise ValueError(f"email domain {domain!r} is not a valid domain name: {exc}") from None
    return f"{local.translate(_ASCII_LOWER)}@{ascii_domain}"


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
