"""What a segment is: a name and a test of the member profile."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from journeyman.engine.contracts.profile import MemberProfile

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")


class SegmentError(ValueError):
    """A segment was declared wrongly (a bad name, a test that is not callable)."""


@dataclass(frozen=True)
class Segment:
    """A named group of members, defined by a test of the member profile.

    `when` receives the `MemberProfile` as `get_profile` presents it (RFM scores and lifecycle
    stage computed as of the evaluation) and returns whether the member belongs. It must be
    a pure function of the profile: it runs inside the profile projection's transaction, for
    every changed member, and again for every member at each periodic refresh. Merged and
    erased members belong to no segment; `when` is not called for them.

        vip = Segment(
            "vip",
            when=lambda p: (p.recency_score or 0) >= 4 and (p.monetary_score or 0) >= 4,
            description="Recent, high-value customers.",
        )

    Names are lowercase: letters, digits, `_`, `.` and `-`, up to 100 characters.
    """

    name: str
    when: Callable[[MemberProfile], bool]
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise SegmentError(
                f"segment name {self.name!r} is not valid: use lowercase letters, digits, "
                "'_', '.' and '-' (up to 100 characters), starting with a letter or digit"
            )
        if not callable(self.when):
            raise SegmentError(
                f"segment {self.name!r}: `when` must be a callable taking a MemberProfile, "
                f"not {type(self.when).__name__}"
            )

    def matches(self, profile: MemberProfile) -> bool:
        """Whether the member with this profile belongs to the segment."""
        return bool(self.when(profile))
