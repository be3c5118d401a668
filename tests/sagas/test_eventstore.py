"""Sagas driven from an event store: checkpointed catch-up, and restarts on SQLite files."""

from __future__ import annotations

from pathlib import Path

import pytest

from busway.clock import FakeClock
from busway.eventstore import EventTypes, InMemoryEventStore, SQLiteEventStore
from busway.sagas import InMemorySagaStore, SagaManager, SQLiteSagaStore

from .model import (
    Booking,
    ChargePayment,
    OrderCancelled,
    OrderPlaced,
    PaymentCharged,
    ReserveStock,
    Services,
    StockReserved,
)

TYPES = (OrderPlaced, StockReserved, PaymentCharged, OrderCancelled)


def history() -> list[tuple[str, object]]:
    """What happened to five orders, interleaved: (stream, event)."""
    return [
        ("o-1", OrderPlaced("o-1")),
        ("o-2", OrderPlaced("o-2", amount=500)),
        ("o-1", StockReserved("o-1")),
        ("o-3", OrderPlaced("o-3")),
        ("o-2", StockReserved("o-2")),
        ("o-4", OrderPlaced("o-4")),
        ("o-3", StockReserved("o-3")),
        ("o-1", PaymentCharged("pay-o-1")),
        ("o-4", OrderCancelled("o-4")),
        ("o-5", OrderPlaced("o-5")),
        ("o-3", PaymentCharged("pay-o-3")),
        ("o-5", StockReserved("o-5")),
    ]


def test_catch_up_handles_each_stored_event_once() -> None:
    """A second catch-up starts after the checkpoint; new events are picked up later."""
    events = InMemoryEventStore(types=EventTypes(*TYPES))
    services = Services()
    sagas = InMemorySagaStore()
    manager = SagaManager(Booking, store=sagas, commands=services.commands, clock=FakeClock())
    for stream, event in history()[:4]:
        events.append(stream, [event])
    assert (4, 0) == (manager.catch_up(events), manager.catch_up(events))
    for stream, event in history()[4:]:
        events.append(stream, [event])
    assert (8, 12) == (manager.catch_up(events), sagas.checkpoint("sagas"))
    steps = {o: [b.step for b in manager.find(Booking, "order_id", o)] for o in ("o-3", "o-5")}
    assert {"o-3": [], "o-5": ["charging"]} == steps


def test_ignored_events_move_the_checkpoint_too() -> None:
    """Events no saga takes are checkpointed at the end of the catch-up."""
    events = InMemoryEventStore(types=EventTypes(*TYPES))
    events.append("x", [StockReserved("nobody"), PaymentCharged("nobody")])
    sagas = InMemorySagaStore()
    manager = SagaManager(Booking, store=sagas, commands=Services().commands)
    assert (2, 2) == (manager.catch_up(events, subscription="s"), sagas.checkpoint("s"))


def test_events_stored_by_the_sagas_commands_are_caught_up_at_once() -> None:
    """A catch-up reads until no page is left, so it handles what its commands stored."""
    events = InMemoryEventStore(types=EventTypes(*TYPES))
    services = Services()
    services.before = lambda command: (
        events.append(command.order_id, [StockReserved(command.order_id)])
        if isinstance(command, ReserveStock)
        else None
    )
    manager = SagaManager(Booking, store=InMemorySagaStore(), commands=services.commands)
    events.append("o-1", [OrderPlaced("o-1")])
    assert 2 == manager.catch_up(events)
    assert ["charging"] == [b.step for b in manager.find(Booking, "order_id", "o-1")]


