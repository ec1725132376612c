"""`journeyman ingest` on files far longer than a batch, through the real command and a real
database: every line stored once, an interrupted import finished by running it again, and
the progress bar ending at the file's size."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import sys
from pathlib import Path

import asyncpg

from .helpers import T0, event

# Ten batches of the default size (500), fifty of the size the killed import uses: enough
# for a kill to land midway and for the resumed run to skip what was committed.
LINES = 5_000
KILL_BATCH = 100


def _env(database_url: str, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "JOURNEYMAN_DATABASE_URL": database_url,
        "JOURNEYMAN_SECRET_KEY": "cli-secret-" + "z" * 32,
        "JOURNEYMAN_DATA_DIR": str(tmp),
        "COLUMNS": "200",
    }


async def _start(database_url: str, tmp: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "journeyman"),
        *args,
        env=_env(database_url, tmp),
        cwd=tmp,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _cli(
    database_url: str, tmp: Path, *args: str, stdin: bytes | None = None
) -> tuple[int, str, str]:
    proc = await _start(database_url, tmp, *args)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 300)
    return proc.returncode or 0, out.decode(), err.decode()


async def _imported(database_url: str) -> tuple[int, int]:
    """(events stored by imports, distinct event ids among them)."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM events "
            "WHERE metadata->>'source' = 'import'"
        )
    finally:
        await conn.close()
    return row["n"], row["ids"]


def _jsonl(path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(LINES):
            e = event(
                "order.placed" if i % 10 == 0 else "page.viewed",
                id=f"member-{i % 300}",
                properties={"n": i, "note": "café ☕"},  # multi-byte text: bytes ≠ characters
            )
            if i % 2:  # half the lines rely on the id derived from their content
                del e["event_id"]
            f.write(json.dumps(e, ensure_ascii=False) + "\n")


def _csv(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["type", "occurred_at", "member_id", "properties.total", "properties.note"])
        for i in range(LINES):
            # a quoted value spanning two lines: one event, two lines of the file
            note = "line one\nline two" if i == 7 else f"n{i}"
            w.writerow(["order.placed", T0.isoformat(), f"member-{i % 300}", f"{i}.50", note])


def _assert_bar_full(err: str) -> None:
    assert "100%" in err, err
    assert f"{LINES:,} lines" in err, err


async def test_jsonl_longer_than_a_batch_is_stored_once_and_resumes_after_a_kill(
    database_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "events.jsonl"
    _jsonl(data)
    # An import killed midway (after some batches committed) ...
    proc = await _start(
        database_url, tmp_path, "ingest", str(data), "--batch-size", str(KILL_BATCH)
    )
    for _ in range(600):
        if (await _imported(database_url))[0] >= 1_000:
            break
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    await proc.communicate()
    first, ids = await _imported(database_url)
    assert 1_000 <= first < LINES and first == ids
    # ... is finished by running it again: nothing stored twice, the bar reaches the end.
    code, out, err = await _cli(database_url, tmp_path, "ingest", str(data))
    assert code == 0, err
    assert f"{LINES} lines: {LINES - first} stored, {first} already stored, 0 rejected" in out
    _assert_bar_full(err)
    assert await _imported(database_url) == (LINES, LINES)
    # Once more: everything is already there.
    code, out, err = await _cli(database_url, tmp_path, "ingest", str(data))
    assert code == 0, err
    assert f"0 stored, {LINES} already stored" in out
    _assert_bar_full(err)
    assert await _imported(database_url) == (LINES, LINES)


async def test_csv_longer_than_a_batch_resumes_from_a_truncated_copy(
    database_url: str, tmp_path: Path
) -> None:
    full = tmp_path / "orders.csv"
    _csv(full)
    # The first part of the file, cut inside a line (a copy interrupted mid-transfer).
    part = tmp_path / "part.csv"
    raw = full.read_bytes()
    part.write_bytes(raw[: len(raw) * 2 // 5])
    code, out, err = await _cli(database_url, tmp_path, "ingest", str(part))
    assert code == 1 and "1 rejected" in out, (out, err)  # the cut line
    first, _ = await _imported(database_url)
    assert first > 2 * 500
    code, out, err = await _cli(database_url, tmp_path, "ingest", str(full))
    assert code == 0, err
    assert f"{LINES} lines: {LINES - first} stored, {first} already stored" in out
    _assert_bar_full(err)
    assert await _imported(database_url) == (LINES, LINES)
    # From stdin the size is unknown beforehand; the bar still ends full.
    code, out, err = await _cli(database_url, tmp_path, "ingest", "-", "--format", "csv", stdin=raw)
    assert code == 0 and f"0 stored, {LINES} already stored" in out, err
    _assert_bar_full(err)


async def test_a_line_that_is_not_utf8_stops_with_its_number(
    database_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "bad.jsonl"
    good = [json.dumps(event(id="m1")).encode() for _ in range(4)]
    data.write_bytes(b"\n".join([*good[:2], b'{"type": "\xff"}', *good[2:]]) + b"\n")
    code, _, err = await _cli(database_url, tmp_path, "ingest", str(data), "--batch-size", "1")
    assert code == 2 and "line 3 is not UTF-8" in err, err
    assert (await _imported(database_url))[0] == 2


def test_text_lines_count_bytes() -> None:
    from journeyman.engine.ingest.file_import import TextLines

    raw = "\ufeffa,b\né\r\nc\rd\re\r".encode()
    lines = TextLines(io.BytesIO(raw))
    assert list(lines) == ["a,b\n", "é\r\n", "c\r", "d\r", "e\r"]
    assert lines.position == len(raw)


async def test_column_types_from_the_command_line(database_url: str, tmp_path: Path) -> None:
    from journeyman.engine.core.settings import Settings
    from journeyman.engine.identity.crypto import load_data_keys
    from journeyman.engine.identity.sealing import open_fields
    from journeyman.engine.ingest.ingestor import Ingestor
    from journeyman.event_store import PostgresEventStore
    from pydantic import SecretStr

    data = tmp_path / "orders.csv"
    data.write_text(
        "type,occurred_at,member_id,properties.zip,properties.total\n"
        f"order.placed,{T0.isoformat()},m1,12345,1.50\n"
    )
    code, _, err = await _cli(database_url, tmp_path, "ingest", str(data), "--type", "zip=text")
    assert code == 2 and "--type 'zip=text'" in err, err
    code, out, err = await _cli(database_url, tmp_path, "ingest", str(data), "--type", "zip=string")
    assert code == 0 and "1 stored" in out, err
    store = await PostgresEventStore.connect(database_url, min_size=1, max_size=2)
    try:
        settings = Settings(
            secret_key=SecretStr(_env(database_url, tmp_path)["JOURNEYMAN_SECRET_KEY"])
        )
        [stored], _ = await store.read_all(types=["order.placed"])
        member = stored.stream_id.removeprefix("member-")
        keys = await load_data_keys(store.pool, Ingestor(store, settings).keyring, [member])
        assert open_fields(stored.data, keys[member], stored.event_id) == {
            "zip": "12345",
            "total": 1.5,
        }
    finally:
        await store.close()
