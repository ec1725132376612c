"""CSV property columns: numbers are read as numbers with the value written, text that only
looks numeric (zip codes, phone numbers) stays text, and a column's type can be declared."""

from __future__ import annotations

import io

import pytest
from journeyman.engine.core.settings import Settings
from journeyman.engine.identity import resolve_member_id
from journeyman.engine.identity.crypto import Keyring
from journeyman.engine.ingest.file_import import (
    derived_event_id,
    import_lines,
    parse_value,
    read_lines,
)
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.engine.profiles import ProfileProjector, get_profile
from journeyman.event_store import PostgresEventStore


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.50", 1.5),
        ("0.10", 0.1),
        ("-3.25", -3.25),
        ("12", 12),
        ("0", 0),
        ("19.999999999999", 19.999999999999),  # 14 significant digits: still exact
        ("true", True),
        ("false", False),
        # text that is not a plain decimal number stays text
        ("007", "007"),
        ("00123", "00123"),
        ("01.5", "01.5"),
        ("+1", "+1"),
        ("1e3", "1e3"),
        ("nan", "nan"),
        ("inf", "inf"),
        (".5", ".5"),
        ("1,5", "1,5"),
        ("True", "True"),
        # a decimal a float would round stays text rather than change value
        ("0.12345678901234567891", "0.12345678901234567891"),
    ],
)
def test_values_are_typed_by_how_they_are_written(text: str, value: object) -> None:
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_declared_types() -> None:
    assert parse_value("12345", "string") == "12345"
    assert parse_value("007", "number") == 7
    assert parse_value("TRUE", "boolean") is True
    with pytest.raises(ValueError, match="not a number"):
        parse_value("12a", "number")
    with pytest.raises(ValueError, match="not an integer"):
        parse_value("1.5", "integer")
    with pytest.raises(ValueError, match="not a number"):
        parse_value("0.12345678901234567891", "number")


ORDERS = """type,occurred_at,member_id,properties.total,properties.zip,properties.qty:integer
order.placed,2026-01-01T10:00:00Z,ann,1.50,00123,1
order.placed,2026-01-02T10:00:00Z,ann,2.25,00123,2
order.placed,2026-01-03T10:00:00Z,ann,0.10,00123,1
order.placed,2026-01-04T10:00:00Z,ann,0.20,00123,1
order.placed,2026-01-05T10:00:00Z,ann,9.99,00123,one
"""


async def test_orders_csv_sums_monetary_value(
    ingestor: Ingestor, store: PostgresEventStore, settings: Settings
) -> None:
    rejected: list[tuple[int, str]] = []
    summary = await import_lines(
        ingestor,
        read_lines(io.StringIO(ORDERS), "csv", {"zip": "string"}),
        on_reject=lambda line, errors: rejected.append((line.number, errors[0].reason)),
    )
    assert (summary.accepted, summary.rejected) == (4, 1)
    assert rejected == [(6, "column properties.qty:integer: 'one' is not an integer")]
    async with store.pool.acquire() as c:
        kinds = await c.fetch(
            "SELECT jsonb_typeof(data->'total') AS t, data->>'total' AS v FROM events "
            "WHERE type = 'order.placed' ORDER BY global_position"
        )
    assert [(r["t"], r["v"]) for r in kinds] == [
        ("number", "1.5"),
        ("number", "2.25"),
        ("number", "0.1"),
        ("number", "0.2"),
    ]
    await ProfileProjector(store, settings).run_until_caught_up()
    ann = await resolve_member_id(store.pool, "ann", Keyring(settings.resolved_secret()))
    profile = await get_profile(store.pool, ann, settings=settings)
    assert profile is not None and profile.order_count == 4
    assert profile.monetary_value == 4.05


def test_header_suffix_and_types_option_and_stable_derived_ids() -> None:
    text = (
        "type,occurred_at,member_id,properties.zip:string,properties.total,properties.phone\n"
        "order.placed,2026-01-01T10:00:00Z,ann,12345,1.50,4155550123\n"
    )
    [line] = read_lines(io.StringIO(text), "csv", {"phone": "string"})
    assert line.event is not None
    assert line.event["properties"] == {"zip": "12345", "total": 1.5, "phone": "4155550123"}
    # The derived id is the one earlier versions gave this line (which read `1.50` as
    # text): importing the file again stores nothing twice.
    [old] = read_lines(io.StringIO(text.replace("properties.zip:string", "properties.zip")), "csv")
    assert old.event is not None and old.event["event_id"] == derived_event_id(
        {
            "type": "order.placed",
            "occurred_at": "2026-01-01T10:00:00Z",
            "member": {"id": "ann"},
            "properties": {"zip": 12345, "total": "1.50", "phone": 4155550123},
        }
    )
