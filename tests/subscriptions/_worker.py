"""A worker process of tests/subscriptions/test_workers.py: a projection and a saga, leased.

python -m tests.subscriptions._worker DIRECTORY

runs, on the SQLite files in DIRECTORY, one projection subscription (per-stream totals,
and how many times each position was applied) and one saga subscription (a saga per
stream, counting its steps and issuing one command per event), both taking leases under
the owner ``worker-<pid>``. The commands are written to a ledger file, one row per send,
with the sender's pid and the time. It prints "ready" once both run, and runs until SIGTERM (then it
stops both, giving their leases back, and exits 0) or until it is killed. If either
subscription fails, it prints the failure and exits 3.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
import traceback
from pathlib import Path
from types import FrameType

import attrs

from busway import Command, CommandBus, Event
from busway.eventstore import EventTypes, RecordedEvent, SQLiteEventStore
from busway.projections import ProjectionRunner, SQLiteCheckpointStore, SQLiteProjection, when
from busway.sagas import Saga, SagaManager, SQLiteSagaStore, handles, starts
from busway.subscriptions import SQLiteLeaseStore

EVENTS = "events.db"
READ = "read.db"
SAGAS = "sagas.db"
LEASES = "leases.db"
LEDGER = "commands.db"

LEASE = 0.8  # seconds: short, so that a standby takes a dead worker's place quickly
POLL = 0.05  # seconds: how soon a worker sees another process's appends
PROJECTION = "totals"
SUBSCRIPTION = "sagas"
FAILED = 3


@attrs.frozen
class Opened(Event):
    """The first event of every stream: it starts the stream's saga."""

    stream: str


@attrs.frozen
class Deposited(Event):
    """A later event of a stream; *seq* is its version in the stream."""

    stream: str
    seq: int
    amount: int


TYPES = EventTypes(Opened, Deposited)


@attrs.frozen
class Note(Command[None]):
    """What the saga issues for event *seq* of *stream*: one row in the ledger per send."""

    stream: str
    seq: int


class Totals(SQLiteProjection):
    """Per-stream totals, and a count of applications per position to catch any twice."""

    name = PROJECTION

    def setup(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS totals (stream TEXT PRIMARY KEY, total INT, events INT)"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS applied (position INT PRIMARY KEY, times INT)")

    def reset(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM totals")
        conn.execute("DELETE FROM applied")

    @when(Opened)
    def _opened(self, event: Opened, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO totals VALUES (?, 0, 1)", (event.stream,))
        self._applied(recorded, conn)

    @when(Deposited)
    def _deposited(
        self, event: Deposited, recorded: RecordedEvent, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            "UPDATE totals SET total = total + ?, events = events + 1 WHERE stream = ?",
            (event.amount, event.stream),
        )
        self._applied(recorded, conn)

    def _applied(self, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO applied VALUES (?, 1) ON CONFLICT (position) DO UPDATE SET "
            "times = times + 1",
            (recorded.position,),
        )


@attrs.define
class Tally(Saga):
    """One saga per stream: a step per event, and a command per step."""

    stream: str = ""
    steps: int = 0

    @starts(Opened, key="stream")
    def opened(self, event: Opened) -> None:
        self.stream = event.stream
        self.steps += 1
        self.send(Note(event.stream, 1))

    @handles(Deposited, key="stream")
    def deposited(self, event: Deposited) -> None:
        self.steps += 1
        self.send(Note(self.stream, event.seq))


def create_ledger(path: Path) -> None:
    """Create the table the workers' command handler writes to."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(
            "CREATE TABLE commands (n INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT, seq INT, "
            "pid INT, at REAL)"
        )


def run(directory: Path) -> int:
    """Run both subscriptions on *directory*'s files until SIGTERM; return the exit status."""
    pid = os.getpid()
    owner = f"worker-{pid}"
    stopping = threading.Event()

    def terminate(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, terminate)
    failures: list[Exception] = []

    def report(exc: Exception) -> None:
        failures.append(exc)
        traceback.print_exception(exc, file=sys.stderr)

    with contextlib.ExitStack() as stack:
        store = stack.enter_context(SQLiteEventStore(directory / EVENTS, types=TYPES))
        checkpoints = stack.enter_context(SQLiteCheckpointStore(directory / READ))
        leases = stack.enter_context(SQLiteLeaseStore(directory / LEASES))
        sagas = stack.enter_context(SQLiteSagaStore(directory / SAGAS))
        ledger = stack.enter_context(
            contextlib.closing(
                sqlite3.connect(
                    directory / LEDGER, isolation_level=None, check_same_thread=False, timeout=10
                )
            )
        )

        def note(command: Note) -> None:
            ledger.execute(
                "INSERT INTO commands (stream, seq, pid, at) VALUES (?, ?, ?, ?)",
                (command.stream, command.seq, pid, time.time()),
            )

        commands = CommandBus()
        commands.register(Note, note)
        runner = ProjectionRunner(
            store,
            Totals(),
            checkpoints=checkpoints,
            leases=leases,
            lease=LEASE,
            owner=owner,
            poll_interval=POLL,
        )
        manager = SagaManager(Tally, store=sagas, commands=commands)
        background = manager.background(
            interval=POLL,
            events=store,
            subscription=SUBSCRIPTION,
            report=report,
            leases=leases,
            lease=LEASE,
            owner=owner,
        )
        runner.start()
        stack.callback(runner.stop)
        stack.enter_context(background)
        print("ready", flush=True)
        while not stopping.wait(POLL):
            if runner.error is not None or not runner.is_running or failures:
                print(f"{owner}: a subscription failed: {runner.error!r}", file=sys.stderr)
                return FAILED
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    sys.exit(run(Path(sys.argv[1])))
