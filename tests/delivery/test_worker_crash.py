"""A worker killed (SIGKILL) after the provider accepted the message and before the outcome
was recorded: Temporal retries the activity on another worker, which finds the claim without
an outcome. SMTP has no lookup, so the email is settled as in doubt; Twilio can be asked, so
the SMS is found there and recorded as sent. Either way the member gets one message, not
two."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path

import pytest
from journeyman.channels.testing.peers import SmtpPeer, TwilioPeer
from journeyman.engine.delivery.service import Deliverer
from journeyman.engine.delivery.workers import deliver_activity
from temporalio.worker import Worker

from .crash_workflow import DeliverOnce
from .delivery_testkit import (
    SECRET,
    SMS_CALLBACK,
    add_member,
    email_channel,
    make_settings,
    request,
    sms_channel,
    types_of,
)

HERE = Path(__file__).parent


async def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


async def deliver_through_a_killed_worker(
    temporal_dev, store, database_url, tmp_path, member, channel_config, accepted, survivor
):
    """Start `deliver` on a worker process, SIGKILL it once `accepted()` (the provider has
    the message and holds its reply), and finish on a worker running `survivor`."""
    client = temporal_dev.client
    send_queue = f"send-{uuid.uuid4().hex[:8]}"
    flow_queue = f"flow-{uuid.uuid4().hex[:8]}"
    config = {
        "secret": SECRET,
        "data_dir": str(tmp_path),
        "database_url": database_url,
        "temporal": client.service_client.config.target_host,
        "namespace": client.namespace,
        "task_queue": send_queue,
        **channel_config,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "crash_worker.py"),
        json.dumps(config),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
        async with Worker(client, task_queue=flow_queue, workflows=[DeliverOnce]):
            channel = "sms" if channel_config.get("channel") == "sms" else "email"
            handle = await client.start_workflow(
                DeliverOnce.run,
                args=[request(member, [channel]), send_queue],
                id=f"crash-{uuid.uuid4().hex}",
                task_queue=flow_queue,
            )
            # the provider has the message; the worker waits for its reply: kill it
            await wait_for(accepted)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            async with Worker(
                client, task_queue=send_queue, activities=[deliver_activity(survivor)]
            ):
                return await asyncio.wait_for(handle.result(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.slow
async def test_worker_killed_after_provider_accepted_sends_nothing_twice(
    temporal_dev, store, database_url, tmp_path
) -> None:
    settings = make_settings(tmp_path)
    member = await add_member(store, settings)
    async with SmtpPeer() as smtp:
        smtp.hang_after_data()  # takes the message, then holds its reply
        survivor = Deliverer(store, {"email": email_channel(smtp)}, settings=settings)
        outcome = await deliver_through_a_killed_worker(
            temporal_dev,
            store,
            database_url,
            tmp_path,
            member,
            {"smtp_port": smtp.port},
            lambda: len(smtp.messages) == 1,
            survivor,
        )
    assert outcome.status == "in_doubt" and outcome.channel == "email"
    assert len(smtp.messages) == 1 and smtp.attempts == 1  # never sent twice
    types = await types_of(store, member)
    assert "message.in_doubt" in types and "message.sent" not in types


@pytest.mark.slow
async def test_worker_killed_after_twilio_accepted_is_reconciled_as_sent(
    temporal_dev, store, database_url, tmp_path
) -> None:
    settings = make_settings(tmp_path)
    member = await add_member(store, settings)
    async with TwilioPeer() as twilio:
        twilio.accept_then_fail(times=1, delay=600)  # stores the message, then hangs
        sms = {
            "account_sid": twilio.account_sid,
            "auth_token": twilio.auth_token,
            "from_number": "+15005550006",
            "api_base_url": twilio.url,
            "status_callback_url": SMS_CALLBACK,
        }
        survivor = Deliverer(store, {"sms": sms_channel(twilio)}, settings=settings)
        outcome = await deliver_through_a_killed_worker(
            temporal_dev,
            store,
            database_url,
            tmp_path,
            member,
            {"channel": "sms", "sms": sms},
            lambda: twilio.accepted == 1,
            survivor,
        )
    assert outcome.status == "sent" and outcome.channel == "sms"
    assert twilio.requests == 1 and twilio.accepted == 1 and twilio.lookups >= 1
    events = await store.read_stream(f"member-{member}")
    [sent] = [e for e in events if e.type == "message.sent"]
    assert sent.data["provider_message_id"] == twilio.messages[0].sid
    assert "message.in_doubt" not in [e.type for e in events]
