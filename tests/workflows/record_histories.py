"""Record one history per built-in journey into tests/histories/ (replay tests read them).

    .venv/bin/python tests/workflows/record_histories.py

Run it when a journey changes *on purpose* in a way old runs can no longer replay (after
the patch has been deprecated and every old run has ended); never to make a failing replay
test pass.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
HISTORIES = HERE.parent / "histories"
DAY = dt.timedelta(days=1)


async def main() -> None:
    from journey_testkit import event, journey_worker, member_with, start
    from journeyman.engine.contracts import EVENT_SIGNAL
    from journeyman.engine.runtime.db import migrate
    from journeyman.engine.runtime.stack import EmbeddedPostgres, temporal_test_server
    from journeyman.event_store import PostgresEventStore
    from journeyman.workflows.cart_recovery import CartRecovery
    from journeyman.workflows.post_purchase import PostPurchaseSurvey
    from journeyman.workflows.welcome import Welcome
    from journeyman.workflows.winback import Winback
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    pg = EmbeddedPostgres(Path(tempfile.mkdtemp()) / "pg")
    pg.start()
    try:
        await migrate(pg.url)
        store = await PostgresEventStore.connect(pg.url)
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=temporal_test_server(),
            data_converter=pydantic_data_converter,
        )
        client = env.client
        HISTORIES.mkdir(exist_ok=True)
        async with journey_worker(client, store) as tq:
            cart = {"cart_id": "c1", "items": [{"sku": "A", "qty": 1}]}
            m = member_with(CartRecovery, holdout=False)
            h = await start(client, tq, CartRecovery, m, trigger=event("cart.updated", cart))
            await env.sleep(30 * 3600)
            await h.signal(EVENT_SIGNAL, event("order.placed", {"cart_id": "c1", "total": 20}))
            runs = {"cart_recovery": h}

            m = member_with(Winback, holdout=False)
            runs["winback"] = await start(client, tq, Winback, m)

            m = member_with(Welcome, holdout=False)
            h = await start(client, tq, Welcome, m, trigger=event("member.registered"))
            await env.sleep(5 * DAY)
            await h.signal(EVENT_SIGNAL, event("order.placed", {"total": 12}))
            runs["welcome"] = h

            m = member_with(PostPurchaseSurvey, holdout=False)
            h = await start(
                client, tq, PostPurchaseSurvey, m, trigger=event("order.placed", {"order_id": "o1"})
            )
            await env.sleep(3 * DAY)
            await h.signal(EVENT_SIGNAL, event("message.clicked", {"journey": h.id.split("/")[1]}))
            runs["post_purchase_survey"] = h

            for name, handle in runs.items():
                await handle.result()
                history = await handle.fetch_history()
                (HISTORIES / f"{name}.json").write_text(history.to_json())
                print(f"recorded {name}: {len(history.events)} events")
        await store.close()
        await env.shutdown()
    finally:
        pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
