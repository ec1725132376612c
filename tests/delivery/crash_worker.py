"""A delivery worker in its own process, for the crash test: `deliver` (inline: policies,
render, claim, send, record) on one task queue, sending email to a local SMTP peer or SMS to
a local Twilio peer (`"channel": "sms"` in the config).

    python tests/delivery/crash_worker.py '<json config>'
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from journeyman.channels import Channel
from journeyman.channels.email import EmailChannel
from journeyman.channels.sms import SmsChannel
from journeyman.engine.core.delivery_settings import DeliverySettings
from journeyman.engine.core.settings import Settings
from journeyman.engine.delivery.service import Deliverer
from journeyman.engine.delivery.workers import deliver_activity
from journeyman.event_store import PostgresEventStore
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker


async def main(config: dict) -> None:
    settings = Settings(
        secret_key=SecretStr(config["secret"]),
        data_dir=Path(config["data_dir"]),
        delivery=DeliverySettings(quiet_hours_start=None, frequency_cap=None),
    )
    store = await PostgresEventStore.connect(config["database_url"], min_size=1, max_size=4)
    channels: dict[str, Channel] = {}
    if config.get("channel") == "sms":
        channels["sms"] = SmsChannel({**config["sms"], "timeout": 600})
    else:
        channels["email"] = EmailChannel(
            {
                "host": "127.0.0.1",
                "port": config["smtp_port"],
                "security": "none",
                "from_address": "Shop <news@shop.test>",
                "timeout": 600,
            }
        )
    deliverer = Deliverer(store, channels, settings=settings)
    client = await Client.connect(
        config["temporal"], namespace=config["namespace"], data_converter=pydantic_data_converter
    )
    worker = Worker(
        client, task_queue=config["task_queue"], activities=[deliver_activity(deliverer)]
    )
    print("ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
