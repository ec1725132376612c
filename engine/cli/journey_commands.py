"""Journey commands: `worker`, `dispatcher`, `scheduler` and `journeys`."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from typing import Any

import typer

from .common import console, db_url, run, settings


def register(app: typer.Typer) -> None:
    @app.command()
    def worker() -> None:
        """Run the Temporal worker: every registered journey, the inactivity scan, and the
        journey activities."""
        from journeyman.engine.core.metrics import serve_part
        from journeyman.engine.runtime.journey_checks import JourneyCheckError
        from journeyman.engine.runtime.logs import configure_logging
        from journeyman.engine.runtime.worker import run_worker

        configure_logging(log_http_requests=settings().log_http_requests)
        serve_part("worker", temporal=True)
        try:
            run(run_worker(settings(), db_url()))
        except JourneyCheckError as exc:
            console.print(f"[red]error[/red]: the worker did not start: {exc}")
            raise typer.Exit(1) from None

    @app.command()
    def dispatcher(
        partition: list[int] = typer.Option(
            None, "--partition", "-p", help="Partition(s) to run; default: all of them."
        ),
        partitions: int = typer.Option(
            0,
            help="Number of member-hash partitions (default: JOURNEYMAN_DISPATCHER_PARTITIONS). "
            "Every dispatcher must use the same count.",
        ),
    ) -> None:
        """Route store events to journeys (signal-with-start for triggers, signals for the
        rest), checkpointing after Temporal accepts."""
        from journeyman.engine.routing.dispatcher import check_partition

        count = partitions or settings().dispatcher_partitions
        try:
            check_partition(0, count)
            for p in partition or ():
                check_partition(p, count)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--partition") from None
        from journeyman.engine.core.metrics import serve_part
        from journeyman.engine.runtime.logs import configure_logging

        configure_logging(log_http_requests=settings().log_http_requests)
        health = serve_part("dispatcher")
        run(_dispatch(partition or None, count, health))

    @app.command()
    def scheduler(
        every: float = typer.Option(0, help="Seconds between scans (default: the setting)."),
    ) -> None:
        """Create or update the Temporal Schedule that runs the inactivity scan."""
        from journeyman.engine.routing.scheduler import SCHEDULE_ID, ensure_schedule
        from journeyman.engine.runtime.worker import connect_temporal

        s = settings()
        seconds = every or s.inactivity_scan_every_seconds

        async def go() -> str:
            client = await connect_temporal(s)
            return await ensure_schedule(
                client, task_queue=s.task_queue, every=dt.timedelta(seconds=seconds)
            )

        outcome = run(go())
        console.print(f"schedule [bold]{SCHEDULE_ID}[/bold] {outcome}: every {seconds:g} s")

    @app.command()
    def journeys() -> None:
        """List the registered journeys, their triggers and the events they listen to; exit 1
        when a journey names an unknown event type or channel, or waits for a type it does not
        listen to."""
        from journeyman.engine.runtime.journey_checks import check_registered
        from journeyman.engine.runtime.worker import plugin_manager

        s = settings()
        pm = plugin_manager()
        found = pm.journeys()
        for name, cls in found.items():
            spec = cls.__journey__
            resolved = spec.resolve_settings(s.journeys.get(name), activity_types=s.activity_types)
            trigger = _describe_trigger(spec.trigger, resolved)
            console.print(
                f"[bold]{name}[/bold] ({cls.__module__}.{cls.__qualname__}) trigger: {trigger}; "
                f"listens: {', '.join(sorted(spec.event_types(resolved.activity_types)))}"
            )
        _warn_sealed_trigger_keys(found, s.ingest_clear_properties)
        problems = check_registered(pm, s, found)
        for problem in problems:
            console.print(f"[red]error[/red]: {problem}")
        if problems:
            raise typer.Exit(1)


def _describe_trigger(trigger: Any, resolved: Any) -> str:
    """How a journey starts, in words: `cart.updated (one run per cart_id)`,
    `entry into segment vip`, `inactivity 30 days`."""
    if trigger.kind == "segment":
        return f"entry into segment {trigger.segment}"
    if trigger.kind == "inactivity":
        days = getattr(resolved, "inactive_days", None) or trigger.days
        return f"inactivity {days:g} days"
    per = f" (one run per {trigger.key})" if trigger.key else ""
    return f"{trigger.event_type}{per}"


def _warn_sealed_trigger_keys(found: dict[str, type], clear: list[str]) -> None:
    from journeyman.engine.routing.dispatcher import sealed_trigger_keys

    for name, key in sealed_trigger_keys(found, clear).items():
        console.print(
            f"[yellow]warning[/yellow]: journey {name} starts on the property {key!r}, "
            "which ingestion seals as personal: add it to "
            "JOURNEYMAN_INGEST_CLEAR_PROPERTIES or the journey never starts"
        )


async def _dispatch(only: list[int] | None, partitions: int, health: Any = None) -> None:
    from journeyman.engine.core.metrics import record_routed
    from journeyman.engine.routing.dispatcher import Dispatcher
    from journeyman.engine.runtime.worker import connect_temporal, registered_journeys
    from journeyman.event_store import PostgresEventStore

    s = settings()
    store = await PostgresEventStore.connect(db_url(), min_size=1, max_size=s.db_pool_max)
    try:
        client = await connect_temporal(s)
        found = registered_journeys()
        _warn_sealed_trigger_keys(found, s.ingest_clear_properties)
        dispatchers = [
            Dispatcher(
                store,
                client,
                found,
                task_queue=s.task_queue,
                journey_settings=s.journeys,
                activity_types=s.activity_types,
                partition=p,
                partitions=partitions,
                batch_size=s.dispatcher_batch_size,
                on_routed=record_routed,
                dead_letter_attempts=s.dead_letter_attempts,
            )
            for p in (only if only is not None else range(partitions))
        ]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: [d.stop() for d in dispatchers])
        console.print(
            f"dispatching to {', '.join(found)} on partitions "
            f"{[d.partition for d in dispatchers]} of {partitions}"
        )
        watch = None
        if health is not None:
            from journeyman.engine.core.metrics import watch_long_transactions

            watch = asyncio.create_task(
                watch_long_transactions(store.pool, health, s.long_transaction_warn_seconds)
            )
        try:
            await asyncio.gather(*(d.run() for d in dispatchers))
        finally:
            if watch is not None:
                watch.cancel()
    finally:
        await store.close()
