"""The values an event store takes and returns: expected versions, new and recorded events."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import datetime
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


@final
@attrs.frozen
class RecordedEvent:
    """An event as the store holds it: where it is, what it is, and when it was written."""

    stream_id: str
    version: int
    """1-based place in its stream."""
    position: int
    """1-based place in the whole store; strictly increasing, but not always by 1."""
    event_id: uuid.UUID
    type: str
    """The name the event's class is registered under in the store's EventTypes."""
    event: object
    """The decoded event, upcast to the registered class's current schema version."""
    metadata: Mapping[str, Any]
    recorded_at: datetime
    """When the append committed, in UTC."""
