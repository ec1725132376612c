"""Email over SMTP (aiosmtplib), one connection per send, every SMTP phase classified.

The phases are driven one by one (connect, STARTTLS, AUTH, MAIL, RCPT, DATA, the message
body) so that each failure says whether the message may have left:

* a refused or timed-out connection, and any 4xx reply up to and including the reply to the
  end of DATA, mean the server did not take the message: `TransientError`;
* a 5xx reply is permanent: `RecipientInvalid` for 550/551/553 (or a `5.1.x` enhanced code)
  to RCPT, `ContentRejected` for a 5xx to the message body, `ChannelMisconfigured` for
  5xx to the greeting, STARTTLS, AUTH or MAIL FROM (our sender or credentials are at fault),
  `PermanentError` otherwise;
* a disconnect or timeout once the server has said 354 and the body is on its way is
  `AmbiguousError`: the server may have queued the message before the connection broke.

The Message-ID is derived from the idempotency key, so the same delivery always carries the
same id and receiving systems can deduplicate it. A message with an `unsubscribe_url` gets
`List-Unsubscribe` and RFC 8058 `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.

Settings (`JOURNEYMAN_CHANNELS__EMAIL__…`): HOST and FROM_ADDRESS are required; PORT,
SECURITY (starttls | tls | none), USERNAME, PASSWORD, TIMEOUT, VALIDATE_CERTS, CERT_BUNDLE,
REPLY_TO, MESSAGE_ID_DOMAIN are optional.
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import re
import ssl
from email.message import EmailMessage
from typing import ClassVar, Literal

import aiosmtplib
from pydantic import Field, SecretStr

from .base import Channel, ChannelConfig, ContactKind, DeliveryResult, Message
from .errors import (
    AmbiguousError,
    ChannelError,
    ChannelMisconfigured,
    ContentRejected,
    PermanentError,
    RecipientInvalid,
    TransientError,
)

__all__ = ["EmailChannel", "EmailConfig", "build_email", "message_id_for"]

Phase = Literal["connect", "starttls", "auth", "mail", "rcpt", "data", "body"]


class EmailConfig(ChannelConfig):
    host: str = Field(description="SMTP server host name.")
    from_address: str = Field(description="Default From address, e.g. 'Shop <news@shop.test>'.")
    port: int | None = Field(
        default=None, description="Port; default 587 for starttls, 465 for tls, 25 for none."
    )
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    timeout: float = Field(default=30.0, gt=0, description="Seconds per SMTP step.")
    validate_certs: bool = True
    cert_bundle: str | None = Field(default=None, description="CA bundle to verify the server.")
    local_hostname: str | None = None
    reply_to: str | None = None
    message_id_domain: str | None = Field(
        default=None, description="Domain of generated Message-IDs; default: the From domain."
    )

    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "tls": 465, "none": 25}[self.security]


def message_id_for(idempotency_key: str, domain: str) -> str:
    """The Message-ID of a delivery: the same key always gives the same id."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def build_email(message: Message, idempotency_key: str, config: EmailConfig) -> EmailMessage:
    """The MIME message for `message`: text, or text + HTML as multipart/alternative."""
    sender = message.sender or config.from_address
    domain = config.message_id_domain or email.utils.parseaddr(sender)[1].rpartition("@")[2]
    mail = EmailMessage(policy=email.policy.SMTP)
    mail["From"] = sender
    mail["To"] = message.to
    mail["Subject"] = message.subject or ""
    mail["Date"] = email.utils.formatdate(usegmt=True)
    mail["Message-ID"] = message_id_for(idempotency_key, domain or "localhost")
    if config.reply_to:
        mail["Reply-To"] = config.reply_to
    if message.unsubscribe_url:
        mail["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if message.delivery_id:
        mail["X-Journeyman-Delivery"] = message.delivery_id
    for name, value in message.headers.items():
        mail[name] = value
    mail.set_content(message.text or "")
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _data_payload(raw: bytes) -> bytes:
    """The body as it goes on the wire after DATA: CRLF lines, dot-stuffed, terminated."""
    raw = re.sub(rb"\r?\n", b"\r\n", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return _LEADING_DOT.sub(b"..", raw) + b".\r\n"


class EmailChannel(Channel):
    name: ClassVar[str] = "email"
    contact: ClassVar[ContactKind] = ContactKind.EMAIL
    rate_limit_per_second: ClassVar[float] = 20.0
    Config = EmailConfig
    description = "Email over SMTP (aiosmtplib)."

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        config = self.config
        assert isinstance(config, EmailConfig)
        mail = build_email(message, idempotency_key, config)
        sender = email.utils.parseaddr(str(mail["From"]))[1]
        payload = _data_payload(bytes(mail))
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.effective_port(),
            use_tls=config.security == "tls",
            start_tls=False,
            validate_certs=config.validate_certs,
            cert_bundle=config.cert_bundle,
            timeout=config.timeout,
            local_hostname=config.local_hostname,
        )
        phase: Phase = "connect"
        try:
            await smtp.connect()
            await self._greet(smtp)
            if config.security == "starttls":
                phase = "starttls"
                await smtp.starttls()
                await self._greet(smtp)
            if config.username:
                phase = "auth"
                password = config.password.get_secret_value() if config.password else ""
                await smtp.login(config.username, password)
            phase = "mail"
            self._expect(await smtp.execute_command(b"MAIL", f"FROM:<{sender}>".encode()), phase)
            phase = "rcpt"
            self._expect(await smtp.execute_command(b"RCPT", f"TO:<{message.to}>".encode()), phase)
            phase = "data"
            reply = await smtp.execute_command(b"DATA")
            if reply.code != 354:
                raise self._reply_error(phase, reply.code, reply.message)
            phase = "body"
            assert smtp.protocol is not None
            smtp.protocol.write(payload)
            reply = await smtp.protocol.read_response(timeout=config.timeout)
            self._expect(reply, phase)
        except ChannelError:
            smtp.close()
            raise
        except aiosmtplib.SMTPResponseException as exc:
            smtp.close()
            raise self._reply_error(phase, exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            raise self._connection_error(phase, exc, config) from exc
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            smtp.close()
        return DeliveryResult(
            channel=self.name,
            provider_message_id=str(mail["Message-ID"]),
            status="accepted",
            detail={"smtp_reply": f"{reply.code} {reply.message}"},
        )

    @staticmethod
    async def _greet(smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError as exc:
            if exc.code >= 500:
                await smtp.helo()  # a server without ESMTP
            else:
                raise

    def _expect(self, reply: aiosmtplib.SMTPResponse, phase: Phase) -> None:
        if not 200 <= reply.code < 300:
            raise self._reply_error(phase, reply.code, reply.message)

    def _reply_error(self, phase: Phase, code: int, text: str) -> ChannelError:
        where = "the message body" if phase == "body" else phase.upper()
        described = f"email: SMTP server answered {code} {text!r} to {where}"
        kw = {"channel": self.name, "code": code}
        if 400 <= code < 500:
            return TransientError(f"{described}; not accepted, retry later", **kw)
        if phase in ("connect", "starttls", "auth", "mail"):
            return ChannelMisconfigured(
                f"{described}; check the SMTP host, credentials and From address", **kw
            )
        if phase == "rcpt" and (code in (550, 551, 553) or text.startswith("5.1.")):
            return RecipientInvalid(f"{described}; the address is not deliverable", **kw)
        if phase == "body":
            return ContentRejected(f"{described}; the server refused the message", **kw)
        return PermanentError(described, **kw)

    def _connection_error(
        self, phase: Phase, exc: BaseException, config: EmailConfig
    ) -> ChannelError:
        server = f"{config.host}:{config.effective_port()}"
        what = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ssl.SSLCertVerificationError | aiosmtplib.SMTPNotSupported) or (
            isinstance(exc, ssl.SSLError) and phase in ("connect", "starttls")
        ):
            return ChannelMisconfigured(
                f"email: TLS with {server} failed during {phase} ({what}); "
                "check SECURITY, VALIDATE_CERTS and CERT_BUNDLE",
                channel=self.name,
            )
        if phase == "body":
            return AmbiguousError(
                f"email: connection to {server} broke after the message body was sent "
                f"({what}); the server may have accepted it",
                channel=self.name,
            )
        return TransientError(
            f"email: connection to {server} failed during {phase} ({what}); nothing was sent",
            channel=self.name,
        )
