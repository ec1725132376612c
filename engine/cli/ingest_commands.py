"""`journeyman ingest FILE`, `journeyman keys …`, `journeyman projections rebuild`,
`journeyman projections refresh-segments` and `journeyman api`."""

from __future__ import annotations

import enum
import json
import sys
import time
from pathlib import Path
from typing import IO

import typer

from .common import console, db_url, err_console, run, settings

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
projections_app = typer.Typer(help="Projections: rebuild from the event store.")


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("api")(api)
    app.add_typer(keys_app, name="keys")
    app.add_typer(projections_app, name="projections")


def ingest(
    file: str = typer.Argument(..., help="A .jsonl/.ndjson or .csv file, or - for stdin."),
    fmt: str = typer.Option("auto", "--format", help="jsonl, csv, or auto (by extension)."),
    batch_size: int = typer.Option(500, help="Events per transaction."),
    rejects: Path | None = typer.Option(
        None, help="Where rejected lines go (default: FILE.rejected.jsonl)."
    ),
    column_type: list[str] = typer.Option(
        [],
        "--type",
        help="CSV: the type of a property column, NAME=string|number|integer|boolean|auto "
        "(repeatable), e.g. --type zip=string.",
    ),
) -> None:
    """Import events in bulk. Safe to re-run: events already stored are not stored twice."""
    from journeyman.engine.ingest.file_import import COLUMN_TYPES

    if fmt == "auto":
        fmt = "csv" if file.lower().endswith(".csv") else "jsonl"
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("--format must be jsonl, csv or auto")
    if batch_size < 1:
        raise typer.BadParameter("--batch-size must be at least 1")
    types: dict[str, str] = {}
    for entry in column_type:
        name, sep, kind = entry.partition("=")
        if not sep or not name or kind not in COLUMN_TYPES:
            raise typer.BadParameter(
                f"--type {entry!r}: expected NAME=TYPE with TYPE one of {', '.join(COLUMN_TYPES)}"
            )
        types[name.removeprefix("properties.")] = kind
    rejects_path = rejects or Path("rejected.jsonl" if file == "-" else f"{file}.rejected.jsonl")
    if file == "-":
        stream: IO[bytes] = sys.stdin.buffer
        total = None
    else:
        path = Path(file)
        if not path.is_file():
            raise typer.BadParameter(f"{file} is not a file")
        stream = path.open("rb")
        total = path.stat().st_size
    summary = run(_ingest(stream, fmt, batch_size, rejects_path, total, types))
    console.print(
        f"[bold]{summary['lines']}[/bold] lines: [green]{summary['accepted']} stored[/green], "
        f"{summary['duplicates']} already stored, [red]{summary['rejected']} rejected[/red] "
        f"in {summary['seconds']:.1f} s ({summary['rate']:,.0f} lines/s)"
    )
    if summary["rejected"]:
        err_console.print(f"rejected lines and reasons: {rejects_path}")
        raise typer.Exit(1)


async def _ingest(
    stream: IO[bytes],
    fmt: str,
    batch_size: int,
    rejects_path: Path,
    total: int | None,
    types: dict[str, str],
) -> dict[str, float]:
    from journeyman.engine.ingest.file_import import (
        Line,
        LineTextError,
        TextLines,
        import_lines,
        read_lines,
    )
    from journeyman.engine.ingest.ingestor import Ingestor
    from journeyman.engine.ingest.models import FieldError
    from journeyman.event_store import PostgresEventStore
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    store = await PostgresEventStore.connect(db_url(), min_size=1, max_size=4)
    rejects_file: IO[str] | None = None

    def on_reject(line: Line, errors: list[FieldError]) -> None:
        nonlocal rejects_file
        if rejects_file is None:
            rejects_file = rejects_path.open("w", encoding="utf-8")
        reasons = [
            {
                "field": e.field.split("].", 1)[-1] if e.field.startswith("events[") else e.field,
                "reason": e.reason,
            }
            for e in errors
        ]
        rejects_file.write(
            json.dumps({"line": line.number, "errors": reasons, "raw": line.text.rstrip("\n")})
            + "\n"
        )

    # Progress counts the bytes read (a text file read line by line cannot `tell()`).
    text = TextLines(stream)
    started = time.perf_counter()
    try:
        with Progress(
            TextColumn("[bold]importing"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[lines]:,} lines"),
            TimeRemainingColumn(),
            console=err_console,
        ) as progress:
            task = progress.add_task("import", total=total, lines=0)

            def on_batch(batch: list[Line], summary: object) -> None:
                progress.update(task, completed=text.position, lines=summary.lines)  # type: ignore[attr-defined]

            try:
                summary = await import_lines(
                    Ingestor(store, settings()),
                    read_lines(text, fmt, types),
                    batch_size=batch_size,
                    on_batch=on_batch,
                    on_reject=on_reject,
                )
            except LineTextError as exc:
                err_console.print(
                    f"stopped: {exc}. Batches before it are stored; fix the line and run "
                    "again (what is stored is not stored twice)."
                )
                raise typer.Exit(2) from None
            # The whole input was read: the bar ends full (stdin's size is known only now).
            progress.update(task, total=text.position, completed=text.position)
    finally:
        await store.close()
        if rejects_file is not None:
            rejects_file.close()
        if stream is not sys.stdin.buffer:
            stream.close()
    seconds = time.perf_counter() - started
    return {
        "lines": summary.lines,
        "accepted": summary.accepted,
        "duplicates": summary.duplicates,
        "rejected": summary.rejected,
        "seconds": seconds,
        "rate": summary.lines / seconds if seconds else 0.0,
    }


