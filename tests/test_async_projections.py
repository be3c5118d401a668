"""What only the async runner does: a task of its own, ``async with``, cancellation, waits.

The cases both runners share run against it in tests/test_projections.py and
tests/test_projection_runners.py; these are about asyncio itself, so each runs its own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from busway.errors import ProjectionError
from busway.eventstore import (
    AsyncInMemoryEventStore,
    AsyncSQLiteEventStore,
    InMemoryEventStore,
    RecordedEvent,
    SQLiteEventStore,
)
from busway.projections import (
    AsyncProjectionRunner,
    InMemoryCheckpointStore,
    Projection,
    ProjectionRunner,
    SQLiteCheckpointStore,
    when,
)
from busway.subscriptions import Retry
from tests._projection_worker import TYPES, Happened, Ledger, Pause

AT_ONCE = 1.0  # seconds: far below the poll intervals here, far above any scheduling delay


class Seen(Projection):
    """Lists the positions it handled; fails on one if told to."""

    name = "seen"

    def __init__(self, fail_on: int | None = None) -> None:
        self.positions: list[int] = []
        self.fail_on = fail_on

    @when(Happened)
    def _happened(self, event: Happened, recorded: RecordedEvent) -> None:
        if recorded.position == self.fail_on:
            raise ValueError(f"cannot take {event.n}")
        self.positions.append(recorded.position)


class Counting:
    """An async store that counts how often it is read, to tell waiting from polling."""

    def __init__(self, store: AsyncInMemoryEventStore) -> None:
        self.store = store
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def read_all(self, **options: Any) -> AsyncIterator[RecordedEvent]:
        self.reads += 1
        return self.store.read_all(**options)


@pytest.fixture
def read_path(tmp_path: Path) -> Path:
    return tmp_path / "read.db"


@pytest.fixture
def checkpoints(read_path: Path) -> Iterator[SQLiteCheckpointStore]:
    with SQLiteCheckpointStore(read_path) as store:
        yield store


def ledger_rows(read_path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(read_path)) as conn:
        return [p for (p,) in conn.execute("SELECT position FROM ledger ORDER BY position")]


async def append(store: AsyncInMemoryEventStore | AsyncSQLiteEventStore, count: int) -> None:
    for _ in range(count):
        await store.append("s", [Happened(await store.head_position() + 1)])


def tasks_named(name: str) -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == name]


# -- a task of its own -----------------------------------------------------------------------


def test_start_follows_the_store_in_a_task_until_stop() -> None:
    """start() makes a named task on the running loop; stop() ends it and waits for it."""

    async def main() -> list[int]:
        store = AsyncInMemoryEventStore(types=TYPES)
        projection = Seen()
        runner = AsyncProjectionRunner(store, projection, poll_interval=30)
        runner.start()
        assert (True, 1) == (runner.is_running, len(tasks_named("busway-projection-seen")))
        await append(store, 3)
        await runner.wait_for(3)
        await runner.stop()
        assert (False, None, []) == (
            runner.is_running,
            runner.error,
            tasks_named("busway-projection-seen"),
        )
        await runner.stop()  # stopping twice is harmless
        return projection.positions

    assert [1, 2, 3] == asyncio.run(main())


def test_start_outside_a_running_loop_is_refused_and_changes_nothing() -> None:
    """Without a loop there is nowhere to run the task: RuntimeError, and it can start later."""
    store = AsyncInMemoryEventStore(types=TYPES)
    runner = AsyncProjectionRunner(store, Seen())
    with pytest.raises(RuntimeError, match="no running event loop"):
        runner.start()
    assert not runner.is_running

    async def main() -> None:
        async with runner.running():
            await append(store, 1)
            await runner.wait_for(1)

    asyncio.run(main())
    assert 1 == runner.position


def test_async_with_running_raises_what_stopped_the_task() -> None:
    """A task that failed while the block went on is not forgotten: leaving raises it."""

    async def main() -> None:
        store = AsyncInMemoryEventStore(types=TYPES)
        runner = AsyncProjectionRunner(store, Seen(fail_on=2), poll_interval=0.01)
        await append(store, 3)
        async with runner.running():
            while runner.is_running:
                await asyncio.sleep(0.01)
        pytest.fail("the block should have raised")  # pragma: no cover

    with pytest.raises(ProjectionError, match="position 2"):
        asyncio.run(main())


# -- stopping and cancelling -----------------------------------------------------------------


def test_stop_waits_for_the_batch_in_progress(
    tmp_path: Path, checkpoints: SQLiteCheckpointStore, read_path: Path
) -> None:
    """When stop() returns, the batch is committed and the runner knows it: nothing comes later."""
    pause = Pause(at=2)

    async def main() -> int:
        async with AsyncSQLiteEventStore(tmp_path / "events.db", types=TYPES) as store:
            await append(store, 5)
            runner = AsyncProjectionRunner(store, Ledger("a", pause=pause), checkpoints=checkpoints)
            runner.start()
            await asyncio.to_thread(pause.reached.wait, 10)
            asyncio.get_running_loop().call_later(0.1, pause.go.set)
            await runner.stop()
            assert (5, 5) == (runner.position, checkpoints.load("ledger"))
            return len(ledger_rows(read_path))

    assert 5 == asyncio.run(main())
    time.sleep(0.1)
    assert [1, 2, 3, 4, 5] == ledger_rows(read_path)


def test_stop_of_run_async_waits_for_the_batch_in_progress(
    tmp_path: Path, checkpoints: SQLiteCheckpointStore, read_path: Path
) -> None:
    """The sync runner's run_async ends after its batch once its stop event is set."""
    pause = Pause(at=1)

    async def main(store: SQLiteEventStore) -> None:
        runner = ProjectionRunner(store, Ledger("a", pause=pause), checkpoints=checkpoints)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run_async(stop=stop))
        await asyncio.to_thread(pause.reached.wait, 10)
        stop.set()
        asyncio.get_running_loop().call_later(0.1, pause.go.set)
        await task
        assert (2, [1, 2]) == (runner.position, ledger_rows(read_path))

    with SQLiteEventStore(tmp_path / "events.db", types=TYPES) as store:
        store.append("s", [Happened(1), Happened(2)])
        asyncio.run(main(store))


