"""Event classes the event store tests append (names are what the store keys on)."""

from __future__ import annotations

import decimal
import enum

import attrs

from busway.eventstore import EventTypes


@attrs.frozen
class OrderPlaced:
    order_id: str
    total: decimal.Decimal


@attrs.frozen
class OrderCancelled:
    order_id: str


@attrs.frozen
class Tick:
    """What the worker processes append: who wrote it and its sequence number there."""

    worker: str
    n: int


class Colour(enum.Enum):
    """An Enum field's values, stored as strings."""

    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Point:
    """A class nested in events."""

    x: int
    y: int


@attrs.frozen
class Label:
    """Another nested class, with Point's fields: only a tag tells them apart in a union."""

    x: int
    y: int


def types() -> EventTypes:
    """Return a fresh registry of the test events."""
    return EventTypes(OrderPlaced, OrderCancelled, Tick)
