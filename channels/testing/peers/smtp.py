"""A real SMTP server (aiosmtpd) on 127.0.0.1 with scripted replies.

    async with SmtpPeer() as peer:
        peer.reply("RCPT", "451 4.3.0 Try again later", times=2)
        peer.disconnect_after_data()        # read the body, then drop the connection
        ...
        peer.messages    # accepted messages (email.message.Message objects)
        peer.attempts    # MAIL FROM commands seen (one per send attempt)

`reply(command, reply)` answers MAIL, RCPT or DATA (the reply to the message body) with a
scripted reply instead of accepting. STARTTLS needs `tls=LocalCertificate`; `implicit_tls`
serves TLS from the first byte; `credentials=(user, password)` requires AUTH.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import warnings
from collections import defaultdict, deque
from email.message import EmailMessage
from typing import Any, Literal, Self

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .tls import LocalCertificate

Command = Literal["MAIL", "RCPT", "DATA"]
logging.getLogger("mail.log").setLevel(logging.ERROR)


class _Handler:
    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        self.peer.attempts += 1
        scripted = self.peer._scripted("MAIL")
        if scripted:
            return scripted
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        scripted = self.peer._scripted("RCPT")
        if scripted:
            return scripted
        if address.lower() in self.peer.unknown_mailboxes:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.peer.bodies_received += 1
        action = self.peer._after_data.popleft() if self.peer._after_data else None
        if action == "disconnect":
            assert server.transport is not None
            server.transport.close()
            self.peer._keep(envelope)  # it may well have been queued: that is the point
            return "250 OK"
        if action == "hang":
            self.peer._keep(envelope)
            await asyncio.sleep(3600)
        scripted = self.peer._scripted("DATA")
        if scripted:
            return scripted
        self.peer._keep(envelope)
        return "250 2.0.0 OK queued"


class SmtpPeer:
    def __init__(
        self,
        *,
        tls: LocalCertificate | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
        unknown_mailboxes: tuple[str, ...] = ("nobody@example.com",),
    ) -> None:
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.credentials = credentials
        self.unknown_mailboxes = {a.lower() for a in unknown_mailboxes}
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.attempts = 0
        self.bodies_received = 0
        self.port = 0
        self._replies: dict[str, deque[str]] = defaultdict(deque)
        self._after_data: deque[str] = deque()
        self._server: asyncio.Server | None = None
        self._sessions: list[SMTP] = []

    # -- scripting ---------------------------------------------------------------------

    def reply(self, command: Command, reply: str, times: int = 1) -> None:
        """Answer the next `times` occurrences of `command` with `reply`."""
        self._replies[command].extend([reply] * times)

    def disconnect_after_data(self, times: int = 1) -> None:
        """Read the next message body completely, then close the connection unanswered."""
        self._after_data.extend(["disconnect"] * times)

    def hang_after_data(self, times: int = 1) -> None:
        """Read the next message body, then never answer."""
        self._after_data.extend(["hang"] * times)

    def _scripted(self, command: str) -> str | None:
        queue = self._replies.get(command)
        return queue.popleft() if queue else None

    def _keep(self, envelope: Envelope) -> None:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        self.messages.append(email.message_from_bytes(raw, policy=email.policy.default))
        self.envelopes.append((envelope.mail_from or "", list(envelope.rcpt_tos)))

    # -- server ------------------------------------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if self.credentials is None or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (data.login.decode(), data.password.decode()) == self.credentials
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535

    def _factory(self) -> SMTP:
        loop = asyncio.get_running_loop()
        kwargs: dict[str, Any] = {"hostname": "localhost", "loop": loop}
        if self.tls is not None and not self.implicit_tls:
            kwargs["tls_context"] = self.tls.server_context()
        if self.credentials is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.tls is not None,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # AUTH without TLS is what a local test wants
            session = SMTP(_Handler(self), **kwargs)
        self._sessions.append(session)
        return session

    @property
    def hostname(self) -> str:
        return "127.0.0.1"

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        ssl_ctx = self.tls.server_context() if (self.tls and self.implicit_tls) else None
        self._server = await loop.create_server(self._factory, "127.0.0.1", 0, ssl=ssl_ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for session in self._sessions:
                if session.transport is not None:
                    session.transport.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
