"""Saga managers on the PostgreSQL saga store: catching up, crashes, workers racing."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from busway.eventstore import EventStore, EventTypes
from busway.postgres import PostgresEventStore, PostgresSagaStore
from busway.sagas import SagaManager
from tests.sagas.model import Booking, OrderPlaced, ReserveStock, Services
from tests.sagas.test_eventstore import TYPES, Crash, final_steps, history, reference_run
from tests.sagas.test_workers import Meeting


@pytest.fixture
def events(postgres_dsn: str, pg_schema: str) -> Iterator[EventStore]:
    """The PostgreSQL event store the sagas follow, holding the five orders' history."""
    with PostgresEventStore(postgres_dsn, types=EventTypes(*TYPES), schema=pg_schema) as store:
        for stream, event in history():
            store.append(stream, [event])
        yield store


def test_catch_up_reaches_what_a_store_in_memory_reaches(
    postgres_dsn: str, pg_schema: str, events: EventStore
) -> None:
    """Caught up on PostgreSQL, the sagas end and send as they do in memory, each event once."""
    expected_commands, expected_steps = reference_run()
    services = Services()
    with PostgresSagaStore(postgres_dsn, schema=pg_schema) as store:
        manager = SagaManager(Booking, store=store, commands=services.commands)
        assert (len(history()), 0) == (manager.catch_up(events), manager.catch_up(events))
        assert (expected_steps, len(history())) == (final_steps(manager), store.checkpoint("sagas"))
    assert expected_commands == services.executed


@pytest.mark.parametrize("crash_at", [1, 7])
def test_a_worker_restarted_after_a_crash_reaches_the_same_end(
    postgres_dsn: str, pg_schema: str, events: EventStore, crash_at: int
) -> None:
    """Killed while sending a command, a worker on a new store ends as one never killed."""
    expected_commands, expected_steps = reference_run()
    sent = 0

    def dying(command: object) -> None:
        nonlocal sent
        sent += 1
        if sent == crash_at:
            raise Crash

    services = Services(before=dying)
    with PostgresSagaStore(postgres_dsn, schema=pg_schema) as store:
        first = SagaManager(Booking, store=store, commands=services.commands)
        with pytest.raises(Crash):
            first.catch_up(events)
    with PostgresSagaStore(postgres_dsn, schema=pg_schema) as store:
        second = SagaManager(Booking, store=store, commands=services.commands)
        assert 1 == second.recover()
        assert len(history()) > second.catch_up(events)
        assert (expected_steps, len(history())) == (final_steps(second), store.checkpoint("sagas"))
    assert expected_commands == services.executed


def test_two_managers_given_one_starting_event_start_one_saga(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Both find no saga and both start one; the store keeps the first, the other joins it."""
    barrier = threading.Barrier(2)
    services = Services()
    with (
        PostgresSagaStore(postgres_dsn, schema=pg_schema) as one,
        PostgresSagaStore(postgres_dsn, schema=pg_schema) as two,
    ):
        managers = [
            SagaManager(Booking, store=Meeting(store, barrier), commands=services.commands)
            for store in (one, two)
        ]
        with ThreadPoolExecutor(2) as pool:
            handled = [pool.submit(m.handle, OrderPlaced("o-1", 25)) for m in managers]
            assert [True, True] == [future.result(30) for future in handled]
        [booking] = one.find("Booking", "order_id", "o-1")
        assert (2, [ReserveStock("o-1")], []) == (booking.version, services.executed, one.pending())


def test_workers_catching_up_at_once_handle_each_event_once(
    postgres_dsn: str, pg_schema: str, events: EventStore
) -> None:
    """Four workers catching up one subscription at once, each on its own pool, agree."""
    expected_commands, expected_steps = reference_run()
    services = Services()
    stores = [PostgresSagaStore(postgres_dsn, schema=pg_schema) for _ in range(4)]
    try:
        managers = [SagaManager(Booking, store=s, commands=services.commands) for s in stores]
        start = threading.Barrier(len(managers))

        def work(manager: SagaManager) -> int:
            start.wait(30)
            return manager.catch_up(events)

        with ThreadPoolExecutor(len(managers)) as pool:
            list(pool.map(work, managers))
        assert (len(history()), expected_steps) == (
            stores[0].checkpoint("sagas"),
            final_steps(managers[0]),
        )
        assert Counter(map(repr, expected_commands)) == Counter(map(repr, services.executed))
    finally:
        for store in stores:
            store.close()
