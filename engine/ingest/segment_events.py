"""The event types the Segment-compatible endpoints give Segment's spec names. Kept apart from
the endpoints so that the journey checks can read them without loading the API."""

from __future__ import annotations

SEGMENT_EVENTS = {
    "order completed": "order.placed",
    "order refunded": "order.refunded",
    "product viewed": "product.viewed",
    "product added": "cart.updated",
    "product removed": "cart.updated",
    "cart viewed": "cart.viewed",
    "checkout started": "checkout.started",
    "signed up": "member.registered",
    "application opened": "app.opened",
    "application installed": "app.installed",
}
"""Segment e-commerce / lifecycle spec names with a Journeyman equivalent."""


def mapped_event_types() -> frozenset[str]:
    """Every event type the Segment-compatible endpoints produce by name (a `track` of any
    other name keeps its own, normalised)."""
    calls = {"member.identified", "member.grouped", "page.viewed", "screen.viewed"}
    return frozenset(SEGMENT_EVENTS.values()) | calls
