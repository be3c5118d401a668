"""The projection of tests/test_projection_runners.py, and the worker process that runs it.

:class:`Ledger` writes one row per event it handles, saying which worker handled it and in
which order the rows were committed, so that a test can check that no event was applied
twice, that each stream's events came in order, and who did the work.
:func:`follow` runs it in a process of its own, on four partitions shared with others.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from multiprocessing.synchronize import Event as ProcessEvent

import attrs

from busway import Event
from busway.eventstore import AsyncSQLiteEventStore, EventTypes, RecordedEvent, SQLiteEventStore
from busway.projections import (
    AsyncProjectionRunner,
    ProjectionRunner,
    SQLiteCheckpointStore,
    SQLiteProjection,
    when,
)
from busway.subscriptions import SQLiteLeaseStore


@attrs.frozen
class Happened(Event):
    n: int


TYPES = EventTypes(Happened)


@attrs.define
class Pause:
    """Holds a handler at one position until the test lets it go on."""

    at: int
    reached: threading.Event = attrs.field(factory=threading.Event)
    go: threading.Event = attrs.field(factory=threading.Event)


class Ledger(SQLiteProjection):
    """One row per event handled, by position: a second application is an IntegrityError.

    *failures* maps a position to how many more times its handler fails (-1: always).
    """

    name = "ledger"

    def __init__(
        self, worker: str, *, failures: dict[int, int] | None = None, pause: Pause | None = None
    ) -> None:
        self.worker = worker
        self.failures = {} if failures is None else failures
        self.pause = pause
        self.calls: list[int] = []

    def setup(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ledger (position INTEGER PRIMARY KEY, stream TEXT, "
            "version INTEGER, worker TEXT, seq INTEGER)"
        )

    def reset(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM ledger")

    @when(Happened)
    def _happened(self, event: Happened, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        self.calls.append(recorded.position)
        if self.pause is not None and self.pause.at == recorded.position:
            self.pause.reached.set()
            self.pause.go.wait(10)
        left = self.failures.get(recorded.position, 0)
        if left != 0:
            self.failures[recorded.position] = left - 1
            raise ValueError(f"cannot take {event.n}")
        conn.execute(
            "INSERT INTO ledger VALUES (?, ?, ?, ?, "
            "(SELECT coalesce(max(seq), 0) + 1 FROM ledger))",
            (recorded.position, recorded.stream_id, recorded.version, self.worker),
        )


LEASE = 0.6  # seconds: short, so that the workers share the partitions out quickly


def follow(kind: str, paths: tuple[str, str, str], ready: ProcessEvent, stop: ProcessEvent) -> None:
    """Run the ledger on four partitions with the *kind* runner until *stop* is set.

    *paths* are the files of the event store, the read model and the leases.
    """
    events, read, leases = paths
    owner = f"{kind}-worker"
    with SQLiteCheckpointStore(read) as checkpoints, SQLiteLeaseStore(leases) as lease_store:
        if kind == "sync":
            with SQLiteEventStore(events, types=TYPES) as store:
                runner = ProjectionRunner(
                    store,
                    Ledger(owner),
                    checkpoints=checkpoints,
                    leases=lease_store,
                    lease=LEASE,
                    partitions=4,
                    owner=owner,
                    poll_interval=0.05,
                )
                with runner.running():
                    ready.set()
                    stop.wait(60)
            return

        async def main() -> None:
            async with AsyncSQLiteEventStore(events, types=TYPES) as store:
                runner = AsyncProjectionRunner(
                    store,
                    Ledger(owner),
                    checkpoints=checkpoints,
                    leases=lease_store,
                    lease=LEASE,
                    partitions=4,
                    owner=owner,
                    poll_interval=0.05,
                )
                async with runner.running():
                    ready.set()
                    await asyncio.to_thread(stop.wait, 60)

        asyncio.run(main())