@keys_app.command("create")
def keys_create(
    scope: list[str] = typer.Option(..., help="ingest, read or admin (repeatable)."),
    name: str = typer.Option("", help="What the key is for."),
) -> None:
    """Create an API key and print its token (shown only once)."""
    from journeyman.engine.access.keys import create_key, parse_scopes

    try:
        parse_scopes(scope)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc

    async def go() -> str:
        import asyncpg

        conn = await asyncpg.connect(db_url())
        try:
            token, _ = await create_key(conn, scope, name)
        finally:
            await conn.close()
        return token

    token = run(go())
    err_console.print(f"key created with scopes {', '.join(sorted(set(scope)))}; store it now:")
    print(token)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (ids, names, scopes; never the tokens)."""
    from journeyman.engine.access.keys import list_keys
    from rich.table import Table

    async def go():  # type: ignore[no-untyped-def]
        import asyncpg

        conn = await asyncpg.connect(db_url())
        try:
            return await list_keys(conn)
        finally:
            await conn.close()

    table = Table("key id", "name", "scopes", "created", "revoked")
    for r in run(go()):
        table.add_row(
            r["key_id"],
            r["name"],
            ",".join(r["scopes"]),
            f"{r['created_at']:%Y-%m-%d %H:%M}",
            f"{r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key id (jm_<key id>_…).")) -> None:
    """Revoke an API key (it stops working within seconds)."""
    from journeyman.engine.access.keys import revoke_key

    async def go() -> bool:
        import asyncpg

        conn = await asyncpg.connect(db_url())
        try:
            return await revoke_key(conn, key_id)
        finally:
            await conn.close()

    if not run(go()):
        err_console.print(f"no active key {key_id}")
        raise typer.Exit(1)
    console.print(f"key {key_id} revoked")


class Projection(enum.StrEnum):
    profiles = "profiles"
    analytics = "analytics"


@projections_app.command("rebuild")
def projections_rebuild(
    which: Projection = typer.Argument(
        Projection.profiles,
        help="profiles: member_profiles from member events; analytics: the journey "
        "report tables (entries, deliveries, conversions and their counts) from every event.",
    ),
) -> None:
    """Rebuild a projection by replaying the event store: its rows and checkpoint are
    deleted first, so readers see it fill up again."""
    from journeyman.engine.analytics.projector import JourneyStatsProjector
    from journeyman.engine.profiles import ProfileProjector
    from journeyman.event_store import PostgresEventStore
    from rich.progress import Progress, SpinnerColumn, TextColumn

    async def go() -> int:
        store = await PostgresEventStore.connect(db_url(), min_size=2, max_size=4)
        try:
            projector: ProfileProjector | JourneyStatsProjector
            if which is Projection.profiles:
                projector, what = ProfileProjector(store, settings()), "member events"
                count = "SELECT count(*) FROM events WHERE category = 'member'"
            else:
                projector, what = JourneyStatsProjector(store, settings()), "events"
                count = "SELECT count(*) FROM events"
            async with store.pool.acquire() as c:
                total = await c.fetchval(count)
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                *Progress.get_default_columns()[1:],
                console=err_console,
            ) as progress:
                task = progress.add_task(f"replaying {what}", total=total)
                return await projector.rebuild(lambda n: progress.advance(task, n))
        finally:
            await store.close()

    started = time.perf_counter()
    n = run(go())
    tables = "member_profiles" if which is Projection.profiles else "journey analytics"
    console.print(f"{tables} rebuilt from {n:,} events in {time.perf_counter() - started:.1f} s")


@projections_app.command("refresh-segments")
def projections_refresh_segments() -> None:
    """Evaluate every member's segments now and rewrite when each is next due. Run it after
    changing the recency or lifecycle settings, or the registered segments: the hourly scan
    only re-evaluates members whose time-based fields can have changed."""
    import datetime as dt

    from journeyman.engine.profiles.segment_refresh import refresh
    from journeyman.engine.segments import registered_segments
    from journeyman.event_store import PostgresEventStore

    async def go() -> tuple[int, int, int]:
        store = await PostgresEventStore.connect(db_url(), min_size=1, max_size=2)
        try:
            r = await refresh(
                store, registered_segments(), settings=settings(), now=dt.datetime.now(dt.UTC)
            )
        finally:
            await store.close()
        return r.examined, len(r.changes.entered), len(r.changes.exited)

    examined, entered, exited = run(go())
    console.print(f"{examined:,} members evaluated: {entered:,} entries, {exited:,} exits")


def api(
    host: str | None = typer.Option(None, help="Interface to listen on (JOURNEYMAN_API_HOST)."),
    port: int | None = typer.Option(None, help="Port (JOURNEYMAN_API_PORT)."),
) -> None:
    """Serve the HTTP API (ingestion, Segment-compatible endpoints, profiles)."""
    from journeyman.engine.api import run as serve

    s = settings()
    # Resolve the database once (this starts the embedded PostgreSQL when none is set).
    s = s.model_copy(update={"database_url": db_url()})
    serve(host or s.api_host, port or s.api_port, s)
