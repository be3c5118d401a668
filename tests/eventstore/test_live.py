"""Live streams across processes, tasks and stores, and the signals that wake them."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from busway._signal import Notifying, Signal
from busway.eventstore import (
    ANY,
    AsyncEventStore,
    AsyncEventStoreAdapter,
    AsyncInMemoryEventStore,
    AsyncSQLiteEventStore,
    ConcurrencyError,
    DuplicateEventError,
    EventStore,
    EventTypes,
    ExpectedVersion,
    InMemoryEventStore,
    LiveEvents,
    NewEvent,
    RecordedEvent,
    SQLiteEventStore,
)
from busway.testing import EventStoreContract

from .events import OrderCancelled, Tick, types

WORKER = Path(__file__).with_name("_worker.py")
AT_ONCE = 1.0  # seconds within which a woken stream must have the event


class Plain:
    """A third-party store: it delegates to an in-memory one, tells nobody, and counts reads."""

    def __init__(self, inner: EventStore) -> None:
        self.inner = inner
        self.types = inner.types
        self.starts: list[int] = []  # where each read_all began

    def append(
        self,
        stream_id: str,
        events: Iterable[object],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        return self.inner.append(
            stream_id, events, expected_version=expected_version, metadata=metadata
        )

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        return self.inner.read_stream(
            stream_id, from_version=from_version, limit=limit, backwards=backwards
        )

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> Iterator[RecordedEvent]:
        self.starts.append(from_position)
        return self.inner.read_all(from_position=from_position, limit=limit, types=types)

    def stream_version(self, stream_id: str) -> int:
        return self.inner.stream_version(stream_id)

    def head_position(self) -> int:
        return self.inner.head_position()

    def streams(
        self, *, after: str | None = None, limit: int | None = None
    ) -> Iterator[tuple[str, int]]:
        return self.inner.streams(after=after, limit=limit)

    def subscribe(
        self,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> LiveEvents:
        return LiveEvents(
            self, from_position=from_position, types=types, poll_interval=poll_interval
        )

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> Plain:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Counted(Plain):
    """A shipped store's reads counted, its signal passed on: a stream of it still wakes."""

    @property
    def appended(self) -> Signal:
        assert isinstance(self.inner, Notifying)
        return self.inner.appended


def test_follows_a_writer_in_another_process(tmp_path: Path) -> None:
    """Another process's appends to the file all arrive, in order, each within the poll bound."""
    path = tmp_path / "events.db"
    count = 25
    with SQLiteEventStore(path, types=types()) as store:
        writer = subprocess.Popen(
            [sys.executable, str(WORKER), "ticks", str(path), str(count), "0.02"]
        )
        got = []
        with store.subscribe(poll_interval=0.05) as live:
            give_up = threading.Timer(60, live.close)  # should the writer die, stop waiting
            give_up.start()
            try:
                for recorded in live:
                    got.append((recorded, time.time()))
                    if len(got) == count:
                        break
            finally:
                give_up.cancel()
                assert 0 == writer.wait(timeout=60)
    assert [Tick("ticks", n) for n in range(count)] == [r.event for r, _ in got]
    assert [r.position for r, _ in got] == sorted({r.position for r, _ in got})
    delays = [came - r.metadata["sent"] for r, came in got]
    assert max(delays) < AT_ONCE


def test_async_stream_follows_another_task(tmp_path: Path) -> None:
    """A task following one async store wakes at once for another store's appends to the file."""
    path = tmp_path / "events.db"
    count = 20

    async def main() -> list[tuple[RecordedEvent, float]]:
        async with (
            AsyncSQLiteEventStore(path, types=types()) as reader,
            AsyncSQLiteEventStore(path, types=types()) as writer,
        ):
            assert reader.appended is writer.appended

            async def write() -> None:
                for n in range(count):
                    await asyncio.sleep(0.01)
                    await writer.append(
                        "ticks", [NewEvent(Tick("task", n), metadata={"sent": time.monotonic()})]
                    )

            writing = asyncio.create_task(write())
            got = []
            async with reader.subscribe(poll_interval=30) as live:
                async for recorded in live:
                    got.append((recorded, time.monotonic()))
                    if len(got) == count:
                        break
            await writing
            return got

    got = asyncio.run(main())
    assert [Tick("task", n) for n in range(count)] == [r.event for r, _ in got]
    assert max(came - r.metadata["sent"] for r, came in got) < AT_ONCE


