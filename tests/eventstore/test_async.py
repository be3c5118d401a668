"""What only the async stores do: stay off the event loop, and carry the caller's context."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from busway import AsyncCommandBus, context
from busway.eventstore import (
    AsyncEventStore,
    AsyncEventStoreAdapter,
    AsyncInMemoryEventStore,
    AsyncSQLiteEventStore,
    EventStore,
    InMemoryEventStore,
    StoreClosedError,
    StoreFormatError,
)
from busway.middleware import correlation

from .events import OrderCancelled, types


def test_the_protocols_are_met(tmp_path: Path) -> None:
    """Each shipped store satisfies its protocol at runtime too."""
    stores: list[object] = [
        AsyncSQLiteEventStore(tmp_path / "e.db", types=types()),
        AsyncInMemoryEventStore(types=types()),
        AsyncEventStoreAdapter(InMemoryEventStore(types=types())),
    ]
    assert all(isinstance(s, AsyncEventStore) for s in stores)
    assert not isinstance(InMemoryEventStore(types=types()), AsyncEventStore)
    assert isinstance(InMemoryEventStore(types=types()), EventStore)
    for store in stores:
        asyncio.run(store.aclose())  # type: ignore[attr-defined]


def test_the_loop_runs_while_sqlite_waits(tmp_path: Path) -> None:
    """While another connection holds the write lock, the event loop keeps running."""
    path = tmp_path / "e.db"

    async def main() -> int:
        async with AsyncSQLiteEventStore(path, types=types(), timeout=5) as store:
            blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                blocker.execute("BEGIN IMMEDIATE")
                release = threading.Timer(0.3, blocker.execute, args=("COMMIT",))
                release.start()
                ticks = 0

                async def tick() -> None:
                    nonlocal ticks
                    while True:
                        await asyncio.sleep(0.01)
                        ticks += 1

                ticker = asyncio.create_task(tick())
                assert 1 == await store.append("o-1", [OrderCancelled("o-1")])
                ticker.cancel()
                release.join()
            finally:
                blocker.close()
            return ticks

    assert asyncio.run(main()) >= 10


def test_correlation_reaches_the_worker_thread(tmp_path: Path) -> None:
    """Events appended from an async handler carry the dispatch's ids into the metadata."""

    async def main() -> tuple[context.MessageContext | None, dict[str, object]]:
        seen: list[context.MessageContext | None] = []
        async with AsyncSQLiteEventStore(tmp_path / "e.db", types=types()) as store:

            async def handle(command: OrderCancelled) -> None:
                seen.append(context.current())
                await store.append(command.order_id, [command])

            bus = AsyncCommandBus()
            bus.use(correlation())
            bus.register(OrderCancelled, handle)
            await bus.execute(OrderCancelled("o-1"))
            (recorded,) = await store.read_stream("o-1")
            return seen[0], dict(recorded.metadata)

    ctx, metadata = asyncio.run(main())
    assert ctx is not None
    assert {
        "correlation_id": str(ctx.correlation_id),
        "causation_id": str(ctx.message_id),
    } == metadata


def test_async_iteration(tmp_path: Path) -> None:
    """read_all and streams are async iterators that page through the store."""

    async def main() -> tuple[list[int], list[tuple[str, int]]]:
        async with AsyncSQLiteEventStore(tmp_path / "e.db", types=types(), page_size=3) as store:
            for i in range(4):
                await store.append(f"s-{i}", [OrderCancelled(str(n)) for n in range(i + 1)])
            positions = [r.position async for r in store.read_all(from_position=2, limit=7)]
            return positions, [s async for s in store.streams(after="s-0")]

    positions, streams = asyncio.run(main())
    assert [2, 3, 4, 5, 6, 7, 8] == positions
    assert [("s-1", 2), ("s-2", 3), ("s-3", 4)] == streams


def test_a_bad_file_fails_on_entry(tmp_path: Path) -> None:
    """An async SQLite store opens its file on entry, where a bad file fails."""
    path = tmp_path / "e.db"
    path.write_text("not a database " * 50)

    async def main() -> None:
        store = AsyncSQLiteEventStore(path, types=types())
        try:
            with pytest.raises(StoreFormatError):
                await store.__aenter__()
        finally:
            await store.aclose()

    asyncio.run(main())


def test_a_failed_entry_leaves_no_worker_thread(tmp_path: Path) -> None:
    """``async with`` on a bad file closes the store, so its worker thread ends at once."""
    path = tmp_path / "e.db"
    path.write_text("not a database " * 50)

    def workers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("busway-eventstore")]

    before = set(workers())
    store = AsyncSQLiteEventStore(path, types=types())  # kept, so no collection ends it

    async def main() -> None:
        with pytest.raises(StoreFormatError):
            async with store:
                pass  # pragma: no cover - entry fails

    asyncio.run(main())
    for thread in set(workers()) - before:
        thread.join(timeout=2)
    assert [] == [t for t in workers() if t not in before and t.is_alive()]
    with pytest.raises(StoreClosedError):
        asyncio.run(store.stream_version("order-1"))


@pytest.mark.parametrize("kind", ["sqlite", "adapter"])
def test_closed_async_store(tmp_path: Path, kind: str) -> None:
    """After aclose, a threaded async store refuses calls; closing again is harmless."""

    async def main() -> None:
        store: AsyncSQLiteEventStore | AsyncEventStoreAdapter
        if kind == "sqlite":
            store = AsyncSQLiteEventStore(tmp_path / "e.db", types=types())
        else:
            store = AsyncEventStoreAdapter(InMemoryEventStore(types=types()))
        async with store:
            await store.append("o-1", [OrderCancelled("o-1")])
        await store.aclose()
        with pytest.raises(StoreClosedError):
            await store.stream_version("o-1")
        assert "closed" in repr(store) or "Adapter" in repr(store)

    asyncio.run(main())
