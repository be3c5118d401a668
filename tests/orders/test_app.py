"""The order service end to end: commands, events, read model, paging, concurrency."""

from __future__ import annotations

import threading

import pytest

from busway import ConcurrencyError, ProjectionError
from busway.aggregates import AggregateNotFoundError, Repository
from busway.demo import (
    CancelOrder,
    CannotCancelError,
    GetOrder,
    InvalidCursorError,
    ListOrders,
    Order,
    OrderPlaced,
    OrdersApp,
    OrderShipped,
    OrderStatus,
    PlaceOrder,
    ShipOrder,
)

from .helpers import items, rebuilt_rows, rows, state

BEANS = items(("beans", 1, "12.50"))


def place(app: OrdersApp, customer: str, count: int) -> list[str]:
    return [app.commands.execute(PlaceOrder(customer, BEANS)) for _ in range(count)]


def test_commands_write_events_the_repository_loads(app: OrdersApp) -> None:
    """PlaceOrder, ShipOrder and CancelOrder leave aggregates that load as they were left."""
    first, second = place(app, "ann", 2)
    app.commands.execute(ShipOrder(first, "DHL"))
    app.commands.execute(CancelOrder(second, "no"))
    assert (OrderStatus.SHIPPED, "DHL") == (
        app.orders.get(first).status,
        app.orders.get(first).carrier,
    )
    assert OrderStatus.CANCELLED == app.orders.get(second).status
    with pytest.raises(CannotCancelError):
        app.commands.execute(CancelOrder(first, "late"))
    with pytest.raises(AggregateNotFoundError):
        app.commands.execute(ShipOrder("nope", "DHL"))


def test_saved_events_reach_the_event_bus(app: OrdersApp) -> None:
    """The repository publishes OrderPlaced after it is stored."""
    seen: list[OrderPlaced] = []
    app.events.subscribe(OrderPlaced, seen.append)
    (order_id,) = place(app, "ann", 1)
    assert [order_id] == [e.order_id for e in seen]


def test_get_order_reads_the_projection(app: OrdersApp) -> None:
    """GetOrder answers from the read model once the projection caught up."""
    (order_id,) = place(app, "ann", 1)
    assert None is app.queries.execute(GetOrder(order_id))
    app.runner.run_until_caught_up()
    view = app.queries.execute(GetOrder(order_id))
    assert view is not None
    assert ("ann", OrderStatus.PENDING, BEANS, view.placed_at) == (
        view.customer_id,
        view.status,
        view.items,
        view.updated_at,
    )
    app.commands.execute(CancelOrder(order_id, "no"))
    app.runner.wait_for(app.store.head_position())
    view = app.queries.execute(GetOrder(order_id))
    assert view is not None
    assert (OrderStatus.CANCELLED, "no", None) == (view.status, view.cancel_reason, view.carrier)


def test_list_orders_pages_by_keyset(app: OrdersApp) -> None:
    """Pages come newest first, and a cursor goes on below its page even as orders arrive."""
    ids = place(app, "ann", 5)
    place(app, "bob", 1)
    app.runner.run_until_caught_up()
    page = app.queries.execute(ListOrders("ann", limit=2))
    assert [ids[4], ids[3]] == [o.order_id for o in page.orders]
    assert page.next_cursor is not None
    newer = place(app, "ann", 1)  # arrives between two pages: it is not on the next one
    app.runner.run_until_caught_up()
    page = app.queries.execute(ListOrders("ann", limit=2, cursor=page.next_cursor))
    assert [ids[2], ids[1]] == [o.order_id for o in page.orders]
    page = app.queries.execute(ListOrders("ann", limit=2, cursor=page.next_cursor))
    assert ([ids[0]], None) == ([o.order_id for o in page.orders], page.next_cursor)
    first = app.queries.execute(ListOrders("ann", limit=1))
    assert newer == [o.order_id for o in first.orders]


