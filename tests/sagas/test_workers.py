"""Several saga managers on one SQLite saga store, on real threads: no saga or command twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from busway.clock import FakeClock
from busway.eventstore import EventTypes, InMemoryEventStore
from busway.sagas import InMemorySagaStore, SagaManager, SagaRecord, SagaStore, SQLiteSagaStore
from busway.subscriptions import InMemoryLeaseStore

from .model import Booking, ChargePayment, OrderPlaced, ReserveStock, Services, StockReserved


class Meeting:
    """A saga store whose first find() waits, after finding, until the other worker's has too.

    So both workers look for a saga before either commits: the race is certain.
    """

    def __init__(self, store: SagaStore, barrier: threading.Barrier) -> None:
        self.store = store
        self.barrier = barrier
        self.met = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def find(self, saga_type: str, key: str, value: str) -> list[SagaRecord]:
        found = self.store.find(saga_type, key, value)
        if not self.met:
            self.met = True
            self.barrier.wait(10)
        return found


def test_two_managers_given_one_starting_event_start_one_saga(tmp_path: Path) -> None:
    """Both find no saga and both start one; the store keeps the first, the other joins it."""
    barrier = threading.Barrier(2)
    services = Services()
    with (
        SQLiteSagaStore(tmp_path / "sagas.db") as one,
        SQLiteSagaStore(tmp_path / "sagas.db") as two,
    ):
        managers = [
            SagaManager(Booking, store=Meeting(store, barrier), commands=services.commands)
            for store in (one, two)
        ]
        with ThreadPoolExecutor(2) as pool:
            handled = [pool.submit(m.handle, OrderPlaced("o-1", 25)) for m in managers]
            assert [True, True] == [future.result(10) for future in handled]
        [booking] = one.find("Booking", "order_id", "o-1")
        assert (2, [ReserveStock("o-1")], []) == (booking.version, services.executed, one.pending())


def test_a_step_does_not_resend_a_command_another_worker_is_sending(tmp_path: Path) -> None:
    """While one worker sends a saga's command, another's step of that saga sends only its own."""
    sending, release = threading.Event(), threading.Event()

    def hold(command: object) -> None:
        if isinstance(command, ReserveStock) and not sending.is_set():
            sending.set()
            assert release.wait(10)

    services = Services(before=hold)
    with (
        SQLiteSagaStore(tmp_path / "sagas.db") as one,
        SQLiteSagaStore(tmp_path / "sagas.db") as two,
    ):
        first = SagaManager(Booking, store=one, commands=services.commands)
        second = SagaManager(Booking, store=two, commands=services.commands)
        with ThreadPoolExecutor(1) as pool:
            placed = pool.submit(first.handle, OrderPlaced("o-1"))
            assert sending.wait(10)
            second.handle(StockReserved("o-1"))
            [booking] = two.find("Booking", "order_id", "o-1")
            in_flight = [m.type for m in booking.outbox]
            release.set()
            placed.result(10)
        assert ["ReserveStock"] == in_flight
        assert [ChargePayment("pay-o-1", 10), ReserveStock("o-1")] == services.executed
        assert [] == one.pending()


def test_a_worker_renews_its_lease_while_a_long_catch_up_sends_commands() -> None:
    """Commands that take longer than the lease in all do not let a standby take over.

    Each command takes half the lease time, and a standby looks for the lease while every
    one is being sent: the worker renews between events, so the standby never finds the
    lease run out, never takes over and never sends a command of the worker's again.
    """
    clock = FakeClock()
    events = InMemoryEventStore(types=EventTypes(OrderPlaced))
    for n in range(8):
        events.append(f"o-{n}", [OrderPlaced(f"o-{n}")])
    leases, store = InMemoryLeaseStore(clock=clock), InMemorySagaStore()
    looking = False

    def slow(command: object) -> None:
        nonlocal looking
        clock.advance(0.5)
        if not looking:  # (were the standby to take over, its own sends would not look)
            looking = True
            standby.tick()
            looking = False

    services = Services(before=slow)
    runners = [
        SagaManager(Booking, store=store, commands=services.commands, clock=clock).background(
            events=events, leases=leases, lease=1.0, owner=owner
        )
        for owner in ("worker", "standby")
    ]
    worker, standby = runners
    worker.tick()
    assert [ReserveStock(f"o-{n}") for n in range(8)] == services.executed
    holder = leases.holder("sagas")
    assert holder is not None
    assert ("worker", 1, 8) == (holder.owner, holder.token, store.checkpoint("sagas"))
