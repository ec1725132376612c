"""Bulk import: JSONL and CSV, rejects with reasons, resuming after an interruption, and
the `journeyman` commands end to end."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path

from journeyman.engine.identity.crypto import load_data_keys
from journeyman.engine.identity.sealing import SEALED, open_fields
from journeyman.engine.ingest.file_import import import_lines, read_lines
from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.event_store import PostgresEventStore

from .helpers import event

CSV = """event_id,type,occurred_at,email,external_id.shop,properties.total,properties.sku
,order.placed,2026-01-01T10:00:00Z,ann@example.com,s-1,12.5,007
,order.placed,2026-01-02T10:00:00Z,not-an-email,,3,
o-3,page.viewed,2026-01-03T10:00:00Z,,s-1,,
"""


async def test_csv_import_converts_columns_and_rejects_with_reasons(
    ingestor: Ingestor, store: PostgresEventStore
) -> None:
    rejected: list[tuple[int, str]] = []
    summary = await import_lines(
        ingestor,
        read_lines(io.StringIO(CSV), "csv"),
        on_reject=lambda line, errors: rejected.append((line.number, errors[0].field)),
    )
    assert (summary.lines, summary.accepted, summary.rejected) == (3, 2, 1)
    assert rejected == [(3, "events[1].member.email")]
    async with store.pool.acquire() as c:
        rows = await c.fetch(
            "SELECT stream_id, event_id, data FROM events ORDER BY global_position"
        )
    # `total` is stored in clear, `sku` sealed under the member's key (still "007" inside).
    assert rows[0]["data"]["total"] == 12.5 and set(rows[0]["data"]) == {"total", SEALED}
    member = rows[0]["stream_id"].removeprefix("member-")
    keys = await load_data_keys(store.pool, ingestor.keyring, [member])
    assert open_fields(rows[0]["data"], keys[member], rows[0]["event_id"]) == {
        "total": 12.5,
        "sku": "007",
    }
    assert rows[0]["stream_id"] == rows[1]["stream_id"]  # email and shop id are one member


async def test_rerun_after_interruption_stores_nothing_twice(
    ingestor: Ingestor, store: PostgresEventStore
) -> None:
    lines = [
        json.dumps(
            {k: v for k, v in event(id=f"m{i % 4}", properties={"n": i}).items() if k != "event_id"}
        )
        for i in range(25)
    ]
    lines.insert(7, "{not json")
    text = "\n".join(lines) + "\n"
    interrupted = await import_lines(
        ingestor, read_lines(io.StringIO(text[: len(text) // 2]), "jsonl"), batch_size=4
    )
    assert interrupted.accepted > 0
    full = await import_lines(ingestor, read_lines(io.StringIO(text), "jsonl"), batch_size=4)
    assert full.duplicates == interrupted.accepted
    assert full.accepted + full.duplicates == 25 and full.rejected == 1
    async with store.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM events") == 25


async def _cli(database_url: str, tmp: Path, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "JOURNEYMAN_DATABASE_URL": database_url,
        "JOURNEYMAN_SECRET_KEY": "cli-secret-" + "z" * 32,
        "JOURNEYMAN_DATA_DIR": str(tmp),
        "COLUMNS": "200",
    }
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "journeyman"),
        *args,
        env=env,
        cwd=tmp,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_ingest_keys_and_rebuild(database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "events.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(event("order.placed", id="c1", properties={"total": 5})) for _ in range(3)
        )
        + "\n"
        + json.dumps(event(phone="12"))
        + "\n"
    )
    code, out, err = await _cli(database_url, tmp_path, "ingest", str(data))
    assert code == 1, err
    assert "3 stored" in out and "1 rejected" in out
    rejects = [
        json.loads(x) for x in (tmp_path / "events.jsonl.rejected.jsonl").read_text().splitlines()
    ]
    assert rejects[0]["line"] == 4 and rejects[0]["errors"][0]["field"] == "member.phone"
    code, out, _ = await _cli(database_url, tmp_path, "ingest", str(data))
    assert "0 stored" in out and "3 already stored" in out
    code, out, err = await _cli(database_url, tmp_path, "keys", "create", "--scope", "read")
    assert code == 0 and out.strip().startswith("jm_"), err
    code, out, err = await _cli(database_url, tmp_path, "projections", "rebuild")
    assert code == 0 and "from 3 events" in out, err
    code, out, err = await _cli(database_url, tmp_path, "projections", "refresh-segments")
    assert code == 0 and "1 members evaluated" in out, err
