"""Bulk import of JSONL or CSV files through the same `Ingestor` as the HTTP API.

Resumable by construction: every event has an id (the file's `event_id`, or one derived
from the line's content), and the store keeps one copy per id, so re-running an
interrupted import stores only what is missing and reports the rest as duplicates.

JSONL: one event per line, in the `POST /v1/events` shape. CSV: a header row; columns
`event_id`, `type`, `occurred_at`, `member_id` (or `id`), `email`, `phone`, `device_id`,
`external_id.<system>`, `properties` (a JSON object) and `properties.<name>` (one property
per column, typed by `parse_value`; a `:<type>` suffix on the header or a `types` entry
declares the type).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

from journeyman.engine.ingest.ingestor import Ingestor
from journeyman.engine.ingest.models import FieldError
from journeyman.engine.ingest.storable import deeper_than, loads

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


COLUMN_TYPES = ("auto", "string", "number", "integer", "boolean")
"""How a `properties.<name>` value is read; `auto` unless declared."""

# A number as people write one: no sign but `-`, no leading zeros, no exponent. Anything
# else (`007`, `+1`, `1e3`, `nan`) is text unless the column is declared a number.
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_DECLARED_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # leading zeros allowed


class LineTextError(ValueError):
    """A line of the file is not UTF-8 text."""


class TextLines:
    """The lines of a UTF-8 byte stream, decoded one by one, and how many bytes were read.

    A text file iterated line by line cannot tell its position (`tell()` raises), and a
    progress bar needs it: counting the bytes of each line as it is read gives it exactly.
    Lines end as in a file opened with `newline=""`: at LF, CRLF or a lone CR, kept as is.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.position = 0

    def __iter__(self) -> Iterator[str]:
        number = 0
        for chunk in iter(self.raw.readline, b""):
            self.position += len(chunk)
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise LineTextError(f"line {number + 1} is not UTF-8 ({exc.reason})") from exc
            if number == 0:
                text = text.removeprefix("\ufeff")
            parts = _LONE_CR.split(text) if "\r" in text else (text,)
            for part in parts:
                if part:
                    number += 1
                    yield part


_LONE_CR = re.compile(r"(?<=\r)(?!\n)")  # after a CR that no LF follows


def _number(text: str, pattern: re.Pattern[str] = _NUMBER) -> int | float | None:
    """`text` as a number that carries exactly the value written, or None.

    Decimals become floats only when the float is that very decimal (any decimal of up to 15
    significant digits): `1.50` is stored as the JSON number `1.5`, never as a rounded
    neighbour. Longer ones stay text."""
    if not pattern.fullmatch(text):
        return None
    try:
        if "." not in text:
            return int(text)
        value = float(text)
    except ValueError:  # more digits than Python converts (4,300)
        return None
    return value if Decimal(repr(value)) == Decimal(text) else None


def parse_value(text: str, kind: str = "auto") -> Any:
    """A CSV cell as a property value.

    `auto`: `true`/`false` are booleans; a plain decimal number (`12`, `-3`, `1.50`) is a
    number; everything else, including numbers with leading zeros such as zip codes and
    phone numbers (`00123`), stays text. `string` keeps the text; `number`, `integer` and
    `boolean` refuse a value that is not one (ValueError)."""
    if kind == "string":
        return text
    if kind == "boolean" or (kind == "auto" and text in ("true", "false")):
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text.lower() == "true"
    if kind == "auto":
        number = _number(text)
        return text if number is None else number
    number = _number(text, _DECLARED_NUMBER)
    if kind == "integer" and not isinstance(number, int):
        raise ValueError(f"{text!r} is not an integer")
    if number is None:
        raise ValueError(
            f"{text!r} is not a number (digits with an optional - and decimal point; "
            "decimals of up to 15 significant digits)"
        )
    return number


def _legacy_scalar(value: str) -> Any:
    """The value earlier versions read: event ids derived from a line stay the same, so a
    file imported before is not stored twice when imported again."""
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


def split_type(column: str) -> tuple[str, str | None]:
    """`properties.zip:string` -> (`properties.zip`, `string`); no known suffix -> None."""
    base, sep, kind = column.rpartition(":")
    if sep and kind in COLUMN_TYPES:
        return base, kind
    return column, None


def _csv_event(
    row: dict[str, str], types: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The event of one CSV row, and its properties as the id derivation reads them."""
    member: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    legacy: dict[str, Any] = {}
    event: dict[str, Any] = {}
    for header, value in row.items():
        if header is None or value is None or value == "":
            continue
        column, kind = split_type(header.strip())
        if column in _MEMBER_COLUMNS:
            member[_MEMBER_COLUMNS[column]] = value
        elif column.startswith("external_id."):
            member.setdefault("external_ids", {})[column.split(".", 1)[1]] = value
        elif column == "properties":
            parsed = json.loads(value)
            if not isinstance(parsed, dict):
                raise ValueError("the properties column must hold a JSON object")
            properties.update(parsed)
            legacy.update(parsed)
        elif column.startswith("properties."):
            name = column.split(".", 1)[1]
            kind = kind or (types or {}).get(name, "auto")
            try:
                properties[name] = parse_value(value, kind)
            except ValueError as exc:
                raise ValueError(f"column {header.strip()}: {exc}") from None
            legacy[name] = _legacy_scalar(value)
        elif column in ("event_id", "type", "occurred_at"):
            event[column] = value
        else:
            raise ValueError(f"unknown column {column!r}")
    return {**event, "member": member, "properties": properties}, {
        **event,
        "member": member,
        "properties": legacy,
    }


def read_lines(
    stream: Iterable[str], fmt: str, types: Mapping[str, str] | None = None
) -> Iterator[Line]:
    """Parse a JSONL or CSV stream into events, line by line (errors stay per line).

    `types` declares the type of CSV property columns by property name (see `parse_value`);
    a `:<type>` suffix in the header wins over it."""
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
                event, basis = _csv_event(dict(zip(columns, values, strict=True)), types)
                if not event.get("event_id"):
                    event["event_id"] = derived_event_id(basis)
                yield Line(number, text, event)
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
