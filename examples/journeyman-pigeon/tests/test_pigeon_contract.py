"""The pigeon channel passes Journeyman's shipped channel contract suite."""

from __future__ import annotations

import socket

import pytest
from journeyman.channels import Message, RecipientInvalid
from journeyman.channels.testing import ChannelContract, ChannelHarness
from journeyman_pigeon import PigeonChannel
from journeyman_pigeon.loft import PigeonLoft


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TestPigeonContract(ChannelContract):
    @pytest.fixture
    async def harness(self):
        async with PigeonLoft(api_key="loft-key", perches={"member-1"}) as loft:
            channel = PigeonChannel({"loft_url": loft.url, "api_key": "loft-key"})
            yield ChannelHarness(
                channel=channel,
                make_message=lambda: Message(to="member-1", text="Your cart misses you"),
                attempts=lambda: loft.requests,
                accepted=lambda: loft.accepted,
                fail_transient=lambda n: loft.fail_next(n, 429, headers={"Retry-After": "2"}),
                fail_after_send=lambda n: loft.fail_next(n, 502),
                invalid_recipient=Message(to="member-without-perch", text="coo"),
                invalid_recipient_error=RecipientInvalid,
                bad_credentials=PigeonChannel({"loft_url": loft.url, "api_key": "wrong"}),
                unreachable=PigeonChannel(
                    {"loft_url": f"http://127.0.0.1:{closed_port()}", "api_key": "loft-key"}
                ),
                secrets=["loft-key"],
                rate_limited=lambda n, s: loft.fail_next(n, 429, headers={"Retry-After": str(s)}),
                drop_connection=lambda n: loft.fail_next(n, 200, drop=True),
                reject_content=lambda n: loft.fail_next(n, 422),
            )
            await channel.aclose()
