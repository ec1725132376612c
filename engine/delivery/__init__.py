"""Delivery: the `deliver` activity behind a journey's `send`, and the feedback that comes
back from providers and members.

Public face: `Deliverer` (policies, templates, the never-double-send claim, outcome events,
channel fallback), `DeliverySettings`, `LinkSigner`, `Templates`, `Feedback`, and
`channel_workers` (one Temporal worker per channel task queue, rate-limited by Temporal).
Modules import lazily so that `journeyman.engine.delivery.schema` stays cheap for migrations.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "DeliverySettings": ".config",
    "Deliverer": ".service",
    "Feedback": ".feedback",
    "LinkSigner": ".links",
    "InvalidToken": ".links",
    "Templates": ".templates",
    "TemplateMissing": ".templates",
    "channel_workers": ".workers",
    "deliver_activity": ".workers",
    "quiet_hours_end": ".policies",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(name)
    return getattr(import_module(_EXPORTS[name], __name__), name)
