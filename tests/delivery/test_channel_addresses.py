"""A channel declares the contact it needs: an id in a named system, read from the member's
external ids as ingestion stored them; and a template can have parts of the channel's own,
used before the parts of its kind."""

from __future__ import annotations

from typing import ClassVar

from journeyman.channels import Channel, ContactKind, DeliveryResult, Message
from journeyman.engine.delivery.templates import Templates

from .delivery_testkit import add_member, deliverer, make_settings, request


class ChatChannel(Channel):
    """A chat app's bot: it sends to the member's chat id. Its provider is this list."""

    name: ClassVar[str] = "chat"
    contact: ClassVar[ContactKind] = ContactKind.EXTERNAL
    contact_system: ClassVar[str | None] = "chat"

    def __init__(self) -> None:
        super().__init__({})
        self.sent: list[Message] = []

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        self.sent.append(message)
        return DeliveryResult(channel=self.name, provider_message_id=f"chat-{len(self.sent)}")


class BotChannel(ChatChannel):
    """Addressed by member id alone, and without parts of its own in the templates."""

    name: ClassVar[str] = "bot"
    contact: ClassVar[ContactKind] = ContactKind.MEMBER
    contact_system: ClassVar[str | None] = None


def templates(tmp_path) -> Templates:  # type: ignore[no-untyped-def]
    folder = tmp_path / "templates" / "cart_reminder"
    folder.mkdir(parents=True)
    (folder / "chat.text.j2").write_text("Your {{ items[0].name }} is waiting 🛒")
    (folder / "sms.text.j2").write_text("Your cart: {{ items[0].name }}. Reply STOP to opt out")
    return Templates(tmp_path / "templates")


async def test_the_chat_id_comes_from_the_members_external_ids(store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)
    member = await add_member(store, settings, external_ids={"chat": "4711", "shop": "S-1"})
    chat = ChatChannel()
    d = deliverer(store, settings, {"chat": chat}, templates=templates(tmp_path))
    outcome = await d.deliver(request(member, ["chat"], purpose="transactional"))
    assert outcome.status == "sent" and outcome.channel == "chat"
    (message,) = chat.sent
    assert message.to == "4711"  # the chat system's id, not the shop's nor the member id
    assert message.text == "Your Teapot is waiting 🛒"  # the channel's own part


async def test_a_member_without_an_id_in_the_system_is_not_reached(store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)
    member = await add_member(store, settings, external_ids={"shop": "S-2"})
    chat = ChatChannel()
    d = deliverer(store, settings, {"chat": chat}, templates=templates(tmp_path))
    outcome = await d.deliver(request(member, ["chat"], purpose="transactional"))
    assert outcome.status == "suppressed"
    assert outcome.reason == "no chat id for chat"
    assert chat.sent == []


async def test_without_parts_of_its_own_a_channel_gets_its_kinds(store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)
    member = await add_member(store, settings)
    bot = BotChannel()
    d = deliverer(store, settings, {"bot": bot}, templates=templates(tmp_path))
    outcome = await d.deliver(request(member, ["bot"], purpose="transactional"))
    assert outcome.status == "sent"
    assert bot.sent[0].to == member
    assert bot.sent[0].text.endswith("Reply STOP to opt out")
