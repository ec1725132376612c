"""The names and advisory locks of the store's readers, apart from the readers themselves:
what must wait for one (a segment refresh, a recomputation of due moments, re-keying member
ids) or address its dead letters says so without importing it."""

PROFILES = "member_profiles"
"""The profile projection's subscription (checkpoint and dead letters) name."""

PROFILES_LOCK = 0x4A4D5F50524F46  # "JM_PROF"
"""Held while a profile batch is folded, so nothing interleaves with one."""

JOURNEY_STATS = "journey_stats"
"""The journey analytics projection's subscription name."""

JOURNEY_STATS_LOCK = 0x4A4D5F4A53544154  # "JM_JSTAT"
"""Held while an analytics batch is folded."""

DISPATCHER = "journey-dispatcher"
"""The dispatcher's subscription name (one checkpoint per partition)."""
