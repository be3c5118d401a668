"""A worker process of tests/postgres/test_workers.py: a leased, partitioned projection.

python -m tests.postgres._worker DSN SCHEMA

runs one projection (per-stream totals, and how many times each position was applied) on
PostgreSQL, in SCHEMA: the events, the read model, its checkpoints and the leases, split in
:data:`PARTITIONS` partitions that the live workers share, under the owner
``worker-<pid>``. It prints "ready" once it runs, and runs until SIGTERM (then it stops,
giving its leases back, and exits 0) or until it is killed. If the projection fails, it
prints the failure and exits 3.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import attrs
import psycopg

from busway import Event
from busway.eventstore import EventTypes, RecordedEvent
from busway.postgres import (
    PostgresCheckpointStore,
    PostgresEventStore,
    PostgresLeaseStore,
    PostgresProjection,
)
from busway.projections import ProjectionRunner, when

LEASE = 0.8  # seconds: short, so that a standby takes a dead worker's place quickly
POLL = 0.05  # seconds: how soon a worker sees another process's appends
PARTITIONS = 3
NAME = "totals"
FAILED = 3


@attrs.frozen
class Opened(Event):
    """The first event of every stream."""

    stream: str


@attrs.frozen
class Deposited(Event):
    """A later event of a stream; *seq* is its version in the stream."""

    stream: str
    seq: int
    amount: int


TYPES = EventTypes(Opened, Deposited)


class Totals(PostgresProjection):
    """Per-stream totals, and a count of applications per position to catch any twice."""

    name = NAME

    def __init__(self, schema: str) -> None:
        self.schema = schema

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{self.schema}".totals '
            "(stream TEXT PRIMARY KEY, total BIGINT NOT NULL, events BIGINT NOT NULL)"
        )
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{self.schema}".applied '
            "(position BIGINT PRIMARY KEY, times BIGINT NOT NULL)"
        )

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f'DELETE FROM "{self.schema}".totals')
        conn.execute(f'DELETE FROM "{self.schema}".applied')

    @when(Opened)
    def _opened(
        self, event: Opened, recorded: RecordedEvent, conn: psycopg.Connection[Any]
    ) -> None:
        conn.execute(f'INSERT INTO "{self.schema}".totals VALUES (%s, 0, 1)', (event.stream,))
        self._applied(recorded, conn)

    @when(Deposited)
    def _deposited(
        self, event: Deposited, recorded: RecordedEvent, conn: psycopg.Connection[Any]
    ) -> None:
        conn.execute(
            f'UPDATE "{self.schema}".totals SET total = total + %s, events = events + 1 '
            "WHERE stream = %s",
            (event.amount, event.stream),
        )
        self._applied(recorded, conn)

    def _applied(self, recorded: RecordedEvent, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            f'INSERT INTO "{self.schema}".applied VALUES (%s, 1) ON CONFLICT (position) '
            "DO UPDATE SET times = applied.times + 1",
            (recorded.position,),
        )


def run(dsn: str, schema: str) -> int:
    """Run the projection until SIGTERM; return the exit status."""
    owner = f"worker-{os.getpid()}"
    stopping = threading.Event()

    def terminate(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, terminate)
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(PostgresEventStore(dsn, types=TYPES, schema=schema))
        checkpoints = stack.enter_context(PostgresCheckpointStore(dsn, schema=schema))
        leases = stack.enter_context(PostgresLeaseStore(dsn, schema=schema))
        runner = ProjectionRunner(
            store,
            Totals(schema),
            checkpoints=checkpoints,
            leases=leases,
            lease=LEASE,
            partitions=PARTITIONS,
            owner=owner,
            poll_interval=POLL,
        )
        runner.start()
        stack.callback(runner.stop)
        print("ready", flush=True)
        while not stopping.wait(POLL):
            if runner.error is not None or not runner.is_running:
                print(f"{owner}: the projection failed: {runner.error!r}", file=sys.stderr)
                return FAILED
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    sys.exit(run(sys.argv[1], sys.argv[2]))
