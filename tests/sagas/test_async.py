"""The async saga manager: the same behaviour as the sync one, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from busway import AsyncCommandBus, AsyncEventBus, CommandBus, EventBus, RegistrationError
from busway.clock import FakeClock
from busway.errors import StoreClosedError
from busway.eventstore import AsyncInMemoryEventStore, EventTypes, InMemoryEventStore
from busway.sagas import (
    AsyncSagaManager,
    InMemorySagaStore,
    SagaStore,
    SQLiteSagaStore,
)

from .model import (
    Booking,
    ChargePayment,
    Declined,
    OrderPlaced,
    PaymentCharged,
    RejectOrder,
    ReleaseStock,
    ReserveStock,
    ShipOrder,
    StockReserved,
)

T = TypeVar("T")


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


class AsyncServices:
    """Async command handlers that record commands and report on an async event bus."""

    def __init__(self, events: AsyncEventBus | None = None) -> None:
        self.events = events
        self.executed: list[object] = []
        self.commands = AsyncCommandBus()
        self.commands.register(ReserveStock, self.reserve)
        self.commands.register(ChargePayment, self.charge)
        for command_type in (ReleaseStock, ShipOrder, RejectOrder):
            self.commands.register(command_type, self.executed.append)

    async def reserve(self, command: ReserveStock) -> None:
        self.executed.append(command)
        if self.events is not None:
            await self.events.publish(StockReserved(command.order_id))

    async def charge(self, command: ChargePayment) -> None:
        self.executed.append(command)
        await asyncio.sleep(0)
        if command.amount > 100:
            raise Declined("too much")
        if self.events is not None:
            await self.events.publish(PaymentCharged(command.payment_id))


@pytest.mark.parametrize("concurrent", [False, True])
def test_a_booking_on_async_buses(store: SagaStore, concurrent: bool) -> None:
    """Events published by async command handlers drive the saga to its end."""

    async def main() -> list[object]:
        events = AsyncEventBus(concurrent=concurrent)
        services = AsyncServices(events)
        manager = AsyncSagaManager(Booking, store=store, commands=services.commands)
        with manager.attach(events):
            await events.publish(OrderPlaced("o-1"))
            await events.publish(OrderPlaced("o-2", amount=500))
        assert [] == await manager.find(Booking, "order_id", "o-1")
        return services.executed

    assert [
        ReserveStock("o-1"),
        ChargePayment("pay-o-1", 10),
        ShipOrder("o-1"),
        ReserveStock("o-2"),
        ChargePayment("pay-o-2", 500),
        ReleaseStock("o-2"),
        RejectOrder("o-2", "declined: too much"),
    ] == run(main)


def test_async_deadlines_and_recovery(store: SagaStore) -> None:
    """fire_due() and recover() work as on the sync manager."""
    clock = FakeClock()

    async def main() -> list[object]:
        services = AsyncServices()
        manager = AsyncSagaManager(Booking, store=store, commands=services.commands, clock=clock)
        await manager.handle(OrderPlaced("o-1"))
        await manager.handle(StockReserved("o-1"))
        clock.advance(15 * 60)
        assert (1, 0, 0) == (
            await manager.fire_due(),
            await manager.fire_due(),
            await manager.recover(),
        )
        return services.executed

    assert [RejectOrder("o-1", "overdue")] == run(main)[-1:]


def test_async_catch_up_from_sync_and_async_event_stores() -> None:
    """Catch-up reads an async event store directly and a sync one off the event loop."""

    async def main() -> tuple[int, int, int]:
        types = EventTypes(OrderPlaced, StockReserved)
        async_events = AsyncInMemoryEventStore(types=types)
        await async_events.append("o-1", [OrderPlaced("o-1"), StockReserved("o-1")])
        sync_events = InMemoryEventStore(types=types)
        sync_events.append("o-2", [OrderPlaced("o-2")] + [StockReserved("x")] * 600)
        services = AsyncServices()
        store = InMemorySagaStore()
        manager = AsyncSagaManager(Booking, store=store, commands=services.commands)
        first = await manager.catch_up(async_events, subscription="a")
        second = await manager.catch_up(sync_events, subscription="b")
        return first, second, store.checkpoint("b")

    assert (2, 601, 601) == run(main)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_async_catch_up_handles_what_its_commands_stored(kind: str) -> None:
    """The async catch-up, too, reads until no page is left, from either kind of store."""

    async def main() -> list[str]:
        types = EventTypes(OrderPlaced, StockReserved)
        sync_events = InMemoryEventStore(types=types)
        async_events = AsyncInMemoryEventStore(types=types)
        services = AsyncServices()

        async def reserve(command: ReserveStock) -> None:
            if kind == "sync":
                sync_events.append(command.order_id, [StockReserved(command.order_id)])
            else:
                await async_events.append(command.order_id, [StockReserved(command.order_id)])

        manager = AsyncSagaManager(Booking, store=InMemorySagaStore(), commands=services.commands)
        with services.commands.override(ReserveStock, reserve):
            if kind == "sync":
                sync_events.append("o-1", [OrderPlaced("o-1")])
                assert 2 == await manager.catch_up(sync_events)
            else:
                await async_events.append("o-1", [OrderPlaced("o-1")])
                assert 2 == await manager.catch_up(async_events)
        return [b.step for b in await manager.find(Booking, "order_id", "o-1")]

    assert ["charging"] == run(main)


def test_the_async_runner_fires_deadlines(tmp_path: Path) -> None:
    """The task runner recovers, catches up and fires deadlines until stopped."""
    clock = FakeClock()

    async def main() -> list[object]:
        services = AsyncServices()
        events = AsyncInMemoryEventStore(types=EventTypes(OrderPlaced, StockReserved))
        await events.append("o-1", [OrderPlaced("o-1"), StockReserved("o-1")])
        with SQLiteSagaStore(tmp_path / "s.db") as store:
            manager = AsyncSagaManager(
                Booking, store=store, commands=services.commands, clock=clock
            )
            async with manager.background(interval=0.01, events=events) as runner:
                for _ in range(500):
                    if len(services.executed) == 2:
                        clock.advance(15 * 60)
                    if len(services.executed) == 4:
                        break
                    await asyncio.sleep(0.01)
            await runner.stop()
        return services.executed

    assert [RejectOrder("o-1", "overdue")] == run(main)[-1:]


def test_the_async_runner_reports_failures() -> None:
    """A failing pass goes to on_error; tick() does one pass inline."""

    async def main() -> list[Exception]:
        store = InMemorySagaStore()
        manager = AsyncSagaManager(Booking, store=store, commands=AsyncServices().commands)
        errors: list[Exception] = []
        runner = manager.background(interval=0.01, report=errors.append)
        await runner.tick()
        store.close()
        runner.start()
        runner.start()
        while len(errors) < 2:
            await asyncio.sleep(0.01)
        await runner.stop()
        await runner.stop()
        return errors

    assert StoreClosedError is type(run(main)[0])


def test_the_async_manager_checks_its_buses() -> None:
    """An async manager takes an AsyncCommandBus and attaches to an AsyncEventBus."""
    with pytest.raises(RegistrationError, match="takes the AsyncCommandBus"):
        AsyncSagaManager(Booking, store=InMemorySagaStore(), commands=CommandBus())  # type: ignore[arg-type]
    manager = AsyncSagaManager(Booking, store=InMemorySagaStore(), commands=AsyncCommandBus())
    with pytest.raises(RegistrationError, match="takes an AsyncEventBus"):
        manager.attach(EventBus())  # type: ignore[arg-type]
    assert (OrderPlaced, StockReserved) == manager.event_types[:2]
