"""Logging for the engine's processes: our own loggers at INFO, HTTP client libraries quiet.

`httpx` logs every request's full URL at INFO, and some providers put a credential in the
URL (a Telegram-style bot API: `https://api.example/bot<token>/sendMessage`). So the HTTP
client libraries log at WARNING unless `JOURNEYMAN_LOG_HTTP_REQUESTS` is on, and even then a
request's URL is logged as its origin only (`https://api.example/…`), never its path or query.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

HTTP_CLIENT_LOGGERS = ("httpx", "httpcore", "h2", "hpack", "urllib3", "twilio.http_client")


class OriginOnly(logging.Filter):
    """Cuts every URL among a record's arguments down to its origin."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_origin(a) for a in record.args)
        return True


def _origin(value: object) -> object:
    text = str(value) if type(value).__name__ == "URL" else value
    if not isinstance(text, str) or "://" not in text:
        return value
    parts = urlsplit(text)
    if not parts.scheme or not parts.hostname:
        return value
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{host}/…"


def quiet_http_clients(log_requests: bool = False) -> None:
    """HTTP client libraries at WARNING (or DEBUG with `log_requests`), URLs cut to origins."""
    for name in HTTP_CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG if log_requests else logging.WARNING)
        if not any(isinstance(f, OriginOnly) for f in logger.filters):
            logger.addFilter(OriginOnly())


def configure_logging(level: int = logging.INFO, *, log_http_requests: bool = False) -> None:
    """What `journeyman worker` and `journeyman dispatcher` log: INFO to stderr."""
    logging.basicConfig(level=level)
    quiet_http_clients(log_http_requests)
