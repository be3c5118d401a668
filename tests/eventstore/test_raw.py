"""Reading a store without its classes: EventTypes(raw_unknown=True) and RawEvent."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from busway.errors import SerializationError, UnknownEventTypeError
from busway.eventstore import EventTypes, RawEvent, SQLiteEventStore


@attrs.frozen
class Known:
    n: int


@attrs.frozen
class Other:
    text: str


def test_unknown_types_read_as_raw_events_and_known_ones_decode(tmp_path: Path) -> None:
    """A raw_unknown registry decodes its classes and leaves the others as stored JSON."""
    path = tmp_path / "events.db"
    with SQLiteEventStore(path, types=EventTypes(Known, Other)) as store:
        store.append("s", [Known(1), Other("hi")])
    with SQLiteEventStore(path, types=EventTypes(Known, raw_unknown=True)) as reader:
        events = [r.event for r in reader.read_all()]
    assert [Known(1), RawEvent("Other", 1, {"text": "hi"})] == events


def test_without_raw_unknown_an_unknown_type_is_refused() -> None:
    """By default an unregistered stored type still raises UnknownEventTypeError."""
    with pytest.raises(UnknownEventTypeError):
        EventTypes(Known).decode("Other", 1, '{"text": "hi"}', position=2)


def test_a_raw_payload_must_still_be_a_json_object() -> None:
    """A damaged payload of an unknown type is refused, not handed out raw."""
    with pytest.raises(SerializationError, match="not a JSON object"):
        EventTypes(raw_unknown=True).decode("Other", 1, "[1]", position=2)
