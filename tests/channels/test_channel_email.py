"""Email over SMTP against a real aiosmtpd server: headers, TLS and each SMTP phase."""

from __future__ import annotations

import pytest
from journeyman.channels import (
    AmbiguousError,
    ChannelMisconfigured,
    ContentRejected,
    Message,
    PermanentError,
    RecipientInvalid,
    TransientError,
)
from journeyman.channels.email import EmailChannel
from journeyman.channels.testing.peers import SmtpPeer, closed_port, self_signed


def email_channel(peer: SmtpPeer, **overrides) -> EmailChannel:
    config = {
        "host": "127.0.0.1",
        "port": peer.port,
        "security": "none",
        "from_address": "Shop <news@shop.test>",
        "timeout": 5,
    }
    return EmailChannel({**config, **overrides})


@pytest.fixture
async def smtp():
    async with SmtpPeer() as peer:
        yield peer


MESSAGE = Message(
    to="ann@example.com",
    subject="Your cart",
    text="Hello Ann\n.a line that starts with a dot\n",
    html="<p>Hello <b>Ann</b></p>",
    unsubscribe_url="https://shop.test/u/abc",
    delivery_id="dlv-1",
)


async def test_multipart_message_with_one_click_unsubscribe(smtp: SmtpPeer) -> None:
    result = await email_channel(smtp).send(MESSAGE, "delivery-key-1")
    [mail] = smtp.messages
    assert smtp.envelopes == [("news@shop.test", ["ann@example.com"])]
    assert mail.get_content_type() == "multipart/alternative"
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n") == MESSAGE.text
    assert "<b>Ann</b>" in mail.get_body(("html",)).get_content()
    assert mail["List-Unsubscribe"] == "<https://shop.test/u/abc>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["X-Journeyman-Delivery"] == "dlv-1"
    assert mail["Message-ID"] == result.provider_message_id


async def test_text_only_without_unsubscribe_headers(smtp: SmtpPeer) -> None:
    await email_channel(smtp).send(Message(to="ann@example.com", text="plain"), "k")
    [mail] = smtp.messages
    assert mail.get_content_type() == "text/plain"
    assert mail["List-Unsubscribe"] is None


async def test_message_id_is_derived_from_the_idempotency_key(smtp: SmtpPeer) -> None:
    channel = email_channel(smtp, message_id_domain="mail.shop.test")
    first = await channel.send(MESSAGE, "delivery-key-1")
    again = await channel.send(MESSAGE, "delivery-key-1")
    other = await channel.send(MESSAGE, "delivery-key-2")
    assert first.provider_message_id == again.provider_message_id
    assert first.provider_message_id != other.provider_message_id
    assert first.provider_message_id.endswith("@mail.shop.test>")


@pytest.mark.parametrize(
    ("command", "reply", "error"),
    [
        ("MAIL", "451 4.3.0 Mail server temporarily rejected message", TransientError),
        ("MAIL", "550 5.7.1 Sender not allowed", ChannelMisconfigured),
        ("RCPT", "452 4.2.2 Mailbox full", TransientError),
        ("RCPT", "550 5.1.1 Mailbox unavailable", RecipientInvalid),
        ("RCPT", "553 5.1.3 Bad recipient address syntax", RecipientInvalid),
        ("RCPT", "554 5.7.1 Relay access denied", PermanentError),
        ("DATA", "451 4.7.1 Greylisted, try again", TransientError),
        ("DATA", "554 5.7.1 Message rejected as spam", ContentRejected),
    ],
)
async def test_each_phase_is_classified(smtp: SmtpPeer, command, reply, error) -> None:
    smtp.reply(command, reply)
    with pytest.raises(error) as info:
        await email_channel(smtp).send(MESSAGE, "k")
    assert info.value.code == int(reply[:3])
    assert smtp.messages == []


async def test_disconnect_after_data_is_ambiguous(smtp: SmtpPeer) -> None:
    smtp.disconnect_after_data()
    with pytest.raises(AmbiguousError) as info:
        await email_channel(smtp).send(MESSAGE, "k")
    assert info.value.may_have_been_sent
    assert smtp.bodies_received == 1  # the server had the whole message


async def test_no_answer_after_data_is_ambiguous(smtp: SmtpPeer) -> None:
    smtp.hang_after_data()
    with pytest.raises(AmbiguousError):
        await email_channel(smtp, timeout=0.3).send(MESSAGE, "k")


async def test_connection_refused_is_transient() -> None:
    channel = EmailChannel(
        {"host": "127.0.0.1", "port": closed_port(), "security": "none", "from_address": "a@b.c"}
    )
    with pytest.raises(TransientError, match="nothing was sent"):
        await channel.send(MESSAGE, "k")


async def test_wrong_password_is_misconfiguration() -> None:
    async with SmtpPeer(credentials=("shop", "right")) as peer:
        with pytest.raises(ChannelMisconfigured) as info:
            await email_channel(peer, username="shop", password="wrong").send(MESSAGE, "k")
        assert info.value.code == 535
        await email_channel(peer, username="shop", password="right").send(MESSAGE, "k")
        assert len(peer.messages) == 1


async def test_starttls_with_a_trusted_certificate(tmp_path) -> None:
    cert = self_signed(tmp_path)
    async with SmtpPeer(tls=cert, credentials=("shop", "pw")) as peer:
        channel = email_channel(
            peer,
            security="starttls",
            cert_bundle=str(cert.cert_file),
            username="shop",
            password="pw",
        )
        await channel.send(MESSAGE, "k")
        assert len(peer.messages) == 1
        untrusting = email_channel(peer, security="starttls", username="shop", password="pw")
        with pytest.raises(ChannelMisconfigured, match="TLS"):
            await untrusting.send(MESSAGE, "k")


async def test_implicit_tls(tmp_path) -> None:
    cert = self_signed(tmp_path)
    async with SmtpPeer(tls=cert, implicit_tls=True) as peer:
        await email_channel(peer, security="tls", cert_bundle=str(cert.cert_file)).send(
            MESSAGE, "k"
        )
        assert len(peer.messages) == 1
