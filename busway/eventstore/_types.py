"""The values an event store takes and returns: expected versions, new and recorded events."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import datetime
from operator import attrgetter
from typing import Any, Final, Literal, TypeAlias, final

import attrs

from ._ids import new_event_id

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "ExpectedVersion",
    "NewEvent",
    "RecordedEvent",
]


class _StreamState(enum.Enum):
    """Expected versions that are not a number: any version at all, or any but 0."""

    ANY = "ANY"
    STREAM_EXISTS = "STREAM_EXISTS"

    def __repr__(self) -> str:
        return self.value

    __str__ = __repr__


ANY: Final = _StreamState.ANY
"""Append whatever version the stream is at (no concurrency check)."""

STREAM_EXISTS: Final = _StreamState.STREAM_EXISTS
"""Append only to a stream that already has at least one event."""

NO_STREAM: Final = 0
"""Append only to a stream that has no events yet (the same as expecting version 0)."""

ExpectedVersion: TypeAlias = int | Literal[_StreamState.ANY, _StreamState.STREAM_EXISTS]
"""What ``append(expected_version=...)`` accepts: an exact version, ANY or STREAM_EXISTS."""


def _metadata(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return {} if value is None else value


@final
@attrs.frozen
class NewEvent:
    """An event to append, with the id that makes retrying its append idempotent.

    Create it once and append the same object again after a timeout or a crash: the store
    recognises its id and does not write it twice.
    """

    event: object
    event_id: uuid.UUID = attrs.field(factory=new_event_id, kw_only=True)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, kw_only=True, converter=_metadata)


def _read_only(slot: str, doc: str) -> Any:
    # A property over a C getter: reading it costs little more than reading a slot.
    return property(attrgetter(slot), doc=doc)


@final
class RecordedEvent:
    """An event as the store holds it: where it is, what it is, and when it was written.

    Immutable: its fields are read-only. Stores build one for every event they read, so it
    is a plain slotted class that costs a few stores to build. *event_id* may be given as
    the UUID's 16 bytes, as stores give it: it becomes a UUID when it is first read.
    """

    __slots__ = (
        "_event",
        "_event_id",
        "_metadata",
        "_position",
        "_recorded_at",
        "_stream_id",
        "_type",
        "_version",
    )
    __match_args__ = (
        "stream_id",
        "version",
        "position",
        "event_id",
        "type",
        "event",
        "metadata",
        "recorded_at",
    )

    def __init__(  # noqa: PLR0917 - read in order, like the attrs class it replaces
        self,
        stream_id: str,
        version: int,
        position: int,
        event_id: uuid.UUID | bytes,
        type: str,
        event: object,
        metadata: Mapping[str, Any],
        recorded_at: datetime,
    ) -> None:
        self._stream_id = stream_id
        self._version = version
        self._position = position
        self._event_id = event_id
        self._type = type
        self._event = event
        self._metadata = metadata
        self._recorded_at = recorded_at

    stream_id: Final[str] = _read_only("_stream_id", "The stream the event belongs to.")
    version: Final[int] = _read_only("_version", "1-based place in its stream.")
    position: Final[int] = _read_only(
        "_position", "1-based place in the whole store; strictly increasing, but not always by 1."
    )
    type: Final[str] = _read_only(
        "_type", "The name the event's class is registered under in the store's EventTypes."
    )
    event: Final[object] = _read_only(
        "_event", "The decoded event, upcast to the registered class's current schema version."
    )
    metadata: Final[Mapping[str, Any]] = _read_only("_metadata", "What was stored beside it.")
    recorded_at: Final[datetime] = _read_only("_recorded_at", "When the append committed, in UTC.")

    @property
    def event_id(self) -> uuid.UUID:
        """The event's id; retrying an append with the same id does not store it twice."""
        event_id = self._event_id
        if isinstance(event_id, bytes):
            # Built on first use: most readers never look at ids, and a UUID costs as much
            # to build as the rest of the record.
            event_id = self._event_id = uuid.UUID(bytes=event_id)
        return event_id

    def _fields(self) -> tuple[object, ...]:
        return (
            self._stream_id,
            self._version,
            self._position,
            self.event_id,
            self._type,
            self._event,
            self._metadata,
            self._recorded_at,
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not RecordedEvent:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self.__match_args__, self._fields(), strict=True)
        )
        return f"RecordedEvent({fields})"

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return RecordedEvent, self._fields()
