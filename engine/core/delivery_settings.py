"""Delivery settings: `JOURNEYMAN_DELIVERY__<FIELD>` (or `delivery` in `.env`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, Field


class DeliverySettings(BaseModel):
    """How the `deliver` activity treats members and channels.

    Every field has a default that suits a shop sending marketing email and SMS; see
    docs/operations.md ("Delivery policies") for what each one does.
    """

    public_url: str = Field(
        default="http://127.0.0.1:8787",
        description="The public base URL of the HTTP API: tracking, unsubscribe and webhook "
        "links are built on it, and provider signatures are checked against it.",
    )
    site_url: str = Field(
        default="https://shop.example",
        description="The shop's own URL, given to templates as `site_url`.",
    )
    templates_dir: Path | None = Field(
        default=None,
        description="A directory of templates that override (and add to) the built-in ones.",
    )
    default_locale: str = "en"
    default_timezone: str = Field(
        default="UTC", description="Time zone of members whose profile has none."
    )
    quiet_hours_start: dt.time | None = Field(
        default=dt.time(21, 0),
        description="Start of quiet hours in the member's local time; None disables them.",
    )
    quiet_hours_end: dt.time = Field(default=dt.time(8, 0), description="End of quiet hours.")
    quiet_hours_channels: list[str] = Field(
        default_factory=lambda: ["sms", "webpush", "fcm", "push"],
        description="Channels whose marketing messages wait for the end of quiet hours "
        "(email sits in an inbox and does not wake anyone). ['*'] means every channel.",
    )
    frequency_cap: int | None = Field(
        default=3,
        ge=1,
        description="At most this many marketing messages per member in any rolling window "
        "(all journeys and channels together); None disables the cap.",
    )
    frequency_window: dt.timedelta = Field(default=dt.timedelta(hours=24))
    opt_in_channels: list[str] = Field(
        default_factory=lambda: ["sms"],
        description="Channels whose marketing messages need explicit consent "
        "('<channel>:marketing' true). Elsewhere consent is assumed until withdrawn.",
    )
    channel_queues: bool = Field(
        default=True,
        description="Make provider calls on each channel's own task queue (rate-limited by "
        "Temporal); false makes them inline in the main queue's `deliver`.",
    )
    outbox_fallback: bool = Field(
        default=False,
        description="Send a channel that has no credentials to the local outbox "
        "(`<data_dir>/outbox`) instead; for development only, off by default.",
    )
    pause_after_misconfiguration: dt.timedelta = Field(
        default=dt.timedelta(minutes=15),
        description="How long a channel that reported a configuration error is paused.",
    )
    reconcile_attempts: int = Field(
        default=3,
        ge=1,
        description="Lookups of an ambiguous send that may answer 'cannot tell now' before "
        "the delivery is settled as in doubt.",
    )
    reconcile_resends: int = Field(
        default=2,
        ge=0,
        description="Times a delivery is sent again after its provider certainly did not "
        "take an ambiguous send; one more ambiguous answer that proves absent is `failed`.",
    )
    reconcile_interval: dt.timedelta = Field(
        default=dt.timedelta(seconds=30),
        description="Wait before looking up an ambiguous send (and between lookups that "
        "could not tell, growing with each), so the provider's own records settle first.",
    )
    reconcile_grace: dt.timedelta = Field(
        default=dt.timedelta(seconds=90),
        description="Age a claim left without any answer (its worker vanished) must reach "
        "before a lookup that finds nothing lets the message be sent again: longer than a "
        "deliver attempt may run.",
    )
    track_clicks: bool = True
    track_opens: bool = True
    click_link_ttl: dt.timedelta = Field(default=dt.timedelta(days=90))
    unsubscribe_link_ttl: dt.timedelta = Field(default=dt.timedelta(days=365))
