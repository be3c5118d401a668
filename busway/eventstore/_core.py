"""The part of every store that does no I/O: checking arguments, encoding, deciding.

Backends call these helpers around their own storage, so that all of them validate, encode,
detect idempotent retries and decode stored rows in exactly the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

from .. import context
from ..errors import (
    ConcurrencyError,
    DuplicateEventError,
    InvalidArgumentError,
    SerializationError,
)
from . import _json
from ._ids import new_ids
from ._serialization import EventTypes, dumps
from ._types import ANY, STREAM_EXISTS, ExpectedVersion, NewEvent, RecordedEvent

Row: TypeAlias = tuple[int, str, int, bytes, str, int, str, str, str]
"""A stored event: position, stream id, version, event id (16 bytes), type, schema version,
payload and metadata (JSON text) and recording time (ISO 8601 text). Every backend keeps
this shape."""

ROW_COLUMNS = (
    "position",
    "stream_id",
    "version",
    "event_id",
    "type",
    "schema_version",
    "data",
    "metadata",
    "recorded_at",
)


Pending: TypeAlias = tuple[bytes, str, int, str, str]
"""An encoded event waiting to be written: event id, type, schema version, payload, metadata."""


def check_types(types: object) -> EventTypes:
    """Return *types* if it is an EventTypes registry."""
    if not isinstance(types, EventTypes):
        raise InvalidArgumentError("types", types, "an EventTypes(...) of the event classes")
    return types


def check_stream_id(stream_id: object) -> str:
    """Return *stream_id* if it is a non-empty string that can be stored as text."""
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidArgumentError("stream_id", stream_id, "a non-empty str")
    if not stream_id.isascii():
        try:
            stream_id.encode()
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                "stream_id", stream_id, "valid text (it holds a lone surrogate)"
            ) from None
    return stream_id


def check_expected(expected: object) -> ExpectedVersion:
    """Return *expected* if it is ANY, STREAM_EXISTS or an int of 0 or more (not a bool)."""
    if expected is ANY or expected is STREAM_EXISTS:
        return expected
    if type(expected) is not int or expected < 0:
        raise InvalidArgumentError(
            "expected_version", expected, "an int of 0 or more, NO_STREAM, STREAM_EXISTS or ANY"
        )
    return expected


def check_count(name: str, value: object, minimum: int) -> int:
    """Return *value* if it is an int (not a bool) of at least *minimum*."""
    if type(value) is not int or value < minimum:
        raise InvalidArgumentError(name, value, f"an int of {minimum} or more")
    return value


def check_position(position: object) -> int:
    """Return the first position ``read_all(from_position=...)`` reads; 0 means 1, the start."""
    return max(1, check_count("from_position", position, 0))


def check_limit(limit: object) -> int | None:
    """Return *limit* if it is None or an int of 0 or more."""
    return None if limit is None else check_count("limit", limit, 0)


def wanted_types(wanted: Iterable[type | str] | None) -> tuple[type | str, ...] | None:
    """Return ``read_all(types=...)`` as a tuple: one class or name alone is allowed too."""
    if wanted is None:
        return None
    return (wanted,) if isinstance(wanted, str | type) else tuple(wanted)


def type_names(types: EventTypes, wanted: Iterable[type | str] | None) -> frozenset[str] | None:
    """Return the stored type names that ``read_all(types=...)`` asks for."""
    chosen = wanted_types(wanted)
    if chosen is None:
        return None
    return frozenset(w if isinstance(w, str) else types.name_of(w) for w in chosen)


def _check_metadata(metadata: object, what: str) -> Mapping[str, Any]:
    if not isinstance(metadata, Mapping):
        raise InvalidArgumentError(what, metadata, "a mapping with str keys")
    for key in metadata:
        if not isinstance(key, str):
            raise InvalidArgumentError(f"{what} key", key, "a str")
    return metadata


def prepare(
    types: EventTypes,
    stream_id: object,
    events: object,
    expected_version: object,
    metadata: Mapping[str, Any] | None,
) -> tuple[str, ExpectedVersion, list[Pending]]:
    """Check an append's arguments and encode its events, before any lock is taken."""
    stream = check_stream_id(stream_id)
    expected = check_expected(expected_version)
    if events.__class__ is list or events.__class__ is tuple:  # the usual case, checked first
        items = events
    elif isinstance(events, str | bytes | Mapping) or not isinstance(events, Iterable):
        raise InvalidArgumentError("events", events, "a list of events or NewEvents")
    else:
        items = list(events)
    base: dict[str, Any] = {}
    ctx = context.current()
    if ctx is not None:
        base["correlation_id"] = str(ctx.correlation_id)
        base["causation_id"] = str(ctx.message_id)
    if metadata is not None:
        base.update(_check_metadata(metadata, "metadata"))
    shared = dumps(base, what="metadata") if base else "{}"
    encode = types.encode
    pending: list[Pending] = []
    given: set[bytes] = set()
    for item, fresh in zip(items, new_ids(len(items)), strict=True):
        if type(item) is NewEvent:
            if not isinstance(item.event_id, uuid.UUID):
                raise InvalidArgumentError("NewEvent.event_id", item.event_id, "a uuid.UUID")
            event_id = item.event_id.bytes
            if event_id in given:
                raise DuplicateEventError(item.event_id, stream, "twice in the same batch")
            given.add(event_id)
            own = _check_metadata(item.metadata, "NewEvent.metadata")
            meta = dumps({**base, **own}, what="metadata") if own else shared
            pending.append((event_id, *encode(item.event), meta))
        else:
            pending.append((fresh, *encode(item), shared))
    return stream, expected, pending


