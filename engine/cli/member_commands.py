"""`journeyman members erase ID`, `journeyman members export ID` and `journeyman members rekey`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import console, db_url, err_console, run, settings

members_app = typer.Typer(
    help="Members: erase (crypto-shred), export, and re-key members from before opaque ids.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(members_app, name="members")


@members_app.command("erase")
def members_erase(
    member_id: str = typer.Argument(..., help="Your id of the member, or the store's."),
    reason: str = typer.Option("", help="Why (recorded on the member.erased event)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Crypto-shred a member: delete its data key and aliases, end its journeys, append
    member.erased. Events stay; their personal fields become unreadable. Cannot be undone."""
    if not yes:
        typer.confirm(f"Erase member {member_id}? This cannot be undone", abort=True)

    async def go() -> dict:
        from journeyman.engine.privacy import erase_member
        from journeyman.event_store import PostgresEventStore

        s = settings()
        store = await PostgresEventStore.connect(db_url(), min_size=1, max_size=2)
        try:
            temporal = None
            if s.temporal_address:
                from journeyman.engine.runtime.worker import connect_temporal

                temporal = await connect_temporal(s)
            result = await erase_member(
                store, member_id, settings=s, temporal=temporal, requested_by="cli", reason=reason
            )
            return result.to_json()
        finally:
            await store.close()

    from journeyman.engine.privacy import UnknownMember

    try:
        out = run(go())
    except UnknownMember as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print_json(json.dumps(out))


@members_app.command("export")
def members_export(
    member_id: str = typer.Argument(..., help="Your id of the member, or the store's."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to a file."),
) -> None:
    """Everything known about a member, as JSON (to stdout or a file)."""

    async def go() -> dict:
        from journeyman.engine.privacy import export_member
        from journeyman.event_store import PostgresEventStore

        store = await PostgresEventStore.connect(db_url(), min_size=1, max_size=2)
        try:
            return await export_member(store, member_id, settings=settings())
        finally:
            await store.close()

    from journeyman.engine.privacy import UnknownMember

    try:
        out = run(go())
    except UnknownMember as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    text = json.dumps(out, indent=2, ensure_ascii=False)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        output.chmod(0o600)
        err_console.print(f"wrote {output}")


@members_app.command("rekey")
def members_rekey(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count only; change nothing."),
    concurrency: int = typer.Option(
        4, "--concurrency", min=1, max=32, help="Members re-keyed side by side."
    ),
) -> None:
    """Give every member created before member ids became opaque (whose store id is still
    the client's id, often an email or a phone number) an id of the engine's own, rewriting
    its events and rows; the old id becomes its `user_id` alias. One transaction per member:
    safe to stop and run again. Members with a running journey, or with events the journey
    dispatcher has not routed yet, are skipped (run again once their journeys end)."""

    async def go() -> dict[str, int]:
        from journeyman.engine.identity.crypto import Keyring
        from journeyman.engine.identity.rekey import count, legacy_member_ids, rekey_all
        from journeyman.event_store import PostgresEventStore
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        store = await PostgresEventStore.connect(db_url(), min_size=1, max_size=concurrency + 1)
        try:
            if dry_run:
                counts = await count(store.pool)
                skipped = counts.skipped_running + counts.skipped_unrouted
                return {
                    "to_rekey": counts.legacy - skipped,
                    "skipped_running": counts.skipped_running,
                    "skipped_unrouted": counts.skipped_unrouted,
                    "already_opaque": counts.already_opaque,
                }
            total = len(await legacy_member_ids(store.pool))
            with Progress(
                TextColumn("[bold]re-keying members"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[skipped]:,} skipped"),
                console=err_console,
            ) as progress:
                task = progress.add_task("rekey", total=total, skipped=0)
                skipped = 0

                def on_member(outcome: str) -> None:
                    nonlocal skipped
                    skipped += outcome in ("running", "unrouted")
                    progress.update(task, advance=1, skipped=skipped)

                result = await rekey_all(
                    store,
                    Keyring(settings().resolved_secret()),
                    concurrency=concurrency,
                    on_member=on_member,
                )
            return result.to_json()
        finally:
            await store.close()

    out = run(go())
    if dry_run:
        err_console.print(
            f"would re-key {out['to_rekey']:,} member(s); would skip {out['skipped_running']:,} "
            f"with a running journey and {out['skipped_unrouted']:,} with events the "
            f"dispatcher has not routed yet; {out['already_opaque']:,} already opaque"
        )
    else:
        err_console.print(
            f"re-keyed {out['rekeyed']:,} member(s); skipped {out['skipped_running']:,} with a "
            f"running journey and {out['skipped_unrouted']:,} with events the dispatcher has "
            f"not routed yet (run again later); {out['already_opaque']:,} already opaque"
        )
    console.print_json(json.dumps(out))


def _register_key_rotation() -> None:
    from .ingest_commands import keys_app

    @keys_app.command("rotate")
    def keys_rotate(
        key_id: str = typer.Argument(..., help="The key id (jm_<key id>_…)."),
    ) -> None:
        """Replace a key by a new one with the same scopes; the old one stops working."""
        from journeyman.engine.access.keys import rotate_key

        async def go() -> tuple[str, str]:
            import asyncpg

            conn = await asyncpg.connect(db_url())
            try:
                token, key = await rotate_key(conn, key_id)
                return token, key.key_id
            finally:
                await conn.close()

        try:
            token, new_id = run(go())
        except LookupError as exc:
            err_console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        err_console.print(f"key {key_id} revoked; new key {new_id} (shown once):")
        typer.echo(token)


_register_key_rotation()
