"""Privacy: erasure (crypto-shredding), export, consent and sealed personal fields.

Public face: `erase_member`, `export_member`, `change_consent` with `ConsentUpdate`, the
double opt-in confirmation (`ConfirmSigner`, `confirm`, `ConsentActivities`), and
`seal_fields` / `open_fields` for personal values stored inside events (from
`journeyman.engine.identity.sealing`, which ingestion uses to seal every event's personal
properties). See docs/privacy.md.
"""

from .consent import (
    CONFIRM_ACTIVITY,
    ConfirmClaims,
    ConfirmLinkRequest,
    ConfirmSigner,
    ConsentActivities,
    ConsentChange,
    ConsentOutcome,
    ConsentUpdate,
    ExpiredConfirmation,
    InvalidConfirmation,
    change_consent,
    confirm,
    double_opt_in_channels,
)
from .erasure import ErasureResult, UnknownMember, erase_member, member_ids_of
from .export import export_member
from .fields import SEALED, open_fields, seal_fields

__all__ = [
    "CONFIRM_ACTIVITY",
    "SEALED",
    "ConfirmClaims",
    "ConfirmLinkRequest",
    "ConfirmSigner",
    "ConsentActivities",
    "ConsentChange",
    "ConsentOutcome",
    "ConsentUpdate",
    "ErasureResult",
    "ExpiredConfirmation",
    "InvalidConfirmation",
    "UnknownMember",
    "change_consent",
    "confirm",
    "double_opt_in_channels",
    "erase_member",
    "export_member",
    "member_ids_of",
    "open_fields",
    "seal_fields",
]
