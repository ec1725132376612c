"""`journeyman members erase ID` and `journeyman members export ID`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import console, db_url, err_console, run, settings

members_app = typer.Typer(help="Members: erase (crypto-shred) and export.", no_args_is_help=True)


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
        from engine.privacy import erase_member
        from event_store import PostgresEventStore

        s = settings()
        store = await PostgresEventStore.connect(db_url(), min_size=1, max_size=2)
        try:
            temporal = None
            if s.temporal_address:
                from engine.worker import connect_temporal

                temporal = await connect_temporal(s)
            result = await erase_member(
                store, member_id, settings=s, temporal=temporal, requested_by="cli", reason=reason
            )
            return result.to_json()
        finally:
            await store.close()

    from engine.privacy import UnknownMember

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
        from engine.privacy import export_member
        from event_store import PostgresEventStore

        store = await PostgresEventStore.connect(db_url(), min_size=1, max_size=2)
        try:
            return await export_member(store, member_id, settings=settings())
        finally:
            await store.close()

    from engine.privacy import UnknownMember

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


def _register_key_rotation() -> None:
    from .ingest_commands import keys_app

    @keys_app.command("rotate")
    def keys_rotate(
        key_id: str = typer.Argument(..., help="The key id (jm_<key id>_…)."),
    ) -> None:
        """Replace a key by a new one with the same scopes; the old one stops working."""
        from engine.keys import rotate_key

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
