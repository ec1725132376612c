"""Consent per channel and purpose, recorded as events.

Every change is a `member.consent_changed` event on the member's stream:

    {"channel": "email", "purpose": "marketing", "granted": false,
     "source": "preference_center", "changed_at": "…", "evidence": {"$sealed": "…"}}

`source` says who or what changed it (an API caller, the preference centre, double
opt-in, an SMS keyword); `evidence` (optional: an IP address, a form id, the wording shown)
is personal, so it is sealed under the member's data key and disappears with erasure. The
profile projection folds the events into `consent["<channel>:<purpose>"]`, and the
`deliver` activity checks it at send time. A withdrawal also writes a delivery block, so it
stops the very next send even before the projection has caught up.

Double opt-in: with the `double_opt_in` journey enabled
(`JOURNEYMAN_JOURNEYS='{"double_opt_in": {"enabled": true}}'`), a marketing grant on one of
its channels is not recorded as granted: `member.consent_requested` is appended instead, the
journey sends a confirmation message with a signed link, and following the link
(`POST /v1/consent/confirm/{token}`) appends the grant with source `double_opt_in`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from journeyman.engine.core.settings import Settings
from journeyman.engine.delivery.recording import Block, record
from journeyman.engine.identity import resolve_member_id
from journeyman.engine.identity.crypto import Keyring, load_data_keys
from journeyman.engine.ingest.storable import Timestamp, check_json
from journeyman.event_store import NewEvent, PostgresEventStore
from pydantic import AfterValidator, BaseModel, Field
from temporalio import activity

from .fields import seal_fields

Purpose = Literal["marketing", "transactional"]
CONFIRM_ACTIVITY = "consent_confirmation_link"


class ConsentChange(BaseModel):
    channel: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_\-]+$", examples=["email"])
    purpose: Purpose = "marketing"
    granted: bool


class ConsentUpdate(BaseModel):
    """A set of consent changes from one source."""

    changes: list[ConsentChange] = Field(min_length=1, max_length=20)
    source: str = Field(
        default="api",
        min_length=1,
        max_length=60,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="Who or what changed consent, e.g. preference_center, signup_form.",
    )
    evidence: Annotated[dict[str, Any], AfterValidator(check_json)] | None = Field(
        default=None,
        description="Proof of consent (IP address, form, wording); stored encrypted under the "
        "member's data key.",
    )
    occurred_at: Timestamp | None = Field(
        default=None,
        description="When the member gave or withdrew consent (default: now): ISO 8601 with a "
        "time zone, inside the range ingestion accepts.",
    )


@dataclass(frozen=True)
class ConsentOutcome:
    channel: str
    purpose: str
    status: Literal["granted", "withdrawn", "confirmation_requested"]
    event_id: str


def double_opt_in_channels(settings: Settings) -> list[str]:
    """The channels that need a confirmed opt-in, or [] when the journey is not enabled."""
    conf = settings.journeys.get("double_opt_in") or {}
    if not conf.get("enabled"):
        return []
    channels = conf.get("channels") or ["email"]
    return [c for c in channels if isinstance(c, str)]


async def change_consent(
    store: PostgresEventStore,
    member_id: str,
    update: ConsentUpdate,
    *,
    settings: Settings,
    confirmed: bool = False,
) -> list[ConsentOutcome]:
    """Record `update` for `member_id` (following merges). With double opt-in enabled, a
    marketing grant on a double opt-in channel becomes a confirmation request unless
    `confirmed`."""
    member_id = await resolve_member_id(store.pool, member_id, Keyring(settings.resolved_secret()))
    at = (update.occurred_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    needs_confirmation = set(double_opt_in_channels(settings))
    key = None
    if update.evidence:
        keys = await load_data_keys(store.pool, Keyring(settings.resolved_secret()), [member_id])
        key = keys.get(member_id)
    events: list[NewEvent] = []
    blocks: list[Block] = []
    outcomes: list[ConsentOutcome] = []
    for change in update.changes:
        event_id = f"consent:{uuid.uuid4().hex}"
        data: dict[str, Any] = {
            "channel": change.channel,
            "purpose": change.purpose,
            "source": update.source,
            "changed_at": at.isoformat(),
        }
        if (
            change.granted
            and change.purpose == "marketing"
            and change.channel in needs_confirmation
            and not confirmed
        ):
            kind = "member.consent_requested"
            data["request_id"] = event_id
            status: Literal["granted", "withdrawn", "confirmation_requested"] = (
                "confirmation_requested"
            )
        else:
            kind = "member.consent_changed"
            data["granted"] = change.granted
            status = "granted" if change.granted else "withdrawn"
            if not change.granted:
                blocks.append(Block(change.channel, change.purpose, "consent withdrawn"))
        if update.evidence and key is not None:
            data = seal_fields({**data, "evidence": update.evidence}, key, event_id, ["evidence"])
        events.append(
            NewEvent(kind, data, {"source": "consent"}, event_id=event_id, occurred_at=at)
        )
        outcomes.append(ConsentOutcome(change.channel, change.purpose, status, event_id))
    await record(store, member_id, events, blocks=blocks)
    return outcomes


# ---------------------------------------------------------------------- confirmation links
class InvalidConfirmation(ValueError):
    """A confirmation token that was altered, cut short or signed with another secret."""


class ExpiredConfirmation(InvalidConfirmation):
    """A correctly signed confirmation token past its expiry."""


@dataclass(frozen=True)
class ConfirmClaims:
    member_id: str
    channel: str
    purpose: str
    request_id: str
    expires_at: dt.datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ConfirmSigner:
    """HMAC-SHA256-signed double opt-in tokens, under a key derived from the server secret
    (a different key from tracking links: a click token is never a confirmation)."""

    def __init__(self, secret: bytes, base_url: str) -> None:
        self._key = hmac.new(secret, b"journeyman consent confirmation v1", hashlib.sha256).digest()
        self.base_url = base_url.rstrip("/")

    def token(
        self,
        *,
        member_id: str,
        channel: str,
        purpose: str,
        request_id: str,
        expires_at: dt.datetime,
    ) -> str:
        claims = {
            "m": member_id,
            "c": channel,
            "p": purpose,
            "r": request_id,
            "x": int(expires_at.timestamp()),
        }
        payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def url(self, **claims: Any) -> str:
        return f"{self.base_url}/v1/consent/confirm/{self.token(**claims)}"

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:20]

    def verify(self, token: str, *, now: dt.datetime | None = None) -> ConfirmClaims:
        try:
            encoded, signature = token.split(".", 1)
            payload, given = _unb64(encoded), _unb64(signature)
        except ValueError:
            raise InvalidConfirmation("the confirmation link is malformed") from None
        if not hmac.compare_digest(given, self._sign(payload)):
            raise InvalidConfirmation("the confirmation link's signature does not match")
        try:
            c = json.loads(payload)
            claims = ConfirmClaims(
                member_id=str(c["m"]),
                channel=str(c["c"]),
                purpose=str(c["p"]),
                request_id=str(c["r"]),
                expires_at=dt.datetime.fromtimestamp(int(c["x"]), dt.UTC),
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidConfirmation("the confirmation link's payload is not valid") from None
        if (now or dt.datetime.now(dt.UTC)) >= claims.expires_at:
            raise ExpiredConfirmation(
                f"the confirmation link expired at {claims.expires_at.isoformat()}"
            )
        return claims

    @classmethod
    def from_settings(cls, settings: Settings) -> ConfirmSigner:
        return cls(settings.resolved_secret(), settings.delivery.public_url)


async def confirm(
    store: PostgresEventStore, claims: ConfirmClaims, *, settings: Settings
) -> ConsentOutcome:
    """Record the grant a confirmation link stands for (idempotent: one event per request)."""
    # a link sent before its member was re-keyed names the old id: now a `user_id` alias
    keyring = Keyring(settings.resolved_secret())
    member_id = await resolve_member_id(store.pool, claims.member_id, keyring)
    event_id = f"consent-confirmed:{claims.request_id}"
    if await store.pool.fetchval(
        "SELECT erased_at IS NOT NULL FROM members WHERE member_id = $1", member_id
    ):
        raise ExpiredConfirmation("the member this link was sent to has been erased")
    data = {
        "channel": claims.channel,
        "purpose": claims.purpose,
        "granted": True,
        "source": "double_opt_in",
        "request_id": claims.request_id,
        "changed_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    await record(
        store,
        member_id,
        [NewEvent("member.consent_changed", data, {"source": "consent"}, event_id=event_id)],
    )
    return ConsentOutcome(claims.channel, claims.purpose, "granted", event_id)


class ConfirmLinkRequest(BaseModel):
    member_id: str
    channel: str
    purpose: str = "marketing"
    request_id: str
    valid_for: dt.timedelta = dt.timedelta(days=7)


class ConsentActivities:
    """The activity the double opt-in journey calls to get its signed confirmation link
    (the secret never enters workflow code or its history: the codec encrypts the URL)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._signer: ConfirmSigner | None = None

    def all(self) -> list[Any]:
        return [self.consent_confirmation_link]

    @activity.defn(name=CONFIRM_ACTIVITY)
    async def consent_confirmation_link(self, request: ConfirmLinkRequest) -> str:
        if self._signer is None:
            self._signer = ConfirmSigner.from_settings(self.settings)
        return self._signer.url(
            member_id=request.member_id,
            channel=request.channel,
            purpose=request.purpose,
            request_id=request.request_id,
            expires_at=dt.datetime.now(dt.UTC) + request.valid_for,
        )
