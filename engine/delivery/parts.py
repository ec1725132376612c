"""What every step of a delivery reads: the store, the configured channels, the settings and
keys, the link signer and templates, the clock, and the outcome recorder. `Deliverer` is
built on it, and reconciliation takes it, so neither reaches into the other."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from journeyman.channels import Channel, Message
from journeyman.engine.core.delivery_settings import DeliverySettings
from journeyman.engine.core.settings import Settings, get_settings
from journeyman.engine.identity.crypto import Keyring
from journeyman.event_store import PostgresEventStore

from .choice import Candidate, SendContext
from .compose import compose
from .links import LinkSigner
from .outcomes import Outcomes
from .templates import Templates


class DeliveryParts:
    def __init__(
        self,
        store: PostgresEventStore,
        channels: Mapping[str, Channel],
        *,
        settings: Settings | None = None,
        templates: Templates | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.settings = settings or get_settings()
        self.config: DeliverySettings = self.settings.delivery
        secret = self.settings.resolved_secret()
        self.keyring = Keyring(secret)
        self.links = LinkSigner(secret, self.config.public_url)
        self.templates = templates or Templates(
            self.config.templates_dir, default_locale=self.config.default_locale
        )
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.outcomes = Outcomes(store, self.clock)

    def message(self, ctx: SendContext, chosen: Candidate) -> Message:
        """The rendered message for `chosen` (see `compose`)."""
        return compose(ctx, chosen, config=self.config, links=self.links, templates=self.templates)
