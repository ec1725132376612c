"""Email normalisation never lets a look-alike address link to another person.

Each class of look-alike is sent through the real API next to the member of
`kate@example.com`: compatibility characters (Kelvin sign, full-width letters, ligatures)
and invisible characters (zero-width, bidi controls, soft hyphen) are refused with a 422
naming `member.email`; spellings that are truly the same mailbox (ASCII case, an IDNA
domain, a decomposed accent) resolve to one member."""

from __future__ import annotations

import pytest
from journeyman.engine.identity import normalise_email

from tests.ingestion.helpers import event

from .conftest import Api

REFUSED = {
    "kelvin sign": "\u212aate@example.com",
    "full-width local part": "\uff4b\uff41\uff54\uff45@example.com",
    "ligature": "\ufb01ona@example.com",
    "zero-width space": "ka\u200bte@example.com",
    "zero-width joiner": "kate\u200d@example.com",
    "right-to-left override": "\u202ekate@example.com",
    "soft hyphen in the domain": "kate@exam\u00adple.com",
    "no-break space": "kate\u00a0@example.com",
}
SAME_MAILBOX = {
    "ascii case": ("KATE@Example.COM", "kate@example.com"),
    "full-width domain (IDNA)": ("kate@\uff45xample.com", "kate@example.com"),
    "unicode domain (IDNA)": ("kate@b\u00fccher.example", "kate@xn--bcher-kva.example"),
    "decomposed accent (NFC)": ("rene\u0301@example.com", "ren\u00e9@example.com"),
}


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
def test_lookalikes_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="U\\+"):
        normalise_email(value)


@pytest.mark.parametrize(("value", "expected"), SAME_MAILBOX.values(), ids=SAME_MAILBOX.keys())
def test_one_mailbox_one_spelling(value: str, expected: str) -> None:
    assert normalise_email(value) == expected


def test_other_scripts_keep_their_case_and_stay_apart() -> None:
    # Non-ASCII letters are not case-folded: no rule of Unicode casing can make them ASCII.
    assert normalise_email("\u00c4nna@example.com") == "\u00c4nna@example.com"
    assert normalise_email("\u00e4nna@example.com") == "\u00e4nna@example.com"
    # A Cyrillic "a" is another letter: a different mailbox, never linked to the Latin one.
    assert normalise_email("k\u0430te@example.com") != "kate@example.com"


async def test_lookalikes_never_reach_kates_member(api: Api) -> None:
    async with api.client() as c:
        r = await c.post("/v1/events", json={"events": [event(email="kate@example.com")]})
        assert r.status_code == 200, r.text
        kate = r.json()["results"][0]["member_id"]
        for name, value in REFUSED.items():
            r = await c.post("/v1/events", json={"events": [event(email=value)]})
            assert r.status_code == 422, (name, r.text)
            errors = r.json()["results"][0]["errors"]
            assert errors and errors[0]["field"] == "events[0].member.email", (name, errors)
        for name, (value, _) in SAME_MAILBOX.items():
            r = await c.post("/v1/events", json={"events": [event(email=value)]})
            assert r.status_code == 200, (name, r.text)
            member = r.json()["results"][0]["member_id"]
            if name in ("ascii case", "full-width domain (IDNA)"):
                assert member == kate, name
            else:
                assert member != kate, name
    # Nothing refused left a member behind: kate plus the two other mailboxes.
    assert await api.store.pool.fetchval("SELECT count(*) FROM members") == 3
