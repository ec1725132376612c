"""The fold's promises that let the projector skip work: which events' data it reads, and
the row it stores (one array per column)."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from journeyman.engine.profiles.fold import COLUMNS, READS_DATA, ProfileRow, apply
from journeyman.event_store import RecordedEvent

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ACTIVITY = frozenset({"page.viewed", "order.placed"})
# Every key any branch of the fold looks at, with values each branch accepts.
DATA = {
    "total": 12.5,
    "channel": "sms",
    "purpose": "marketing",
    "granted": True,
    "reason": "stop",
    "bounce_type": "hard",
    "timezone": "Europe/Paris",
    "locale": "fr-FR",
    "consent": {"email:marketing": True},
    "traits": {"plan": "gold"},
    "group_id": "acme",
    "survivor": "m",
    "merged": "other",
}
TYPES = sorted(
    READS_DATA
    | {"member.erased", "page.viewed", "cart.updated", "journey.entered", "segment.entered"}
    | {"message.sent", "app.opened", "custom.thing"}
)


def _event(type_: str, data: dict, position: int) -> RecordedEvent:
    return RecordedEvent(position, 1, "member-m", position, f"e{position}", type_, data, {}, T0, T0)


def _folded(types: list[str], blank: frozenset[str]) -> ProfileRow:
    row = ProfileRow("m")
    for i, t in enumerate(types, 1):
        apply(row, _event(t, {} if t in blank else dict(DATA), i), ACTIVITY)
    return row


@given(st.lists(st.sampled_from(TYPES), max_size=12))
def test_only_the_types_in_reads_data_fold_from_their_data(types: list[str]) -> None:
    """The projector opens sealed properties only for `READS_DATA`: an event of any other
    type must fold the same whatever its data holds."""
    others = frozenset(TYPES) - READS_DATA
    assert _folded(types, others) == _folded(types, frozenset())


def test_a_type_left_out_of_reads_data_would_be_caught() -> None:
    assert _folded(["order.placed"], frozenset({"order.placed"})) != _folded(
        ["order.placed"], frozenset()
    )


def test_to_record_gives_every_column_in_order() -> None:
    row = _folded(["member.identified", "order.placed", "message.bounced"], frozenset())
    record = row.to_record()
    assert len(record) == len(COLUMNS)
    for name, value in zip(COLUMNS, record, strict=True):
        if name in ("consent", "suppressed", "traits"):
            assert isinstance(value, str) and value.startswith("{")
        else:
            assert value == getattr(row, name), name
    assert record[COLUMNS.index("traits")] == '{"plan": "gold"}'


def test_to_record_refuses_a_monetary_value_that_is_not_finite() -> None:
    row = ProfileRow("m", monetary_value=math.inf)
    with pytest.raises(ValueError, match="not finite"):
        row.to_record()


async def test_the_upsert_arrays_have_the_table_column_types(store) -> None:  # type: ignore[no-untyped-def]
    """The projector writes one typed array per column: they must be the table's."""
    from journeyman.engine.profiles.projector import _SQL_TYPES

    async with store.pool.acquire() as c:
        rows = await c.fetch(
            "SELECT column_name, udt_name FROM information_schema.columns "
            "WHERE table_name = 'member_profiles'"
        )
    assert {r["column_name"]: r["udt_name"] for r in rows} == _SQL_TYPES
    assert tuple(_SQL_TYPES) == COLUMNS
