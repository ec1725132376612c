"""Personal fields sealed inside stored events: see `journeyman.engine.identity.sealing`, which
holds them so that every reader (ingestion, the profile projection, the API) can use them without
importing the privacy package."""

from journeyman.engine.identity.sealing import (
    ALWAYS_SEALED,
    SEALED,
    has_sealed,
    is_sealed,
    open_field,
    open_fields,
    personal_names,
    seal_event,
    seal_fields,
)

__all__ = [
    "ALWAYS_SEALED",
    "SEALED",
    "has_sealed",
    "is_sealed",
    "open_field",
    "open_fields",
    "personal_names",
    "seal_event",
    "seal_fields",
]
