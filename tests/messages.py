"""Messages shared by the core tests."""

from __future__ import annotations

import dataclasses

import attrs

from busway import Command, Event, Query


@attrs.frozen
class PlaceOrder(Command[str]):
    customer: str


@attrs.frozen
class CancelOrder(Command[None]):
    order_id: str


@attrs.frozen
class GetOrder(Query[str | None]):
    order_id: str


@attrs.define
class CountOrders(Query[int]):
    customer: str


@dataclasses.dataclass(frozen=True)
class OrderPlaced(Event):
    order_id: str


class ExpressOrderPlaced(OrderPlaced):
    pass


@attrs.frozen
class OrderShipped(Event):
    order_id: str


class PlainCommand:
    """A message that subclasses no busway base."""

    def __init__(self, value: int) -> None:
        self.value = value
