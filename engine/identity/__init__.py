"""Identity resolution: aliases (through a blind index) map events to one member id.

Public face: `IdentityResolver` (batch resolution inside an ingest transaction), the alias
types and normalisers, and the contact-point readers the delivery side uses.
"""

from .aliases import (
    CONTACT_KINDS,
    DEVICE_ID,
    EMAIL,
    EXTERNAL_PREFIX,
    PHONE,
    USER_ID,
    Alias,
    Claim,
    PushSubscription,
    normalise_email,
    normalise_phone,
    normalise_system,
)
from .contacts import forget_identity, get_aliases, get_contact_points, resolve_member_id
from .resolver import IdentityResolver, Resolution

__all__ = [
    "CONTACT_KINDS",
    "DEVICE_ID",
    "EMAIL",
    "EXTERNAL_PREFIX",
    "PHONE",
    "USER_ID",
    "Alias",
    "Claim",
    "IdentityResolver",
    "PushSubscription",
    "Resolution",
    "forget_identity",
    "get_aliases",
    "get_contact_points",
    "normalise_email",
    "normalise_phone",
    "normalise_system",
    "resolve_member_id",
]
