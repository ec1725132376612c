"""The local outbox: a channel for development that writes messages to disk.

Each message becomes one JSON file `<directory>/<key-hash>.json`, written atomically (a
complete temporary file hard-linked into place), so a reader never sees half a message and
two concurrent sends with one key write it once. The file name is
derived from the idempotency key: a second send with the same key finds the file and returns
the first result marked `duplicate=True` without writing again.

The engine sets its directory to `<data directory>/outbox` unless
`JOURNEYMAN_CHANNELS__OUTBOX__DIRECTORY` moves it (`.journeyman/outbox` when used alone), and
routes a channel that has no credentials here when `JOURNEYMAN_DELIVERY__OUTBOX_FALLBACK` is on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from .base import Channel, ChannelConfig, ContactKind, DeliveryResult, Message
from .errors import ChannelMisconfigured

__all__ = ["OutboxChannel", "OutboxConfig", "read_outbox"]


class OutboxConfig(ChannelConfig):
    directory: Path = Field(
        default=Path(".journeyman/outbox"), description="Where message files are written."
    )


class OutboxChannel(Channel):
    name: ClassVar[str] = "outbox"
    contact: ClassVar[ContactKind] = ContactKind.ANY
    rate_limit_per_second: ClassVar[float] = 200.0
    Config = OutboxConfig
    description = "Writes each message as a JSON file (development)."

    @property
    def directory(self) -> Path:
        config = self.config
        assert isinstance(config, OutboxConfig)
        return config.directory

    def path_for(self, idempotency_key: str) -> Path:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        return self.directory / f"{digest}.json"

    async def send(self, message: Message, idempotency_key: str) -> DeliveryResult:
        path = self.path_for(idempotency_key)
        return await asyncio.to_thread(self._write, path, message, idempotency_key)

    def _write(self, path: Path, message: Message, idempotency_key: str) -> DeliveryResult:
        if path.exists():
            record = json.loads(path.read_text())
            return DeliveryResult(
                channel=self.name,
                provider_message_id=record["id"],
                status="written",
                accepted_at=datetime.fromisoformat(record["written_at"]),
                duplicate=True,
                detail={"path": str(path)},
            )
        written_at = datetime.now(UTC)
        record = {
            "id": path.stem,
            "idempotency_key": idempotency_key,
            "written_at": written_at.isoformat(),
            "message": _jsonable(asdict(message)),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(record)}.tmp")
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
            try:
                os.link(tmp, path)  # atomic, and fails if another send got there first
            except FileExistsError:
                return self._write(path, message, idempotency_key)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise ChannelMisconfigured(
                f"outbox: cannot write to {path.parent} ({exc}); "
                "set JOURNEYMAN_CHANNELS__OUTBOX__DIRECTORY to a writable directory",
                channel=self.name,
            ) from exc
        return DeliveryResult(
            channel=self.name,
            provider_message_id=path.stem,
            status="written",
            accepted_at=written_at,
            detail={"path": str(path)},
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def read_outbox(directory: Path | str) -> Iterator[dict[str, Any]]:
    """The records in an outbox directory, oldest first."""
    records = [json.loads(p.read_text()) for p in Path(directory).glob("*.json")]
    yield from sorted(records, key=lambda r: r["written_at"])