def test_async_stream_wakes_for_a_sync_store_on_the_file(tmp_path: Path) -> None:
    """A sync store's append in a thread wakes a task following an async store of the file."""
    path = tmp_path / "events.db"

    def write() -> None:
        time.sleep(0.2)
        with SQLiteEventStore(path, types=types()) as store:
            store.append("o-1", [OrderCancelled("o-1")])

    async def main() -> RecordedEvent:
        async with AsyncSQLiteEventStore(path, types=types()) as events:
            thread = threading.Thread(target=write)
            started = time.monotonic()
            thread.start()
            async with events.subscribe(poll_interval=30) as live:
                recorded = await anext(live)
            thread.join()
            assert time.monotonic() - started < 0.2 + AT_ONCE
            return recorded

    assert OrderCancelled("o-1") == asyncio.run(main()).event


def test_a_store_without_a_signal_is_polled() -> None:
    """A store with no `appended` is read every poll_interval, no more, and new events come."""
    store = Plain(InMemoryEventStore(types=types()))
    with store.subscribe(poll_interval=0.05) as live:
        timer = threading.Timer(0.3, store.append, args=("o-1", [OrderCancelled("o-1")]))
        timer.start()
        started = time.monotonic()
        assert OrderCancelled("o-1") == next(live).event
        waited = time.monotonic() - started
        timer.join()
    assert 0.3 <= waited < 0.3 + AT_ONCE
    assert len(store.starts) <= 2 * waited / 0.05 + 4  # about one read a poll: no busy loop


def test_a_caught_up_stream_reads_nothing_until_woken() -> None:
    """A stream of a store that notifies waits without reading, however short its poll."""
    store = Counted(InMemoryEventStore(types=types()))
    store.append("o-1", [OrderCancelled("o-1")])
    with store.subscribe(poll_interval=30) as live:
        next(live)
        follower = threading.Thread(target=next, args=(live,))
        follower.start()
        time.sleep(0.3)
        reads = len(store.starts)
        time.sleep(0.3)
        assert reads == len(store.starts)
        store.append("o-2", [OrderCancelled("o-2")])
        follower.join(AT_ONCE)
        assert not follower.is_alive()


def test_a_type_filter_does_not_read_other_types_again() -> None:
    """After a wake-up, a filtered stream reads on from where it looked, not from its last event."""
    store = Counted(InMemoryEventStore(types=types()))
    store.append("o-1", [OrderCancelled("o-1")] + [Tick("x", n) for n in range(5)])
    with store.subscribe(types=[OrderCancelled], poll_interval=30) as live:
        assert 1 == next(live).position
        store.append("o-2", [Tick("x", 9), OrderCancelled("o-2")])
        assert 8 == next(live).position
    assert [1, 7] == store.starts


SyncOpener = Callable[[Path], EventStore]
SYNC_STORES: dict[str, SyncOpener] = {
    "in-memory": lambda _: InMemoryEventStore(types=types()),
    "SQLite file": lambda p: SQLiteEventStore(p / "e.db", types=types()),
    "SQLite :memory:": lambda _: SQLiteEventStore(":memory:", types=types()),
    "SQLite connection": lambda p: SQLiteEventStore(
        sqlite3.connect(p / "e.db", isolation_level=None), types=types()
    ),
}


@pytest.mark.parametrize("name", SYNC_STORES)
def test_appended_counts_commits_of_new_events(tmp_path: Path, name: str) -> None:
    """Only an append that stores events notifies: not an empty, repeated or refused one."""
    with SYNC_STORES[name](tmp_path) as store:
        assert isinstance(store, Notifying)
        signal = store.appended
        batch = [NewEvent(OrderCancelled("o-1"))]
        store.append("o-1", batch, expected_version=0)
        assert 1 == signal.count
        store.append("o-1", [])
        store.append("o-1", batch, expected_version=0)  # a retry: nothing is written
        with pytest.raises(ConcurrencyError):
            store.append("o-1", [OrderCancelled("o-1")], expected_version=0)
        with pytest.raises(DuplicateEventError):
            store.append("o-2", batch)
        assert 1 == signal.count
        store.append("o-1", [OrderCancelled("o-1")] * 2)
        assert 2 == signal.count


AsyncOpener = Callable[[Path], AsyncEventStore]
ASYNC_STORES: dict[str, AsyncOpener] = {
    "in-memory": lambda _: AsyncInMemoryEventStore(types=types()),
    "SQLite file": lambda p: AsyncSQLiteEventStore(p / "e.db", types=types()),
    "SQLite :memory:": lambda _: AsyncSQLiteEventStore(":memory:", types=types()),
    "adapter": lambda _: AsyncEventStoreAdapter(InMemoryEventStore(types=types())),
}


