"""RecordedEvent: an immutable value, whichever way a store builds it."""

from __future__ import annotations

import copy
import pickle
import uuid
from datetime import UTC, datetime

import pytest

from busway.eventstore import RecordedEvent

from .events import OrderCancelled

EVENT_ID = uuid.UUID("01234567-89ab-7def-8123-456789abcdef")
AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def _recorded(event_id: uuid.UUID | bytes = EVENT_ID, **changes: object) -> RecordedEvent:
    fields: dict[str, object] = {
        "stream_id": "o-1",
        "version": 2,
        "position": 7,
        "event_id": event_id,
        "type": "OrderCancelled",
        "event": OrderCancelled("o-1"),
        "metadata": {"user": "ann"},
        "recorded_at": AT,
        **changes,
    }
    return RecordedEvent(**fields)  # type: ignore[arg-type]


def test_fields_read_back() -> None:
    """Every field reads back as given, by name and by pattern matching."""
    recorded = _recorded()
    assert ("o-1", 2, 7, EVENT_ID, "OrderCancelled") == (
        recorded.stream_id,
        recorded.version,
        recorded.position,
        recorded.event_id,
        recorded.type,
    )
    assert (OrderCancelled("o-1"), {"user": "ann"}, AT) == (
        recorded.event,
        recorded.metadata,
        recorded.recorded_at,
    )
    match recorded:
        case RecordedEvent(stream_id, version, position, event_id):
            assert ("o-1", 2, 7, EVENT_ID) == (stream_id, version, position, event_id)


@pytest.mark.parametrize("field", RecordedEvent.__match_args__)
def test_fields_are_read_only(field: str) -> None:
    """No field of a recorded event can be changed or deleted."""
    recorded = _recorded()
    with pytest.raises(AttributeError):
        setattr(recorded, field, None)
    with pytest.raises(AttributeError):
        delattr(recorded, field)
    with pytest.raises(AttributeError):
        recorded.extra = 1  # type: ignore[attr-defined]


def test_an_id_given_as_bytes_is_a_uuid() -> None:
    """An id given as 16 bytes, as stores give it, reads as its UUID and compares as one."""
    recorded = _recorded(EVENT_ID.bytes)
    assert EVENT_ID == recorded.event_id
    assert isinstance(recorded.event_id, uuid.UUID)
    assert _recorded() == _recorded(EVENT_ID.bytes)
    assert repr(_recorded()) == repr(_recorded(EVENT_ID.bytes))


def test_equality() -> None:
    """Recorded events are equal when every field is, and never equal to other objects."""
    assert _recorded() == _recorded()
    assert _recorded() != _recorded(position=8)
    assert _recorded() != _recorded(metadata={})
    assert _recorded() != ("o-1", 2, 7, EVENT_ID, "OrderCancelled")
    frozen = _recorded(metadata=())  # a hashable stand-in for the metadata mapping
    assert hash(frozen) == hash(_recorded(EVENT_ID.bytes, metadata=()))


def test_repr_names_every_field() -> None:
    """The repr reads like the constructor call."""
    assert (
        "RecordedEvent(stream_id='o-1', version=2, position=7, "
        "event_id=UUID('01234567-89ab-7def-8123-456789abcdef'), type='OrderCancelled', "
        "event=OrderCancelled(order_id='o-1'), metadata={'user': 'ann'}, "
        "recorded_at=datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc))"
    ) == repr(_recorded())


def test_copies_and_pickles_are_equal() -> None:
    """A copy, a deep copy and a pickled round trip are equal recorded events."""
    recorded = _recorded(EVENT_ID.bytes)
    assert recorded == copy.copy(recorded)
    assert recorded == copy.deepcopy(recorded)
    assert recorded == pickle.loads(pickle.dumps(recorded))
