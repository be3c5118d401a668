"""Misuses mypy --strict must reject: each line marked with an expected error code."""

from __future__ import annotations

import attrs

from busway import AsyncCommandBus, Command, CommandBus, Event, EventBus, Query, QueryBus, Registry


@attrs.frozen
class PlaceOrder(Command[str]):
    customer: str


@attrs.frozen
class CountOrders(Query[int]):
    customer: str


@attrs.frozen
class OrderPlaced(Event):
    order_id: str


handlers = Registry()


@handlers.command
def place(cmd: PlaceOrder) -> str:
    return "order-1"


commands = CommandBus(handlers)
queries = QueryBus(handlers)
events = EventBus()

wrong_result: int = commands.execute(PlaceOrder("ada"))  # E: assignment
wrong_query_result: str = queries.execute(CountOrders("ada"))  # E: assignment
handler_result: int = place(PlaceOrder("x"))  # E: assignment
handler_argument = place(CountOrders("x"))  # E: arg-type
events.subscribe(OrderPlaced, lambda e: e.missing)  # E: attr-defined
commands.register(PlaceOrder, lambda c: c.nope)  # E: attr-defined
commands.execute()  # E: call-overload
events.publish_all(OrderPlaced("1"))  # E: arg-type
CommandBus(commands)  # E: arg-type


async def not_awaited() -> None:
    result: str = AsyncCommandBus().execute(PlaceOrder("x"))  # E: assignment