def matches(expected: ExpectedVersion, current: int) -> bool:
    """Tell whether a stream at version *current* satisfies *expected*."""
    if expected is ANY:
        return True
    if expected is STREAM_EXISTS:
        return current > 0
    return expected == current


def resolve_existing(
    stream_id: str,
    expected: ExpectedVersion,
    ids: Sequence[bytes],
    found: Mapping[bytes, tuple[str, int]],
) -> int:
    """Return the version after an idempotent retry, or raise DuplicateEventError.

    *found* maps the batch's ids that are already stored to their stream and version. A
    retry is the whole batch, stored in order in this stream, right after *expected* (when
    it is a number), or anywhere in the stream (ANY, STREAM_EXISTS).
    """
    first = found.get(ids[0])
    if first is not None and len(found) == len(ids) and first[0] == stream_id:
        start = first[1]
        in_place = all(found[eid] == (stream_id, start + k) for k, eid in enumerate(ids))
        if in_place and (not isinstance(expected, int) or start == expected + 1):
            return start + len(ids) - 1
        if in_place:
            raise DuplicateEventError(
                uuid.UUID(bytes=ids[0]),
                stream_id,
                f"as this same batch at versions {start}..{start + len(ids) - 1}, not after "
                f"expected version {expected}",
            )
    eid = next(e for e in ids if e in found)
    other_stream, version = found[eid]
    raise DuplicateEventError(
        uuid.UUID(bytes=eid), stream_id, f"at version {version} of stream {other_stream!r}"
    )


def concurrency_error(stream_id: str, expected: ExpectedVersion, current: int) -> ConcurrencyError:
    """Return the error for a stream found at *current* instead of *expected*."""
    return ConcurrencyError(stream_id, expected, current)


# The second last written, and its text: appends within one second share it.
_second: list[tuple[int, str]] = [(-1, "")]


def now() -> str:
    """Return the recording time of an append, as stored: ISO 8601 in UTC, to the microsecond.

    Written from the clock's microseconds, with the text of the second made once a second:
    an append does without a datetime object, which cost it more than its bookkeeping. The
    microseconds are always written (``datetime.isoformat`` leaves out a zero), so the
    times of a table sort as text in time order.
    """
    second, micros = divmod(time.time_ns() // 1000, 1_000_000)
    last, prefix = _second[0]  # read once: another thread may replace it meanwhile
    if second != last:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second[0] = (second, prefix)
    return f"{prefix}.{micros:06d}+00:00"


def _in_utc(moment: datetime) -> datetime:
    # SQLite's own clock (CURRENT_TIMESTAMP, datetime('now')) writes UTC without an offset.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def decode(types: EventTypes, rows: Iterable[Row]) -> list[RecordedEvent]:
    """Return the RecordedEvents of stored *rows*, or raise SerializationError.

    One loop for a page of rows: the events of one append share their recording time, which
    is parsed once for all of them.
    """
    decoded: list[RecordedEvent] = []
    add = decoded.append
    decode_event = types.decode
    parse = _json.parse
    times: dict[object, datetime] = {}
    for position, stream_id, version, event_id, type_name, schema_version, data, meta, at in rows:
        try:
            metadata = {} if meta == "{}" else parse(meta)
            if metadata.__class__ is not dict:
                raise TypeError("the metadata is not a JSON object")
            if (
                stream_id.__class__ is not str
                or version.__class__ is not int
                or type_name.__class__ is not str
                or schema_version.__class__ is not int
            ):
                raise TypeError("the stream id, version, type name or schema version is damaged")
            if event_id.__class__ is not bytes or len(event_id) != 16:
                raise TypeError("the event id is not 16 bytes")
            recorded_at = times.get(at)
            if recorded_at is None:
                recorded_at = datetime.fromisoformat(at)
                if recorded_at.tzinfo is not UTC:
                    recorded_at = _in_utc(recorded_at)
                times[at] = recorded_at
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(
                f"the event at position {position} ({type_name}) cannot be decoded: its stored "
                f"record is corrupt ({exc}); restore it from a backup",
                type_name=type_name if isinstance(type_name, str) else None,
                position=position,
            ) from exc
        event = decode_event(type_name, schema_version, data, position=position)
        add(
            RecordedEvent(
                stream_id, version, position, event_id, type_name, event, metadata, recorded_at
            )
        )
    return decoded


def wanted(rows: Sequence[Row], names: frozenset[str] | None, count: int | None) -> Sequence[Row]:
    """Return the rows of a page that ``read_all`` yields: of *names* only, *count* at most."""
    if names is not None:
        rows = [row for row in rows if row[4] in names]
    return rows if count is None else rows[:count]


def decode_page(types: EventTypes, rows: Sequence[Row]) -> Iterable[RecordedEvent]:
    """Return the events of a page of rows that ``read_all`` yields.

    A damaged row fails the page; then the events before it come first, one at a time, and
    then its error, as if the page had been decoded event by event.
    """
    try:
        return decode(types, rows)
    except SerializationError:
        return _up_to_the_damage(types, rows)


def _up_to_the_damage(types: EventTypes, rows: Sequence[Row]) -> Iterator[RecordedEvent]:
    for row in rows:
        yield from decode(types, (row,))
