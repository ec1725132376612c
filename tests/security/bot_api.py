"""A channel whose provider puts the credential in the URL, as Telegram's Bot API does
(`POST <api>/bot<token>/sendMessage`), and a local peer that speaks it."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import httpx
from journeyman.channels import (
    Channel,
    ChannelConfig,
    ChannelMisconfigured,
    ContactKind,
    DeliveryResult,
    Message,
)
from journeyman.channels.testing.peers import HttpPeer
from pydantic import Field, SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class BotApi(HttpPeer):
    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.sent: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bot{token}/sendMessage", self._send, methods=["POST"])])

    async def _send(self, request: Request) -> Response:
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        if request.path_params["token"] != self.token:
            return JSONResponse({"ok": False, "error_code": 401}, status_code=401)
        self.sent.append(await request.json())
        return JSONResponse({"ok": True, "result": {"message_id": next(self._ids)}})


class BotConfig(ChannelConfig):
    api_url: str = Field(description="Base URL of the bot API.")
    token: SecretStr = Field(description="The bot's token (part of every request URL).")


class BotChannel(Channel):
    name: ClassVar[str] = "bot"
    contact: ClassVar[ContactKind] = ContactKind.MEMBER
    Config = BotConfig
    description = "A Telegram-style bot API: the token is in the URL."

    def __init__(self, config: BotConfig | dict[str, Any] | None = None) -> None:
        self._client: httpx.AsyncClient | None = None
        super().__init__(config)

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        config = self.config
        assert isinstance(config, BotConfig)
        self._client = self._client or httpx.AsyncClient(timeout=10)
        url = f"{config.api_url}/bot{config.token.get_secret_value()}/sendMessage"
        response = await self._client.post(url, json={"chat_id": message.to, "text": message.text})
        if response.status_code != 200:
            raise ChannelMisconfigured("bot: the API refused the token", channel=self.name)
        return DeliveryResult(
            channel=self.name, provider_message_id=str(response.json()["result"]["message_id"])
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
