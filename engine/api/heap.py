"""Keeping the cycle collector off the objects a server process loads at start.

The API process imports its whole stack at start (routes, the channel plugins it reads to
warn about callbacks, their clients): well over 100,000 objects that live as long as the
process. Every full collection of the cycle collector walks all of them, and full
collections keep coming while batches of events are ingested, so each one paused every
request in flight for as long as that walk took. Freezing them once the process is ready
takes them out of every later collection; objects created afterwards are collected as
before, and frozen objects are still freed when their last reference goes.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> int:
    """Collect what start-up left behind, then exempt the survivors from later collections.

    Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
