"""Protocol peers on 127.0.0.1 that speak the providers' wire formats, count what they receive
and can be scripted to fail. Each is an async context manager:

    async with TwilioPeer() as twilio:
        twilio.rate_limit(times=2, retry_after=1)
        ...
        assert twilio.requests == 3 and twilio.accepted == 1

`HttpPeer` is the base class for writing a peer of your own provider.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "HttpPeer": "._http",
    "Failure": "._http",
    "closed_port": "._http",
    "SmtpPeer": ".smtp",
    "TwilioPeer": ".twilio",
    "WebPushPeer": ".webpush",
    "generate_vapid_keys": ".webpush",
    "FcmPeer": ".fcm",
    "WebhookPeer": ".webhook",
    "LocalCertificate": ".tls",
    "self_signed": ".tls",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy, so that using one peer does not import every provider's dependencies.
    if name not in _EXPORTS:
        raise AttributeError(name)
    return getattr(import_module(_EXPORTS[name], __name__), name)
