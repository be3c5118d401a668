"""The Order aggregate keeps the rules: cancel only while pending, ship only once."""

from __future__ import annotations

import pytest

from busway.demo import (
    CannotCancelError,
    CannotShipError,
    EmptyOrderError,
    Order,
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
)

from .helpers import items

ITEMS = items(("beans", 2, "12.50"), ("mug", 1, "8.00"))


def test_placing_records_the_order_with_its_total() -> None:
    """Order.place records OrderPlaced with the sum of the lines."""
    order = Order.place("o1", "ann", ITEMS)
    assert (OrderPlaced("o1", "ann", ITEMS, ITEMS[0].amount + ITEMS[1].amount),) == (
        order.pending_events
    )
    assert (OrderStatus.PENDING, "33.00") == (order.status, str(order.total))


@pytest.mark.parametrize("lines", [(), items(("beans", 0, "1.00"))])
def test_an_order_needs_items(lines: tuple[object, ...]) -> None:
    """No lines, or a line of quantity 0, is refused before anything is recorded."""
    with pytest.raises(EmptyOrderError, match="at least one item"):
        Order.place("o1", "ann", lines)  # type: ignore[arg-type]


def test_a_pending_order_can_be_cancelled_once() -> None:
    """Cancelling records OrderCancelled; a second cancel is refused."""
    order = Order.place("o1", "ann", ITEMS)
    order.cancel("changed my mind")
    assert OrderCancelled("o1", "changed my mind") == order.pending_events[-1]
    with pytest.raises(CannotCancelError, match="it is cancelled") as info:
        order.cancel("again")
    assert OrderStatus.CANCELLED == info.value.status


def test_an_order_ships_once_and_then_cannot_be_cancelled() -> None:
    """Shipping records OrderShipped; shipping again or cancelling is refused."""
    order = Order.place("o1", "ann", ITEMS)
    order.ship("DHL")
    assert (OrderShipped("o1", "DHL"), "DHL") == (order.pending_events[-1], order.carrier)
    with pytest.raises(CannotShipError, match="ships once"):
        order.ship("UPS")
    with pytest.raises(CannotCancelError, match="it is shipped"):
        order.cancel("too late")


def test_a_cancelled_order_cannot_ship() -> None:
    """A cancelled order is refused by ShipOrder."""
    order = Order.place("o1", "ann", ITEMS)
    order.cancel("no")
    with pytest.raises(CannotShipError, match="it is cancelled"):
        order.ship("DHL")


def test_an_unplaced_order_refuses_everything() -> None:
    """An order with no history says it was not placed."""
    with pytest.raises(CannotShipError, match="not placed"):
        Order("o1").ship("DHL")
