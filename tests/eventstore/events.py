"""Event classes the event store tests append (names are what the store keys on)."""

from __future__ import annotations

import decimal

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


def types() -> EventTypes:
    """Return a fresh registry of the test events."""
    return EventTypes(OrderPlaced, OrderCancelled, Tick)
