"""What the order service is asked (commands, queries) and what it records (events)."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

import attrs

from busway import Command, Event, Query
from busway.eventstore import EventTypes

__all__ = [
    "EVENT_TYPES",
    "CancelOrder",
    "GetOrder",
    "LineItem",
    "ListOrders",
    "OrderCancelled",
    "OrderPage",
    "OrderPlaced",
    "OrderShipped",
    "OrderStatus",
    "OrderView",
    "PlaceOrder",
    "ShipOrder",
]


@attrs.frozen
class LineItem:
    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.unit_price


class OrderStatus(enum.Enum):
    PENDING = "pending"
    CANCELLED = "cancelled"
    SHIPPED = "shipped"


# -- commands --------------------------------------------------------------------------------


@attrs.frozen
class PlaceOrder(Command[str]):
    """Place an order; executing it returns the new order's id."""

    customer_id: str
    items: tuple[LineItem, ...]


@attrs.frozen
class CancelOrder(Command[None]):
    """Cancel a pending order."""

    order_id: str
    reason: str


@attrs.frozen
class ShipOrder(Command[None]):
    """Hand a pending order to a carrier."""

    order_id: str
    carrier: str


# -- events ----------------------------------------------------------------------------------


@attrs.frozen
class OrderPlaced(Event):
    order_id: str
    customer_id: str
    items: tuple[LineItem, ...]
    total: Decimal


@attrs.frozen
class OrderCancelled(Event):
    order_id: str
    reason: str


@attrs.frozen
class OrderShipped(Event):
    order_id: str
    carrier: str


EVENT_TYPES = EventTypes(OrderPlaced, OrderCancelled, OrderShipped)
"""The events the store holds, under their class names."""

# -- queries ---------------------------------------------------------------------------------


@attrs.frozen
class OrderView:
    """An order as the read model shows it."""

    order_id: str
    customer_id: str
    status: OrderStatus
    items: tuple[LineItem, ...]
    total: Decimal
    placed_at: datetime
    updated_at: datetime
    carrier: str | None
    cancel_reason: str | None


@attrs.frozen
class OrderPage:
    """One page of a customer's orders, newest first; pass ``next_cursor`` for the next one."""

    orders: tuple[OrderView, ...]
    next_cursor: str | None


@attrs.frozen
class GetOrder(Query[OrderView | None]):
    order_id: str


def _check_limit(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 1 <= value <= 100:
        raise ValueError(f"limit must be between 1 and 100, not {value}")


@attrs.frozen
class ListOrders(Query[OrderPage]):
    """A customer's orders, newest first, optionally of one status, a page at a time."""

    customer_id: str
    status: OrderStatus | None = None
    limit: int = attrs.field(default=20, validator=_check_limit)
    cursor: str | None = None
