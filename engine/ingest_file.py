"""Bulk import of JSONL or CSV files through the same `Ingestor` as the HTTP API.

Resumable by construction: every event has an id (the file's `event_id`, or one derived
from the line's content), and the store keeps one copy per id, so re-running an
interrupted import stores only what is missing and reports the rest as duplicates.

JSONL: one event per line, in the `POST /v1/events` shape. CSV: a header row; columns
`event_id`, `type`, `occurred_at`, `member_id` (or `id`), `email`, `phone`, `device_id`,
`external_id.<system>`, `properties` (a JSON object) and `properties.<name>` (one property
per column; integers, decimals and true/false are converted).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from engine.ingest import Ingestor
from engine.ingest_models import FieldError
from engine.storable import deeper_than, loads

_MEMBER_COLUMNS = {
    "member_id": "id",
    "id": "id",
    "email": "email",
    "phone": "phone",
    "device_id": "device_id",
}


MAX_LINE_DEPTH = 32
"""Deepest nesting of arrays and objects in one line (as the API's default limit)."""


@dataclass
class Line:
    number: int
    text: str
    event: dict[str, Any] | None
    errors: list[FieldError] = field(default_factory=list)


@dataclass
class ImportSummary:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


def derived_event_id(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "import-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def _scalar(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    for kind in (int, float):
        try:
            converted = kind(value)
        except ValueError:
            continue
        if str(converted) == value:
            return converted
    return value


def _csv_event(row: dict[str, str]) -> dict[str, Any]:
    member: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    event: dict[str, Any] = {}
    for column, value in row.items():
        if column is None or value is None or value == "":
            continue
        column = column.strip()
        if column in _MEMBER_COLUMNS:
            member[_MEMBER_COLUMNS[column]] = value
        elif column.startswith("external_id."):
            member.setdefault("external_ids", {})[column.split(".", 1)[1]] = value
        elif column == "properties":
            parsed = json.loads(value)
            if not isinstance(parsed, dict):
                raise ValueError("the properties column must hold a JSON object")
            properties.update(parsed)
        elif column.startswith("properties."):
            properties[column.split(".", 1)[1]] = _scalar(value)
        elif column in ("event_id", "type", "occurred_at"):
            event[column] = value
        else:
            raise ValueError(f"unknown column {column!r}")
    return {**event, "member": member, "properties": properties}


def read_lines(stream: IO[str], fmt: str) -> Iterator[Line]:
    """Parse a JSONL or CSV stream into events, line by line (errors stay per line)."""
    if fmt == "csv":
        reader = csv.reader(stream)
        try:
            columns = next(reader, None)
        except csv.Error as exc:
            yield Line(1, "", None, [FieldError(field="line 1", reason=f"bad CSV header: {exc}")])
            return
        if columns is None:
            return
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number = reader.line_num
                yield Line(number, "", None, [FieldError(field=f"line {number}", reason=str(exc))])
                continue
            number = reader.line_num
            text = json.dumps(values)
            if not any(v.strip() for v in values):
                continue
            try:
                if len(values) != len(columns):
                    raise ValueError(f"{len(values)} values for {len(columns)} columns")
                event = _csv_event(dict(zip(columns, values, strict=True)))
                yield _with_id(Line(number, text, event))
            except ValueError as exc:
                yield Line(
                    number, text, None, [FieldError(field=f"line {number}", reason=str(exc))]
                )
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            value = loads(text)
        except (ValueError, RecursionError) as exc:
            yield Line(
                number, text, None, [FieldError(field=f"line {number}", reason=f"not JSON: {exc}")]
            )
            continue
        if not isinstance(value, dict):
            yield Line(
                number, text, None, [FieldError(field=f"line {number}", reason="not an object")]
            )
            continue
        if deeper_than(value, MAX_LINE_DEPTH):
            reason = f"nests deeper than {MAX_LINE_DEPTH} levels"
            yield Line(number, text, None, [FieldError(field=f"line {number}", reason=reason)])
            continue
        yield _with_id(Line(number, text, value))


def _with_id(line: Line) -> Line:
    if line.event is not None and not line.event.get("event_id"):
        line.event["event_id"] = derived_event_id(line.event)
    return line


def _batches(lines: Iterable[Line], size: int) -> Iterator[list[Line]]:
    batch: list[Line] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def import_lines(
    ingestor: Ingestor,
    lines: Iterable[Line],
    *,
    batch_size: int = 500,
    on_batch: Callable[[list[Line], ImportSummary], None] | None = None,
    on_reject: Callable[[Line, list[FieldError]], None] | None = None,
) -> ImportSummary:
    """Ingest parsed lines in batches; rejected lines go to `on_reject` with their reasons."""
    summary = ImportSummary()
    for batch in _batches(lines, batch_size):
        parsed = [line for line in batch if line.event is not None]
        for line in batch:
            if line.event is None:
                summary.rejected += 1
                if on_reject:
                    on_reject(line, line.errors)
        if parsed:
            result = await ingestor.ingest_raw([line.event for line in parsed], source="import")
            summary.accepted += result.accepted
            summary.duplicates += result.duplicates
            summary.rejected += result.rejected
            for line, outcome in zip(parsed, result.results, strict=True):
                if outcome.status == "rejected" and on_reject:
                    on_reject(line, outcome.errors)
        summary.lines += len(batch)
        if on_batch:
            on_batch(batch, summary)
    return summary