@pytest.mark.parametrize("name", ASYNC_STORES)
def test_async_appended_counts_commits_of_new_events(tmp_path: Path, name: str) -> None:
    """The async stores notify as the sync ones do, whether their sync store tells them or not."""

    async def main() -> None:
        async with ASYNC_STORES[name](tmp_path) as store:
            assert isinstance(store, Notifying)
            signal = store.appended
            batch = [NewEvent(OrderCancelled("o-1"))]
            await store.append("o-1", batch, expected_version=0)
            assert 1 == signal.count
            await store.append("o-1", ())
            await store.append("o-1", iter(batch), expected_version=0)
            with pytest.raises(ConcurrencyError):
                await store.append("o-1", [OrderCancelled("o-1")], expected_version=0)
            assert 1 == signal.count
            await store.append("o-1", [OrderCancelled("o-1")])
            assert 2 == signal.count

    asyncio.run(main())


def test_the_adapter_tells_for_a_store_that_does_not() -> None:
    """An adapter over a store without a signal notifies its own after each non-empty append."""

    async def main() -> float:
        async with AsyncEventStoreAdapter(Plain(InMemoryEventStore(types=types()))) as store:
            assert 0 == store.appended.count
            await store.append("o-1", [])
            assert 0 == store.appended.count

            async def write() -> float:
                await asyncio.sleep(0.1)
                await store.append("o-1", [OrderCancelled("o-1")])
                return time.monotonic()

            writing = asyncio.create_task(write())
            async with store.subscribe(poll_interval=30) as live:
                await anext(live)
                came = time.monotonic()
            return came - await writing

    assert asyncio.run(main()) < AT_ONCE


def test_stores_on_one_file_share_a_signal(tmp_path: Path) -> None:
    """Stores on one file share a signal; other files, :memory: and connections have their own."""
    path = tmp_path / "e.db"
    with (
        SQLiteEventStore(path, types=types()) as one,
        SQLiteEventStore(str(path), types=types()) as two,
        SQLiteEventStore(tmp_path / "f.db", types=types()) as other,
        SQLiteEventStore(":memory:", types=types()) as memory,
        SQLiteEventStore(":memory:", types=types()) as memory_too,
    ):
        assert one.appended is two.appended
        assert AsyncSQLiteEventStore(path, types=types()).appended is one.appended
        assert len({id(s.appended) for s in (one, other, memory, memory_too)}) == 4
        two.append("o-1", [OrderCancelled("o-1")])
        assert 1 == one.appended.count


def test_an_append_in_the_callers_transaction_tells_nobody(tmp_path: Path) -> None:
    """An append that joins the caller's transaction may yet be rolled back: it notifies nobody."""
    conn = sqlite3.connect(tmp_path / "e.db", isolation_level=None)
    try:
        with SQLiteEventStore(conn, types=types()) as store:
            conn.execute("BEGIN")
            store.append("o-1", [OrderCancelled("o-1")])
            conn.execute("ROLLBACK")
            assert 0 == store.appended.count
            store.append("o-1", [OrderCancelled("o-1")])
            assert 1 == store.appended.count
    finally:
        conn.close()


def test_reprs() -> None:
    """A live stream shows its store and where it is."""
    store = InMemoryEventStore(types=types())
    assert "<LiveEvents of <InMemoryEventStore 0 events> at position 0>" == repr(store.subscribe())
    events = AsyncInMemoryEventStore(types=types())
    assert repr(events.subscribe(from_position=5)).endswith("at position 4>")


def test_types_not_in_the_registry() -> None:
    """Stored type names are taken as they are, as read_all takes them."""
    store = InMemoryEventStore(types=EventTypes(OrderCancelled))
    store.append("o-1", [OrderCancelled("o-1")])
    with store.subscribe(types=["OrderCancelled", "Gone"]) as live:
        assert OrderCancelled("o-1") == next(live).event


class TestAStoreWithoutASignal(EventStoreContract):
    """A third-party store that tells nobody keeps the contract too: its streams poll."""

    state_machine_examples = 5

    @pytest.fixture
    def store(self) -> Iterator[EventStore]:
        with Plain(InMemoryEventStore(types=self.event_types())) as store:
            yield store
