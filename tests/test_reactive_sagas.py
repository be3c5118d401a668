"""Reactive sagas: events in, commands out, on sync and async buses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

import attrs
import pytest

from busway import (
    AsyncCommandBus,
    AsyncEventBus,
    Command,
    CommandBus,
    Event,
    EventBus,
    RegistrationError,
    Registry,
)


@attrs.frozen
class OrderPlaced(Event):
    order_id: str
    items: tuple[str, ...] = ()


@attrs.frozen
class ReserveItem(Command[str]):
    item: str


@attrs.frozen
class ReleaseItem(Command[None]):
    reservation: str


@attrs.frozen
class NotifyCustomer(Command[None]):
    order_id: str


def wiring(registry: Registry) -> tuple[CommandBus, EventBus, list[object]]:
    """A command bus recording what it executes; reserving "broken" fails."""
    executed: list[object] = []

    def reserve(cmd: ReserveItem) -> str:
        executed.append(cmd)
        if cmd.item == "broken":
            raise ValueError(f"cannot reserve {cmd.item}")
        return f"r-{cmd.item}"

    commands = CommandBus()
    commands.register(ReserveItem, reserve)
    commands.register(ReleaseItem, executed.append)
    commands.register(NotifyCustomer, executed.append)
    return commands, EventBus(registry, commands=commands), executed


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        (lambda e: None, []),
        (lambda e: NotifyCustomer(e.order_id), [NotifyCustomer("o-1")]),
        (
            lambda e: [ReserveItem(i) for i in e.items],
            [ReserveItem("apple"), ReserveItem("pear")],
        ),
    ],
    ids=["nothing", "one command", "a list"],
)
def test_a_saga_returns_nothing_one_or_many_commands(returns: Any, expected: list[object]) -> None:
    """Whatever the saga returns, each command is executed in order."""
    sagas = Registry()
    sagas.saga(OrderPlaced)(returns)
    _, events, executed = wiring(sagas)
    events.publish(OrderPlaced("o-1", ("apple", "pear")))
    assert expected == executed


def test_a_generator_saga_gets_results_and_can_compensate() -> None:
    """A generator saga receives each result, and a failure is thrown into it."""
    sagas = Registry()

    @sagas.saga
    def reserve_all(e: OrderPlaced) -> Generator[Command[Any], str, None]:
        reservations: list[str] = []
        try:
            for item in e.items:
                reservations.append((yield ReserveItem(item)))
        except ValueError:
            for reservation in reversed(reservations):
                yield ReleaseItem(reservation)
            return
        yield NotifyCustomer(e.order_id)

    _, events, executed = wiring(sagas)
    events.publish(OrderPlaced("o-1", ("apple", "broken")))
    events.publish(OrderPlaced("o-2", ("pear",)))
    assert [
        ReserveItem("apple"),
        ReserveItem("broken"),
        ReleaseItem("r-apple"),
        ReserveItem("pear"),
        NotifyCustomer("o-2"),
    ] == executed


def test_a_failed_command_goes_through_the_error_policy() -> None:
    """An unhandled command failure reaches on_error like a handler's; others still run."""
    sagas = Registry()
    sagas.saga(OrderPlaced)(lambda e: ReserveItem("broken"))
    seen: list[str] = []
    sagas.event(OrderPlaced)(lambda e: seen.append("handler"))
    commands, _, _ = wiring(Registry())
    failures: list[BaseException] = []
    events = EventBus(sagas, commands=commands, on_error=lambda exc, e, h: failures.append(exc))
    events.publish(OrderPlaced("o-1"))
    assert (["handler"], ["cannot reserve broken"]) == (seen, [str(f) for f in failures])


def test_a_saga_without_a_command_bus_is_refused() -> None:
    """An event bus with sagas but no command bus refuses them, saying how to wire it."""
    sagas = Registry()
    sagas.saga(OrderPlaced)(lambda e: None)
    with pytest.raises(RegistrationError, match=r"EventBus\(registry, commands=command_bus\)"):
        EventBus(sagas)


def test_commands_must_be_a_command_bus_of_the_same_flavour() -> None:
    """EventBus takes a CommandBus, AsyncEventBus an AsyncCommandBus."""
    with pytest.raises(RegistrationError, match="takes the CommandBus"):
        EventBus(commands=AsyncCommandBus())  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="takes the AsyncCommandBus"):
        AsyncEventBus(commands=CommandBus())  # type: ignore[arg-type]


def test_async_generator_saga_on_a_sync_bus_is_refused() -> None:
    """An async saga cannot run on a sync event bus."""
    sagas = Registry()

    @sagas.saga
    async def later(e: OrderPlaced) -> AsyncIterator[Command[Any]]:
        yield NotifyCustomer(e.order_id)

    commands, _, _ = wiring(Registry())
    with pytest.raises(RegistrationError, match="use AsyncEventBus"):
        EventBus(sagas, commands=commands)


def test_a_plain_saga_returning_an_async_generator_is_refused_by_name() -> None:
    """A plain def handing back an async generator raises RegistrationError at dispatch."""
    sagas = Registry()

    async def notify(e: OrderPlaced) -> AsyncIterator[Command[Any]]:
        yield NotifyCustomer(e.order_id)

    @sagas.saga
    def later(e: OrderPlaced) -> AsyncIterator[Command[Any]]:
        return notify(e)

    commands, _, _ = wiring(Registry())
    events = EventBus(sagas, commands=commands)
    with pytest.raises(RegistrationError, match="run it on an AsyncEventBus") as info:
        events.publish(OrderPlaced("o-1"))
    assert isinstance(info.value, TypeError)


def test_async_sagas_of_every_shape() -> None:
    """On an async bus, sagas may be async functions, async generators or plain functions."""
    sagas = Registry()
    executed: list[object] = []

    @sagas.saga
    async def notify(e: OrderPlaced) -> Command[Any]:
        return NotifyCustomer(e.order_id)

    @sagas.saga
    async def reserve(e: OrderPlaced) -> AsyncGenerator[Command[Any], str]:
        reservation = yield ReserveItem("apple")
        yield ReleaseItem(reservation)

    @sagas.saga
    def plain(e: OrderPlaced) -> Iterator[Command[Any]]:
        try:
            yield ReserveItem("broken")
        except ValueError:
            yield NotifyCustomer("compensated")

    async def reserve_item(cmd: ReserveItem) -> str:
        executed.append(cmd)
        if cmd.item == "broken":
            raise ValueError("broken")
        return f"r-{cmd.item}"

    commands = AsyncCommandBus()
    commands.register(ReserveItem, reserve_item)
    commands.register(ReleaseItem, executed.append)
    commands.register(NotifyCustomer, executed.append)
    events = AsyncEventBus(sagas, commands=commands)
    asyncio.run(events.publish(OrderPlaced("o-1")))
    assert [
        NotifyCustomer("o-1"),
        ReserveItem("apple"),
        ReleaseItem("r-apple"),
        ReserveItem("broken"),
        NotifyCustomer("compensated"),
    ] == executed
