"""A worker killed (SIGKILL) after the provider accepted the message and before the outcome
was recorded: Temporal retries the activity on another worker, which finds the claim without
an outcome and settles the delivery as in doubt. The member gets one message, not two."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.worker import Worker

from channels.testing.peers import SmtpPeer
from engine.delivery.service import Deliverer
from engine.delivery.workers import deliver_activity

from .crash_workflow import DeliverOnce
from .delivery_testkit import SECRET, add_member, email_channel, make_settings, request, types_of

HERE = Path(__file__).parent


async def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_worker_killed_after_provider_accepted_sends_nothing_twice(
    temporal_dev, store, database_url, tmp_path
) -> None:
    settings = make_settings(tmp_path)
    member = await add_member(store, settings)
    client = temporal_dev.client
    send_queue = f"send-{uuid.uuid4().hex[:8]}"
    flow_queue = f"flow-{uuid.uuid4().hex[:8]}"
    async with SmtpPeer() as smtp:
        smtp.hang_after_data()  # takes the message, then holds its reply
        config = {
            "secret": SECRET,
            "data_dir": str(tmp_path),
            "database_url": database_url,
            "smtp_port": smtp.port,
            "temporal": temporal_dev.client.service_client.config.target_host,
            "namespace": client.namespace,
            "task_queue": send_queue,
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
                req = request(member, ["email"])
                handle = await client.start_workflow(
                    DeliverOnce.run,
                    args=[req, send_queue],
                    id=f"crash-{uuid.uuid4().hex}",
                    task_queue=flow_queue,
                )
                # the provider has the message; the worker waits for its reply: kill it
                await wait_for(lambda: len(smtp.messages) == 1)
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                survivor = Deliverer(store, {"email": email_channel(smtp)}, settings=settings)
                async with Worker(
                    client, task_queue=send_queue, activities=[deliver_activity(survivor)]
                ):
                    outcome = await asyncio.wait_for(handle.result(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert outcome.status == "in_doubt" and outcome.channel == "email"
    assert len(smtp.messages) == 1 and smtp.attempts == 1  # never sent twice
    types = await types_of(store, member)
    assert "message.in_doubt" in types and "message.sent" not in types
