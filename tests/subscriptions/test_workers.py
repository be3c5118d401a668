"""Worker processes killed at random while they run a projection and a saga subscription.

Three processes (tests/subscriptions/_worker.py) each run both subscriptions on SQLite
files, under leases; a writer appends events meanwhile, and the test SIGKILLs the holder of
one lease or the other, again and again, starting a replacement each time. A standby must
take over within the lease time, and no lease may change hands but a killed worker's. In
the end the read model must be what a rebuild gives, every position applied once, every
saga step taken once, and every command sent at least once: again only after the worker
that sent it was killed.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from busway import CommandBus
from busway.eventstore import SQLiteEventStore
from busway.projections import ProjectionRunner, SQLiteCheckpointStore
from busway.sagas import SagaManager, SQLiteSagaStore
from busway.subscriptions import Lease, SQLiteLeaseStore
from tests._processes import Workers, pid_of, poll

from ._worker import (
    EVENTS,
    LEASE,
    LEASES,
    LEDGER,
    PROJECTION,
    READ,
    SAGAS,
    SUBSCRIPTION,
    TYPES,
    Deposited,
    Opened,
    Tally,
    Totals,
    create_ledger,
)

WORKERS = 3
KILLS = 20
STREAMS = 8
KEYS = (PROJECTION, SUBSCRIPTION)
# How long after a kill a standby may take: the lease must run out, then a standby must
# look (a third of the lease at most) and fence the checkpoint, on a busy two-core machine.
TAKEOVER = LEASE + 2.5


@contextlib.contextmanager
def writing(path: Path, seed: int) -> Iterator[threading.Event]:
    """Append events to a few streams on a thread until the event yielded is set."""
    done = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        rng = random.Random(seed)
        versions: dict[str, int] = {}
        try:
            with SQLiteEventStore(path, types=TYPES) as store:
                while not done.is_set():
                    for _ in range(rng.choice((1, 1, 2, 6))):
                        stream = f"account-{rng.randrange(STREAMS)}"
                        version = versions.get(stream, 0)
                        event = (
                            Opened(stream)
                            if version == 0
                            else Deposited(stream, version + 1, rng.randint(1, 100))
                        )
                        versions[stream] = store.append(stream, [event], expected_version=version)
                    done.wait(rng.uniform(0.005, 0.03))
        except BaseException as exc:
            failures.append(exc)
            raise

    writer = threading.Thread(target=write, name="writer", daemon=True)
    writer.start()
    try:
        yield done
    finally:
        done.set()
        writer.join(30)
    assert not writer.is_alive(), "the writer did not stop"
    assert [] == failures


def live_holder(leases: SQLiteLeaseStore, key: str) -> Lease | None:
    """Return the unexpired lease on *key*, or None."""
    lease = leases.holder(key)
    if lease is None or lease.expired(datetime.now(UTC)):
        return None
    return lease


def kill_and_wait_for_takeover(
    workers: Workers, leases: SQLiteLeaseStore, rng: random.Random
) -> dict[str, float]:
    """Kill the holder of a lease chosen at random; return how long each of its leases took."""
    key = rng.choice(KEYS)
    lease = poll(f"a worker holds {key!r}", functools.partial(live_holder, leases, key), TAKEOVER)
    victim = pid_of(lease)
    held = {k: h for k in KEYS if (h := leases.holder(k)) is not None and h.owner == lease.owner}
    killed_at = time.monotonic()
    workers.kill(victim)
    workers.start()  # so that three stay alive
    taken: dict[str, float] = {}
    for k, old in held.items():

        def successor(k: str = k, old: Lease = old) -> Lease | None:
            new = live_holder(leases, k)
            if new is None or new.token <= old.token or pid_of(new) not in workers.live:
                return None
            return new

        poll(f"a standby takes {k!r} over from worker {victim}", successor, TAKEOVER)
        taken[k] = time.monotonic() - killed_at
    return taken


def caught_up(directory: Path, head: int) -> bool:
    """Tell whether both subscriptions are at *head*, and no command waits to be sent."""
    with (
        SQLiteCheckpointStore(directory / READ) as checkpoints,
        SQLiteSagaStore(directory / SAGAS) as sagas,
    ):
        return (
            checkpoints.load(PROJECTION) == head
            and sagas.checkpoint(SUBSCRIPTION) == head
            and not sagas.pending()
        )


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Return what *sql* selects in the database at *path*."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


def test_killed_workers_are_taken_over_and_nothing_is_done_twice_or_lost(tmp_path: Path) -> None:
    """SIGKILLed holders are replaced within the lease; the results are exactly once."""
    seed = random.randrange(1 << 32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    # Every file exists before the workers race to open them.
    with (
        SQLiteEventStore(tmp_path / EVENTS, types=TYPES) as store,
        SQLiteCheckpointStore(tmp_path / READ) as checkpoints,
    ):
        ProjectionRunner(store, Totals(), checkpoints=checkpoints)  # creates the read model
    SQLiteSagaStore(tmp_path / SAGAS).close()
    SQLiteLeaseStore(tmp_path / LEASES).close()
    create_ledger(tmp_path / LEDGER)
    workers = Workers(tmp_path, ["tests.subscriptions._worker", str(tmp_path)])
    started = time.monotonic()
    takeovers: list[tuple[str, float]] = []
    try:
        for _ in range(WORKERS):
            workers.start()
        with SQLiteLeaseStore(tmp_path / LEASES) as leases:
            with writing(tmp_path / EVENTS, seed):
                for key in KEYS:
                    poll(f"a worker holds {key!r}", functools.partial(live_holder, leases, key), 15)
                for _ in range(KILLS):
                    time.sleep(rng.uniform(0.02, 0.3))  # a moment at random
                    takeovers += kill_and_wait_for_takeover(workers, leases, rng).items()
                    workers.wait_ready()
                    workers.check_alive()
            with SQLiteEventStore(tmp_path / EVENTS, types=TYPES) as store:
                head = store.head_position()
            killing = time.monotonic() - started
            poll("the workers catch up", lambda: caught_up(tmp_path, head), 20)
            catching = time.monotonic() - started - killing
            workers.check_alive()
            # No lease changed hands but those of killed workers: a live one kept its own.
            tokens = {k: leases.holder(k) for k in KEYS}
            assert {k: 1 + sum(1 for t, _ in takeovers if t == k) for k in KEYS} == {
                k: None if lease is None else lease.token for k, lease in tokens.items()
            }
        workers.stop()
        print(
            f"{len(workers.killed)} kills, {len(takeovers)} takeovers (slowest "
            f"{max(s for _, s in takeovers):.2f}s), {head} events, "
            f"{time.monotonic() - started:.1f}s ({killing:.1f}s killing, {catching:.1f}s "
            "catching up)"
        )
        check_results(tmp_path, workers.killed)
    finally:
        workers.clean_up()
        print(workers.report())
    assert len(workers.killed) >= KILLS
    assert len(takeovers) >= KILLS


def check_results(directory: Path, killed: dict[int, float]) -> None:
    """Compare the read model, the sagas and the commands with the stored events."""
    with SQLiteEventStore(directory / EVENTS, types=TYPES) as store:
        events = list(store.read_all())
        expected: dict[str, tuple[int, int]] = {}
        for recorded in events:
            event = recorded.event
            total, count = expected.get(recorded.stream_id, (0, 0))
            amount = event.amount if isinstance(event, Deposited) else 0
            expected[recorded.stream_id] = (total + amount, count + 1)

        # The read model: every position applied once, the totals those of a rebuild.
        applied = dict(rows(directory / READ, "SELECT position, times FROM applied"))
        assert {r.position: 1 for r in events} == applied
        totals = rows(directory / READ, "SELECT stream, total, events FROM totals ORDER BY stream")
        assert sorted((s, t, n) for s, (t, n) in expected.items()) == totals
        with SQLiteCheckpointStore(directory / "rebuilt.db") as fresh:
            ProjectionRunner(store, Totals(), checkpoints=fresh).run_until_caught_up()
        assert rows(directory / "rebuilt.db", "SELECT * FROM totals ORDER BY stream") == totals

        # The sagas: one per stream, a step per event of it.
        with SQLiteSagaStore(directory / SAGAS) as sagas:
            manager = SagaManager(Tally, store=sagas, commands=CommandBus())
            found = {s: manager.find(Tally, "stream", s) for s in expected}
        assert {s: [Tally(s, n)] for s, (_, n) in expected.items()} == found

    # The commands: each at least once. One is sent again only if it was not settled, by a
    # worker that took over from the one that sent it: that one must have been killed first.
    sent = rows(directory / LEDGER, "SELECT stream, seq, pid, at FROM commands ORDER BY n")
    sends: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for stream, seq, pid, at in sent:
        sends.setdefault((stream, seq), []).append((pid, at))
    assert {(s, v) for s, (_, n) in expected.items() for v in range(1, n + 1)} == set(sends)
    again = {command: each for command, each in sends.items() if len(each) > 1}
    early = {
        command: each
        for command, each in again.items()
        if any(killed.get(pid, math.inf) >= later for (pid, _), (_, later) in pairwise(each))
    }
    assert {} == early, "sent again while the worker that sent it still ran"
    print(f"{len(again)} commands sent again, after the worker that sent them was killed")