def test_a_worker_overtaken_on_its_subscription_keeps_nothing_twice(tmp_path: Path) -> None:
    """An overtaken catch-up reads the checkpoint again; each event and command once."""
    events = InMemoryEventStore(types=EventTypes(*TYPES))
    for stream, event in history()[:4]:
        events.append(stream, [event])
    services = Services()
    overtaken: list[int] = []
    with (
        SQLiteSagaStore(tmp_path / "sagas.db") as one,
        SQLiteSagaStore(tmp_path / "sagas.db") as two,
    ):
        first = SagaManager(Booking, store=one, commands=services.commands)
        second = SagaManager(Booking, store=two, commands=services.commands)

        def overtake(command: object) -> None:
            # While the first worker sends the command of the first event, the second
            # catches up with the rest, and sends only the commands its own steps issued.
            if not overtaken:
                overtaken.append(0)
                overtaken.append(second.catch_up(events))

        services.before = overtake
        first.catch_up(events)  # kept the first event; found the rest done
        assert (0, 3, 4) == (first.catch_up(events), overtaken[1], one.checkpoint("sagas"))
    assert [
        ReserveStock("o-2"),
        ChargePayment("pay-o-1", 10),
        ReserveStock("o-3"),
        ReserveStock("o-1"),
    ] == services.executed


def reference_run() -> tuple[list[object], dict[str, list[str]]]:
    """Every command and final step, with no restart: what a restarted run must reach."""
    events = InMemoryEventStore(types=EventTypes(*TYPES))
    for stream, event in history():
        events.append(stream, [event])
    services = Services()
    manager = SagaManager(Booking, store=InMemorySagaStore(), commands=services.commands)
    manager.catch_up(events)
    return services.executed, final_steps(manager)


def final_steps(manager: SagaManager) -> dict[str, list[str]]:
    orders = (f"o-{i}" for i in range(1, 6))
    return {o: [b.step for b in manager.find(Booking, "order_id", o)] for o in orders}


class Crash(BaseException):
    """The process dying: nothing catches it."""


@pytest.mark.parametrize("crash_at", [1, 4, 7, 10])
def test_a_worker_restarted_after_a_crash_reaches_the_same_end(
    tmp_path: Path, crash_at: int
) -> None:
    """Killed while sending a command, a worker reopened on the same files ends the same way."""
    expected_commands, expected_steps = reference_run()
    with SQLiteEventStore(tmp_path / "events.db", types=EventTypes(*TYPES)) as events:
        for stream, event in history():
            events.append(stream, [event])
    sent = 0

    def dying(command: object) -> None:
        nonlocal sent
        sent += 1
        if sent == crash_at:
            raise Crash

    services = Services(before=dying)
    with (
        SQLiteEventStore(tmp_path / "events.db", types=EventTypes(*TYPES)) as events,
        SQLiteSagaStore(tmp_path / "sagas.db") as store,
    ):
        first = SagaManager(Booking, store=store, commands=services.commands)
        with pytest.raises(Crash):
            first.catch_up(events)
    with (
        SQLiteEventStore(tmp_path / "events.db", types=EventTypes(*TYPES)) as events,
        SQLiteSagaStore(tmp_path / "sagas.db") as store,
    ):
        second = SagaManager(Booking, store=store, commands=services.commands)
        assert 1 == second.recover()
        assert len(history()) > second.catch_up(events)
        assert expected_steps == final_steps(second)
        assert len(history()) == store.checkpoint("sagas")
    assert expected_commands == services.executed


def test_deadlines_survive_a_restart(tmp_path: Path) -> None:
    """A deadline stored before a stop fires, once, in the worker that opens the file next."""
    clock = FakeClock()
    services = Services()
    with SQLiteSagaStore(tmp_path / "sagas.db") as store:
        manager = SagaManager(Booking, store=store, commands=services.commands, clock=clock)
        manager.handle(OrderPlaced("o-1"))
        manager.handle(StockReserved("o-1"))
    clock.advance(15 * 60)
    with SQLiteSagaStore(tmp_path / "sagas.db") as store:
        manager = SagaManager(Booking, store=store, commands=services.commands, clock=clock)
        assert (1, 0) == (manager.fire_due(), manager.fire_due())
    assert ["ReleaseStock", "RejectOrder"] == [type(c).__name__ for c in services.executed[-2:]]
