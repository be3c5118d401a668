"""The demo: an order service on busway, on one SQLite file: ``python -m busway.demo``.

The command side loads and saves :class:`~busway.demo.domain.Order` aggregates through a
repository; the query side reads a denormalized ``orders`` table that a projection keeps
current. It is written as an application would be: its domain errors are its own, not
busway's. ``import busway`` does not import it.
"""

from .app import OrdersApp
from .domain import CannotCancelError, CannotShipError, EmptyOrderError, Order, OrderError
from .messages import (
    CancelOrder,
    GetOrder,
    LineItem,
    ListOrders,
    OrderCancelled,
    OrderPage,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
    OrderView,
    PlaceOrder,
    ShipOrder,
)
from .read_model import InvalidCursorError, OrdersProjection

__all__ = [
    "CancelOrder",
    "CannotCancelError",
    "CannotShipError",
    "EmptyOrderError",
    "GetOrder",
    "InvalidCursorError",
    "LineItem",
    "ListOrders",
    "Order",
    "OrderCancelled",
    "OrderError",
    "OrderPage",
    "OrderPlaced",
    "OrderShipped",
    "OrderStatus",
    "OrderView",
    "OrdersApp",
    "OrdersProjection",
    "PlaceOrder",
    "ShipOrder",
]