def test_list_orders_filters_by_status(app: OrdersApp) -> None:
    """status= keeps only the orders in that state, still paged."""
    ids = place(app, "ann", 4)
    app.commands.execute(ShipOrder(ids[0], "DHL"))
    app.commands.execute(ShipOrder(ids[2], "UPS"))
    app.runner.run_until_caught_up()
    page = app.queries.execute(ListOrders("ann", status=OrderStatus.SHIPPED, limit=1))
    assert [ids[2]] == [o.order_id for o in page.orders]
    page = app.queries.execute(
        ListOrders("ann", status=OrderStatus.SHIPPED, limit=1, cursor=page.next_cursor)
    )
    assert ([ids[0]], None) == ([o.order_id for o in page.orders], page.next_cursor)
    pending = app.queries.execute(ListOrders("ann", status=OrderStatus.PENDING))
    assert [ids[3], ids[1]] == [o.order_id for o in pending.orders]
    assert () == app.queries.execute(ListOrders("zed")).orders


@pytest.mark.parametrize("cursor", ["", "bm9wZQ", "!!", "b3JkZXJzOng"])
def test_a_bad_cursor_is_refused(app: OrdersApp, cursor: str) -> None:
    """A cursor that no page gave raises InvalidCursorError, a ValueError."""
    with pytest.raises(InvalidCursorError, match="not a cursor"):
        app.queries.execute(ListOrders("ann", cursor=cursor))


def test_list_orders_limits_its_pages() -> None:
    """A page holds 1 to 100 orders."""
    with pytest.raises(ValueError, match="between 1 and 100"):
        ListOrders("ann", limit=0)


def test_concurrent_cancel_and_ship_one_wins(app: OrdersApp) -> None:
    """Two threads act on one order: retry reloads the loser, which then sees the winner."""
    (order_id,) = place(app, "ann", 1)
    start = threading.Barrier(2, timeout=10)
    outcomes: list[str] = []

    def act(command: CancelOrder | ShipOrder) -> None:
        start.wait()
        try:
            app.commands.execute(command)
        except CannotCancelError:
            outcomes.append("cancel refused")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
        else:
            outcomes.append(type(command).__name__)

    threads = [
        threading.Thread(target=act, args=(CancelOrder(order_id, "no"),)),
        threading.Thread(target=act, args=(ShipOrder(order_id, "DHL"),)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 2 == app.store.stream_version(f"order-{order_id}")
    assert len(outcomes) == 2
    assert "ConcurrencyError" not in outcomes
    assert 1 == sum(o in ("CancelOrder", "ShipOrder") for o in outcomes)


def test_snapshots_load_like_a_full_replay(app: OrdersApp) -> None:
    """The app's snapshotting repository and a plain one load the same orders."""
    ids = place(app, "ann", 3)
    app.commands.execute(ShipOrder(ids[0], "DHL"))
    app.commands.execute(CancelOrder(ids[1], "no"))
    plain = Repository(app.store, Order)
    for order_id in ids:
        assert state(plain.get(order_id)) == state(app.orders.get(order_id))
    assert app.snapshots.load(f"order-{ids[0]}") is not None


def test_the_read_model_equals_a_rebuild(app: OrdersApp) -> None:
    """The kept-up read model equals one built from zero, and rebuild() restores it."""
    ids = place(app, "ann", 3)
    app.commands.execute(ShipOrder(ids[0], "DHL"))
    app.runner.run_until_caught_up()
    kept = rows(app.path)
    assert rebuilt_rows(app, app.runner.position) == kept
    app.runner.rebuild()
    assert kept == rows(app.path)


def test_a_conflict_beyond_the_retries_reaches_the_caller(
    app: OrdersApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If every attempt conflicts, the last ConcurrencyError is raised."""
    (order_id,) = place(app, "ann", 1)

    def always_conflict(order: Order, **kwargs: object) -> int:
        raise ConcurrencyError(f"order-{order.id}", order.version - 1, order.version)

    monkeypatch.setattr(app.orders, "save", always_conflict)
    with pytest.raises(ConcurrencyError):
        app.commands.execute(ShipOrder(order_id, "DHL"))


def test_an_event_out_of_step_with_the_read_model_stops_the_projection(app: OrdersApp) -> None:
    """An event for an order the table lacks stops the projection before it, naming the fix."""
    app.store.append("order-ghost", [OrderShipped("ghost", "DHL")])
    with pytest.raises(ProjectionError) as stopped:
        app.runner.run_until_caught_up()
    assert 1 == stopped.value.position
    assert "no row for 'order-ghost' at version 0; rebuild the read model" in str(
        stopped.value.__cause__
    )
    assert 0 == app.runner.position