def test_a_cancelled_call_keeps_its_batch_whole_and_the_runner_goes_on(
    tmp_path: Path, checkpoints: SQLiteCheckpointStore, read_path: Path
) -> None:
    """Cancelling the caller leaves the batch to finish on its thread; nothing is done twice."""
    pause = Pause(at=2)

    async def main() -> None:
        async with AsyncSQLiteEventStore(tmp_path / "events.db", types=TYPES) as store:
            await append(store, 4)
            runner = AsyncProjectionRunner(
                store, Ledger("a", pause=pause), checkpoints=checkpoints, batch_size=3
            )
            call = asyncio.create_task(runner.run_until_caught_up())
            await asyncio.to_thread(pause.reached.wait, 10)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            pause.go.set()
            await runner.run_until_caught_up()
            assert 4 == runner.position

    asyncio.run(main())
    assert [1, 2, 3, 4] == ledger_rows(read_path)


# -- the loop goes on ------------------------------------------------------------------------


def test_the_loop_goes_on_while_a_batch_runs(
    tmp_path: Path, checkpoints: SQLiteCheckpointStore
) -> None:
    """Batches with SQLite checkpoints run on a worker thread, never on the loop."""
    pause = Pause(at=1)

    async def main() -> int:
        async with AsyncSQLiteEventStore(tmp_path / "events.db", types=TYPES) as store:
            await append(store, 1)
            runner = AsyncProjectionRunner(store, Ledger("a", pause=pause), checkpoints=checkpoints)
            call = asyncio.create_task(runner.run_until_caught_up())
            await asyncio.to_thread(pause.reached.wait, 10)
            ticks = 0
            for _ in range(10):
                await asyncio.sleep(0.01)
                ticks += 1
            pause.go.set()
            await call
            return ticks

    assert 10 == asyncio.run(main())


def test_wait_for_waits_on_wake_ups_not_by_polling() -> None:
    """With a 30 s poll interval, an idle runner reads nothing until an append wakes it."""

    async def main() -> None:
        store = Counting(AsyncInMemoryEventStore(types=TYPES))
        runner = AsyncProjectionRunner(
            store, Seen(), checkpoints=InMemoryCheckpointStore(), poll_interval=30
        )
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, lambda: loop.create_task(append(store.store, 1)))
        started = time.monotonic()
        await runner.wait_for(1)  # not running: it catches up itself, between wake-ups
        assert time.monotonic() - started < AT_ONCE
        assert store.reads <= 3  # before the append, after it, and the empty page after that
        async with runner.running():
            await asyncio.sleep(0.05)
            reads = store.reads
            await asyncio.sleep(0.3)
            assert reads == store.reads  # asleep: no reads
            started = time.monotonic()
            await append(store.store, 1)
            await runner.wait_for(2)
            assert time.monotonic() - started < AT_ONCE

    asyncio.run(main())


def test_wait_for_async_of_the_sync_runner_wakes_at_once() -> None:
    """The sync runner's wait_for_async catches up between wake-ups too, not by polling."""
    with InMemoryEventStore(types=TYPES) as store:
        runner = ProjectionRunner(store, Seen(), poll_interval=30)

        async def main() -> float:
            asyncio.get_running_loop().call_later(0.2, store.append, "s", [Happened(1)])
            started = time.monotonic()
            await runner.wait_for_async(1, timeout=10)
            return time.monotonic() - started

        assert asyncio.run(main()) < AT_ONCE


class Flaky(Projection):
    """Fails the first time it meets each event, and lists those it handled."""

    name = "flaky"

    def __init__(self) -> None:
        self.met: set[int] = set()
        self.positions: list[int] = []

    @when(Happened)
    def _happened(self, event: Happened, recorded: RecordedEvent) -> None:
        if recorded.position not in self.met:
            self.met.add(recorded.position)
            raise ValueError("not yet")
        self.positions.append(recorded.position)


def test_a_runner_serves_one_event_loop_after_another() -> None:
    """Nothing of a runner is tied to the loop it first ran on, backoffs and waits included."""
    store = AsyncInMemoryEventStore(types=TYPES)
    projection = Flaky()
    runner = AsyncProjectionRunner(store, projection, on_error=Retry(1, lambda n: 0.01))

    async def main() -> None:
        await append(store, 1)
        await runner.run_until_caught_up()  # a failure, a backoff, then the event
        async with runner.running():
            await append(store, 1)
            await runner.wait_for(await store.head_position())

    for _ in range(2):
        asyncio.run(main())
    assert [1, 2, 3, 4] == projection.positions
