"""An order service on busway: event-sourced orders, a SQLite read model, one database file.

The command side loads and saves :class:`~examples.orders.domain.Order` aggregates through a
repository; the query side reads a denormalized ``orders`` table that a projection keeps
current. Run the tour with ``python -m examples.orders``.
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
