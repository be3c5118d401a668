"""Several saga managers on one SQLite saga store, on real threads: no saga or command twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from busway.sagas import SagaManager, SagaRecord, SagaStore, SQLiteSagaStore

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
