"""Segments: named groups of members computed from their profiles.

A segment is declared as code (`Segment(name, when=..., description=...)`) and registered by
a plugin's `register_segments` hook. Whenever a member starts or stops matching one, the
engine records it in `segment_memberships` and appends `segment.entered` or `segment.exited`
(`{"segment": name}`) to the member's stream, so a journey can start on entry
(`trigger=segment_entry(name)`). Segments are evaluated by the profile projection for every
member an event changed, and hourly for everyone by the scheduled scan (for tests that depend
on time alone: recency, lifecycle stage). See docs/journeys.md, "Segments".

This package's face is small and light (journey modules import it): `Segment`,
`SegmentError`, `registered_segments`. The bookkeeping is in
`journeyman.engine.segments.membership`.
"""

from __future__ import annotations

from .model import Segment, SegmentError

__all__ = ["Segment", "SegmentError", "registered_segments"]


def registered_segments() -> dict[str, Segment]:
    """Segments by name, from built-in and third-party plugins alike."""
    from journeyman.plugins import get_plugin_manager

    return get_plugin_manager(strict=False).segments()
