"""The store's own member ids: how the engine mints them, and how to tell one apart.

A minted id is a random UUID version 4 in 32 lowercase hex digits. Members created before
ids became opaque (migration `0008`) carry the client's id instead, often an email or a
phone number; `journeyman members rekey` gives them a minted id
(`journeyman.engine.identity.rekey`).
"""

from __future__ import annotations

import re
import uuid

_MINTED = re.compile(r"^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$")


def new_member_id() -> str:
    """A fresh opaque member id."""
    return uuid.uuid4().hex


def is_minted(member_id: str) -> bool:
    """True for an id of the shape `new_member_id` gives. A client id of that shape (a
    random UUID the client chose) reveals nothing either, so it counts as opaque."""
    return _MINTED.match(member_id) is not None


MINTED_SQL = "^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$"
"""The same test as a PostgreSQL regular expression (`member_id ~ MINTED_SQL`)."""
