"""A tour of busway on a tiny order domain: ``python -m busway.demo``.

One registry holds every handler; a command bus, a query bus and an event bus are built
from it. Each bus logs what it handles (``busway.middleware.log``) and reports how long
it took (``busway.middleware.timing``). Orders live in a dict, so nothing is written to disk.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections import defaultdict
from collections.abc import Iterator

import attrs

from busway import Command, CommandBus, Event, EventBus, Query, QueryBus, Registry
from busway.middleware import log, timing

__all__ = [
    "CancelOrder",
    "GetOrder",
    "OrderCancelled",
    "OrderError",
    "OrderPlaced",
    "OrderView",
    "Orders",
    "PlaceOrder",
    "main",
]

# -- messages --------------------------------------------------------------------------------


@attrs.frozen
class PlaceOrder(Command[str]):
    """Place an order; executing it returns the new order's id."""

    customer: str
    items: tuple[str, ...]


@attrs.frozen
class CancelOrder(Command[None]):
    order_id: str
    reason: str


@attrs.frozen
class OrderView:
    order_id: str
    customer: str
    items: tuple[str, ...]
    status: str


@attrs.frozen
class GetOrder(Query[OrderView | None]):
    order_id: str


@attrs.frozen
class OrderPlaced(Event):
    order_id: str
    customer: str


@attrs.frozen
class OrderCancelled(Event):
    order_id: str
    reason: str


class OrderError(Exception):
    """A command that the current state of an order does not allow."""


# -- handlers --------------------------------------------------------------------------------


class Orders:
    """Command and query handlers over an in-memory repository of orders."""

    def __init__(self, events: EventBus) -> None:
        self._events = events
        self._orders: dict[str, OrderView] = {}

    def place(self, cmd: PlaceOrder) -> str:
        order_id = f"order-{len(self._orders) + 1}"
        self._orders[order_id] = OrderView(order_id, cmd.customer, cmd.items, "placed")
        self._events.publish(OrderPlaced(order_id, cmd.customer))
        return order_id

    def cancel(self, cmd: CancelOrder) -> None:
        order = self._orders.get(cmd.order_id)
        if order is None or order.status != "placed":
            raise OrderError(f"{cmd.order_id} cannot be cancelled (status: {_status(order)})")
        self._orders[cmd.order_id] = attrs.evolve(order, status="cancelled")
        self._events.publish(OrderCancelled(cmd.order_id, cmd.reason))

    def get(self, query: GetOrder) -> OrderView | None:
        return self._orders.get(query.order_id)


def _status(order: OrderView | None) -> str:
    return "unknown" if order is None else order.status


def send_confirmation(event: OrderPlaced) -> None:
    print(f"   [email] to {event.customer}: {event.order_id} is confirmed")


def audit(event: Event) -> None:
    # Subscribed to the Event base class, so it receives every event.
    print(f"   [audit] {event!r}")


# -- wiring ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _logs_on_stdout(name: str) -> Iterator[logging.Logger]:
    """Print the INFO records of logger *name* plainly on stdout inside the block."""
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("   [log] %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # print each record once, whatever the root logger does
    try:
        yield logger
    finally:
        logger.removeHandler(handler)


def main() -> None:
    """Place, query and cancel an order, printing each step."""
    durations: defaultdict[str, list[float]] = defaultdict(list)

    def report(message: object, seconds: float) -> None:
        durations[type(message).__name__].append(seconds)

    registry = Registry()
    events = EventBus(registry)
    orders = Orders(events)
    registry.command(orders.place)  # the message type comes from the annotation
    registry.command(orders.cancel)
    registry.query(orders.get)
    registry.event(send_confirmation)
    registry.event(audit)
    commands = CommandBus(registry)
    queries = QueryBus(registry)

    with _logs_on_stdout("busway.demo") as logger:
        for bus in (commands, queries, events):
            bus.use(log(logger, level=logging.INFO))
            bus.use(timing(report))
        _tour(commands, queries)

    print("Timings reported by the timing middleware:")
    for name, seconds in durations.items():
        calls = "call" if len(seconds) == 1 else "calls"
        print(f"   {name}: {len(seconds)} {calls}, {sum(seconds) * 1000:.3f} ms in all")


def _tour(commands: CommandBus, queries: QueryBus) -> None:
    """Walk one order through its life, printing each step."""
    print("1. Place an order (a command; its handler publishes OrderPlaced)")
    order_id = commands.execute(PlaceOrder("alice", ("book", "pen")))
    print(f"   -> {order_id}")

    print("2. Ask for it (a query)")
    view = queries.execute(GetOrder(order_id))
    print(f"   -> {view}")

    print("3. Cancel it")
    commands.execute(CancelOrder(order_id, reason="changed my mind"))
    print(f"   -> status: {_status(queries.execute(GetOrder(order_id)))}")

    print("4. Cancel it again: the handler's error reaches the caller unchanged")
    try:
        commands.execute(CancelOrder(order_id, reason="twice"))
    except OrderError as exc:
        print(f"   -> OrderError: {exc}")


if __name__ == "__main__":  # pragma: no cover - run by tests in a subprocess
    main()
