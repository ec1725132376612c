"""Export: everything known about a member, over the API and the CLI, as JSON."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from journeyman.engine.identity import get_contact_points
from journeyman.engine.identity.crypto import Keyring
from journeyman.engine.profiles import get_profile

from .conftest import SECRET, Api
from .test_erasure import EMAIL, IP, PHONE, seed_member


async def test_export_round_trips(api: Api, database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mid = await seed_member(api, "m-export")
    await api.store.pool.execute(
        "INSERT INTO segment_memberships (segment, member_id, entered_at) "
        "VALUES ('vip', $1, now())",
        mid,
    )
    async with api.client("admin") as c:
        r = await c.get("/v1/members/m-export/export")
        assert r.status_code == 200, r.text
        data = r.json()
        async with api.client("read") as reader:
            assert (await reader.get("/v1/members/m-export/export")).status_code == 403
        assert (await c.get("/v1/members/nobody/export")).status_code == 404

    # Everything the engine holds comes back, in plain values that equal the sources.
    stream = await api.store.read_stream(f"member-{mid}", 0)
    assert [e["event_id"] for e in data["events"]] == [e.event_id for e in stream]
    assert [e["type"] for e in data["events"]] == [e.type for e in stream]
    consent = next(e for e in data["events"] if e["type"] == "member.consent_changed")
    assert consent["data"]["evidence"] == {"ip": IP, "form": "footer"}  # decrypted
    contacts = await get_contact_points(api.store.pool, mid, keyring=Keyring(SECRET.encode()))
    assert data["contact_points"] == {k: v for k, v in contacts.items() if k != "member_id"}
    assert data["contact_points"]["email"] == EMAIL and data["contact_points"]["phone"] == PHONE
    assert data["aliases"] == {"email": [EMAIL], "phone": [PHONE], "user_id": ["m-export"]}
    profile = await get_profile(api.store.pool, mid)
    assert profile is not None
    exported = dict(data["profile"])
    expected = profile.model_dump(mode="json")
    for time_dependent in ("recency_score", "lifecycle_stage"):
        exported.pop(time_dependent), expected.pop(time_dependent)
    assert exported == expected
    assert exported["consent"] == {"sms:marketing": True}
    assert data["member_id"] == mid and data["erased"] is False
    assert [m["segment"] for m in data["segments"]] == ["vip"]
    assert json.loads(json.dumps(data)) == data

    # The CLI gives the same document.
    out = tmp_path / "export.json"
    env = {
        **os.environ,
        "JOURNEYMAN_DATABASE_URL": database_url,
        "JOURNEYMAN_SECRET_KEY": SECRET,
        "JOURNEYMAN_DATA_DIR": str(tmp_path),
    }
    env.pop("JOURNEYMAN_TEMPORAL_ADDRESS", None)
    done = await asyncio.to_thread(
        subprocess.run,
        [
            str(Path(sys.executable).parent / "journeyman"),
            "members",
            "export",
            "m-export",
            "-o",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    from_cli = json.loads(out.read_text())
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    for doc in (from_cli, data):
        doc.pop("exported_at")
        doc["profile"].pop("recency_score"), doc["profile"].pop("lifecycle_stage")
    assert from_cli == data

    # After erasure the export still answers, with nothing personal left in it.
    async with api.client("admin") as c:
        assert (await c.delete("/v1/members/m-export")).status_code == 200
        after = (await c.get("/v1/members/m-export/export")).json()
    text = json.dumps(after)
    assert EMAIL not in text and PHONE not in text and IP not in text and "m-export" not in text
    assert after["erased"] is True and after["aliases"] == {}
    assert after["profile"]["order_count"] == 2
    consent = next(e for e in after["events"] if e["type"] == "member.consent_changed")
    assert consent["data"]["evidence"] is None
