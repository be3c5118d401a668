"""Parked events of every shape a store must keep, for the contracts of the stores that park."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
from hypothesis import strategies as st

from ..subscriptions import ParkedEvent
from .strategies import messages

__all__ = ["parked_event", "parked_events", "texts"]

LARGEST = 2**63 - 1
"""The largest position, version or count a store must keep (SQLite's largest integer)."""

texts = st.text(st.characters(codec="utf-8"), max_size=12)
"""Text any store can keep: every character but lone surrogates, NUL included."""

_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=9))]
)
# A day's margin at both ends of the calendar, so that each moment is one in UTC too.
_moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_zones
)


def parked_events(
    subscription: str, positions: st.SearchStrategy[int] | None = None
) -> st.SearchStrategy[ParkedEvent]:
    """Return a strategy of events *subscription* could park, each field drawn whole.

    Positions are drawn from *positions* if given (a few, so that some repeat).
    """
    return messages(
        ParkedEvent,
        subscription=subscription,
        position=st.integers(1, LARGEST) if positions is None else positions,
        stream_id=texts.filter(bool),
        version=st.integers(1, LARGEST),
        type=texts.filter(bool),
        error=texts,
        attempts=st.integers(1, LARGEST),
        parked_at=_moments,
    )


def parked_event(name: str = "p", position: int = 7, **changes: Any) -> ParkedEvent:
    """Return an event *name* parked at *position*, with *changes* to its other fields."""
    event = ParkedEvent(
        subscription=name,
        position=position,
        stream_id="order-1",
        version=3,
        event_id=uuid.UUID(int=position),
        type="OrderPlaced",
        error="ValueError: no such product",
        attempts=3,
        parked_at=datetime(2024, 5, 1, 12, 0, 0, 250, tzinfo=UTC),
    )
    return attrs.evolve(event, **changes)
