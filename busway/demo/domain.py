"""The Order aggregate: the rules an order keeps, and the events that change it."""

from __future__ import annotations

from decimal import Decimal

from busway.aggregates import Aggregate, when

from .messages import LineItem, OrderCancelled, OrderPlaced, OrderShipped, OrderStatus

__all__ = ["CannotCancelError", "CannotShipError", "EmptyOrderError", "Order", "OrderError"]


class OrderError(Exception):
    """An order refused a command: the rules of the domain, not a fault of the program."""


class EmptyOrderError(OrderError, ValueError):
    def __init__(self) -> None:
        super().__init__("an order needs at least one item, each of quantity 1 or more")


class CannotCancelError(OrderError):
    def __init__(self, order_id: str, status: OrderStatus | None) -> None:
        self.order_id = order_id
        self.status = status
        super().__init__(
            f"order {order_id} cannot be cancelled: it is {_describe(status)}, and only "
            "a pending order can be"
        )


class CannotShipError(OrderError):
    def __init__(self, order_id: str, status: OrderStatus | None) -> None:
        self.order_id = order_id
        self.status = status
        super().__init__(
            f"order {order_id} cannot be shipped: it is {_describe(status)}, and an order "
            "ships once, while pending"
        )


def _describe(status: OrderStatus | None) -> str:
    return "not placed" if status is None else status.value


class Order(Aggregate):
    """An order: placed with items, then cancelled while pending, or shipped once."""

    customer_id: str
    items: tuple[LineItem, ...]
    total: Decimal
    status: OrderStatus | None
    carrier: str | None

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.customer_id = ""
        self.items = ()
        self.total = Decimal(0)
        self.status = None
        self.carrier = None

    @classmethod
    def place(cls, order_id: str, customer_id: str, items: tuple[LineItem, ...]) -> Order:
        """Return a new order, with OrderPlaced recorded."""
        if not items or any(item.quantity < 1 for item in items):
            raise EmptyOrderError
        order = cls(order_id)
        total = sum((item.amount for item in items), Decimal(0))
        order.record(OrderPlaced(order_id, customer_id, items, total))
        return order

    def cancel(self, reason: str) -> None:
        if self.status is not OrderStatus.PENDING:
            raise CannotCancelError(self.id, self.status)
        self.record(OrderCancelled(self.id, reason))

    def ship(self, carrier: str) -> None:
        if self.status is not OrderStatus.PENDING:
            raise CannotShipError(self.id, self.status)
        self.record(OrderShipped(self.id, carrier))

    @when(OrderPlaced)
    def _placed(self, event: OrderPlaced) -> None:
        self.customer_id = event.customer_id
        self.items = event.items
        self.total = event.total
        self.status = OrderStatus.PENDING

    @when(OrderCancelled)
    def _cancelled(self, event: OrderCancelled) -> None:
        self.status = OrderStatus.CANCELLED

    @when(OrderShipped)
    def _shipped(self, event: OrderShipped) -> None:
        self.status = OrderStatus.SHIPPED
        self.carrier = event.carrier
