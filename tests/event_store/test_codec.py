"""`from_json` reads the store's jsonb text exactly as `json.loads` does."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from journeyman.event_store.codec import from_json

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_json)
def test_same_value_as_json_loads(value: object) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False, indent=1)):
        assert from_json(text) == json.loads(text)
        assert type(from_json(text)) is type(json.loads(text))


@pytest.mark.parametrize(
    "text", [' {"a": 1}', '{"a": 1} ', "1e400", "-0", "1.0", '"\\ud800"', "NaN", "[1, 2]"]
)
def test_edges_match_json_loads(text: str) -> None:
    assert repr(from_json(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "\ufeff{}", "[1,]", "{'a': 1}"])
def test_invalid_text_raises_as_json_loads_does(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        from_json(text)
    assert str(got.value) == str(expected.value)


def test_an_integer_past_the_digit_limit_raises_value_error() -> None:
    """Readers of the store park such a row as undecodable (see `_fetch_events`)."""
    text = '{"n": ' + "9" * 5000 + "}"
    with pytest.raises(ValueError, match="digits"):
        from_json(text)
