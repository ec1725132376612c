"""`journeyman deadletters list|show|retry|drop`: events a subscriber parked and went on
without (see docs/reliability.md, "Dead letters")."""

from __future__ import annotations

import json
from typing import Any

import typer

from .common import console, db_url, err_console, run, settings

STATUSES = ("parked", "retried", "dropped", "all")


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Events a reader of the store parked (undecodable, or failing every attempt).",
        no_args_is_help=True,
    )
    app.add_typer(group, name="deadletters")

    @group.command("list")
    def list_(
        status: str = typer.Option("parked", help="parked, retried, dropped or all."),
        consumer: str | None = typer.Option(None, help="Only this consumer's."),
        limit: int = typer.Option(100, min=1, help="At most this many."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    ) -> None:
        """List dead letters, oldest first."""
        if status not in STATUSES:
            raise typer.BadParameter(f"must be one of {', '.join(STATUSES)}", param_hint="--status")
        from journeyman.engine.deadletters.actions import as_dict
        from journeyman.event_store.deadletters import list_dead_letters

        async def go() -> list[Any]:
            async with await _store() as store:
                return await list_dead_letters(
                    store.pool,
                    status=None if status == "all" else status,  # type: ignore[arg-type]
                    consumer=consumer,
                    limit=limit,
                )

        found = run(go())
        if as_json:
            for dl in found:
                console.print_json(json.dumps(as_dict(dl)))
            return
        if not found:
            console.print(f"no {status if status != 'all' else ''} dead letters".replace("  ", " "))
            return
        for dl in found:
            console.print(
                f"[bold]{dl.id}[/bold] {dl.status} {dl.consumer}"
                f"{f' [{dl.partition}/{dl.partitions}]' if dl.partitions > 1 else ''} "
                f"position {dl.global_position} {dl.stream_id} {dl.type} {dl.event_id} "
                f"attempts {dl.attempts}, last {dl.last_failed_at:%Y-%m-%d %H:%M:%S}: {dl.error}",
                markup=True,
                highlight=False,
            )

    @group.command()
    def show(dead_letter_id: int = typer.Argument(..., help="The dead letter's id.")) -> None:
        """Show one dead letter and the stored event (raw columns if it cannot be decoded)."""
        from journeyman.engine.deadletters.actions import show as describe_dead_letter

        async def go() -> dict[str, Any] | None:
            async with await _store() as store:
                return await describe_dead_letter(store, dead_letter_id)

        found = run(go())
        if found is None:
            err_console.print(f"no dead letter {dead_letter_id}")
            raise typer.Exit(1)
        console.print_json(json.dumps(found, default=str))

    @group.command()
    def retry(
        dead_letter_ids: list[int] = typer.Argument(..., help="Dead letter id(s)."),
    ) -> None:
        """Hand parked events back to their consumers (after a fix). Exits 1 if any fails
        again; it then stays parked with the new error."""
        from journeyman.engine.deadletters.actions import AlreadyRetried, UnknownDeadLetter
        from journeyman.engine.deadletters.actions import retry as do_retry
        from journeyman.engine.routing.dispatcher import SUBSCRIPTION
        from journeyman.event_store.deadletters import get_dead_letter

        s = settings()

        async def go() -> bool:
            ok = True
            temporal = None
            async with await _store() as store:
                for i in dead_letter_ids:
                    dl = await get_dead_letter(store.pool, i)
                    if dl is not None and dl.consumer == SUBSCRIPTION and temporal is None:
                        from journeyman.engine.runtime.worker import connect_temporal

                        temporal = await connect_temporal(s)
                    try:
                        outcome = await do_retry(store, s, i, temporal=temporal)
                    except (UnknownDeadLetter, AlreadyRetried) as exc:
                        err_console.print(str(exc))
                        ok = False
                        continue
                    if outcome.ok:
                        console.print(f"[green]{i}[/green] retried: {outcome.message}")
                    else:
                        err_console.print(f"{i} failed again, still parked: {outcome.message}")
                        ok = False
            return ok

        if not run(go()):
            raise typer.Exit(1)

    @group.command()
    def drop(
        dead_letter_ids: list[int] = typer.Argument(..., help="Dead letter id(s)."),
        reason: str = typer.Option("", help="Why (kept with the dead letter)."),
    ) -> None:
        """Give parked events up: marked dropped (the event stays in the store)."""
        from journeyman.engine.deadletters.actions import UnknownDeadLetter
        from journeyman.engine.deadletters.actions import drop as do_drop

        async def go() -> bool:
            ok = True
            async with await _store() as store:
                for i in dead_letter_ids:
                    try:
                        await do_drop(store, i, reason)
                    except UnknownDeadLetter as exc:
                        err_console.print(str(exc))
                        ok = False
                        continue
                    console.print(f"{i} dropped")
            return ok

        if not run(go()):
            raise typer.Exit(1)


async def _store() -> Any:
    from journeyman.event_store import PostgresEventStore

    return await PostgresEventStore.connect(db_url(), min_size=1, max_size=2)
