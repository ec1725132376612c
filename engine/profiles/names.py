"""The profile projection's names, apart from the projector so that what must wait for it
(segment refreshes, inactivity recomputation, re-keying) can say so without importing it."""

NAME = "member_profiles"
"""Its subscription (checkpoint and dead letters) name."""

LOCK = 0x4A4D5F50524F46  # "JM_PROF"
"""Its advisory lock: held while a batch is folded, so nothing interleaves with one."""
