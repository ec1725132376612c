"""Property tests on the untrusted shapes the API accepts: the event envelope and Segment
calls. Whatever arrives, validation answers a model or field errors (never another
exception), a valid envelope round-trips, and a contact point never lands in properties."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journeyman.engine.api.segment import event_type, to_event
from journeyman.engine.ingest.ingestor import EVENT_ADAPTER
from journeyman.engine.ingest.models import EVENT_TYPE_PATTERN, FieldError, field_errors
from pydantic import ValidationError

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
anything = json_values | st.binary().map(lambda b: b.decode("latin-1"))
ids = st.from_regex(r"\A[A-Za-z0-9_.:@-]{1,40}\Z")
types = st.from_regex(r"\A[a-z][a-z0-9_]{0,10}(\.[a-z][a-z0-9_]{0,10}){1,2}\Z")
aware = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(dt.UTC)
)
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _validate(raw: Any) -> Any:
    try:
        return EVENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        errors = field_errors(exc, "events[0]")
        assert errors and all(isinstance(e, FieldError) and e.field for e in errors)
        return None


@FAST
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "event_id": anything,
            "type": anything,
            "member": anything
            | st.fixed_dictionaries(
                {}, optional={"id": anything, "email": anything, "phone": anything}
            ),
            "occurred_at": anything,
            "properties": anything,
            "extra": anything,
        },
    )
)
def test_any_envelope_is_a_model_or_field_errors(raw: dict[str, Any]) -> None:
    _validate(raw)


@FAST
@given(
    event_id=ids,
    type_=types,
    member_id=ids,
    at=aware,
    properties=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=5),
)
def test_valid_envelopes_round_trip(
    event_id: str, type_: str, member_id: str, at: dt.datetime, properties: dict[str, Any]
) -> None:
    raw = {
        "event_id": event_id,
        "type": type_,
        "member": {"id": member_id},
        "occurred_at": at.isoformat(),
        "properties": properties,
    }
    model = _validate(raw)
    if model is None:  # e.g. a property value the store cannot hold (NUL in text)
        return
    again = EVENT_ADAPTER.validate_python(model.model_dump(mode="json"))
    assert again == model
    assert again.occurred_at == at and again.type == type_


segment_calls = st.fixed_dictionaries(
    {},
    optional={
        "userId": anything,
        "anonymousId": anything,
        "messageId": anything,
        "event": anything | st.text(max_size=30),
        "name": anything,
        "timestamp": anything | aware.map(lambda d: d.isoformat()),
        "properties": anything,
        "traits": st.fixed_dictionaries(
            {},
            optional={"email": st.emails() | anything, "phone": anything, "first_name": anything},
        )
        | anything,
        "context": anything
        | st.fixed_dictionaries({"traits": st.fixed_dictionaries({"email": st.emails()})}),
    },
)


@FAST
@given(segment_calls, st.sampled_from(["track", "identify", "page", "screen"]))
def test_segment_calls_map_to_events_or_errors(call: dict[str, Any], kind: str) -> None:
    mapped = to_event(call, kind, NOW)
    if isinstance(mapped, list):
        assert mapped and all(isinstance(e, FieldError) for e in mapped)
        return
    model = _validate(mapped)
    if model is None:
        return
    # contact points go to `member` (encrypted there), never into stored properties
    traits = call.get("traits") if isinstance(call.get("traits"), dict) else {}
    email = traits.get("email")
    flat = repr(model.properties)
    if isinstance(email, str) and email:
        assert email not in flat or email in repr(call.get("properties"))


@FAST
@given(st.text(max_size=60))
def test_segment_event_names_become_valid_types(name: str) -> None:
    import re

    assert re.match(EVENT_TYPE_PATTERN, event_type(name)) or not name.strip()
