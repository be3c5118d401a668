"""Worker processes killed at random while they share a partitioned projection on PostgreSQL.

Three processes (tests/postgres/_worker.py) run one projection, split in partitions, with
the events, its read model, checkpoints and leases in one PostgreSQL schema; a writer appends events
meanwhile, and the test SIGKILLs the holder of a partition, again and again, starting a
replacement each time. A standby must take over within the lease time, and no lease may
change hands but a killed worker's. In the end the read model must be what a rebuild
gives, every position applied exactly once.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from busway.eventstore import EventStore
from busway.postgres import PostgresCheckpointStore, PostgresEventStore, PostgresLeaseStore
from busway.projections import ProjectionRunner
from busway.subscriptions import Lease
from tests._processes import Workers, pid_of, poll

from ._worker import LEASE, NAME, PARTITIONS, TYPES, Deposited, Opened, Totals

WORKERS = 3
KILLS = 8
STREAMS = 8
KEYS = tuple(f"{NAME}[{p}/{PARTITIONS}]" for p in range(PARTITIONS))
# How long after a kill a standby may take: the lease must run out, then a standby must
# look (a third of the lease at most) and fence the checkpoint, on a busy machine.
TAKEOVER = LEASE + 2.5


@contextlib.contextmanager
def writing(store: EventStore, seed: int) -> Iterator[None]:
    """Append events to a few streams on a thread until the block ends."""
    done = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        rng = random.Random(seed)
        versions: dict[str, int] = {}
        try:
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
        yield
    finally:
        done.set()
        writer.join(30)
    assert not writer.is_alive(), "the writer did not stop"
    assert [] == failures


def live_holder(leases: PostgresLeaseStore, key: str) -> Lease | None:
    """Return the unexpired lease on *key*, or None."""
    lease = leases.holder(key)
    if lease is None or lease.expired(datetime.now(UTC)):
        return None
    return lease


def kill_and_wait_for_takeover(
    workers: Workers, leases: PostgresLeaseStore, rng: random.Random
) -> dict[str, float]:
    """Kill the holder of a partition chosen at random; return how long each of its took."""
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


def select(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    """Return what *sql* selects."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def test_killed_workers_are_taken_over_and_each_event_is_applied_once(
    tmp_path: Path, postgres_dsn: str, pg_schema: str
) -> None:
    """SIGKILLed holders are replaced within the lease; the read model is exactly once."""
    seed = random.randrange(1 << 32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    with (
        PostgresEventStore(postgres_dsn, types=TYPES, schema=pg_schema) as store,
        PostgresCheckpointStore(postgres_dsn, schema=pg_schema) as checkpoints,
        PostgresLeaseStore(postgres_dsn, schema=pg_schema) as leases,
    ):
        # The tables exist before the workers race to make them.
        ProjectionRunner(store, Totals(pg_schema), checkpoints=checkpoints, partitions=PARTITIONS)
        workers = Workers(tmp_path, ["tests.postgres._worker", postgres_dsn, pg_schema])
        started = time.monotonic()
        takeovers: list[tuple[str, float]] = []
        try:
            for _ in range(WORKERS):
                workers.start()
            with writing(store, seed):
                for key in KEYS:
                    poll(f"a worker holds {key!r}", functools.partial(live_holder, leases, key), 15)
                for _ in range(KILLS):
                    time.sleep(rng.uniform(0.02, 0.3))  # a moment at random
                    takeovers += kill_and_wait_for_takeover(workers, leases, rng).items()
                    workers.wait_ready()
                    workers.check_alive()
            head = store.head_position()
            poll(
                "the workers catch up",
                lambda: all(checkpoints.load(k) == head for k in KEYS),
                20,
            )
            workers.check_alive()
            # Each takeover took the lease afresh (the workers also hand partitions over
            # among themselves, to share them fairly, so there may be more).
            for k in KEYS:
                lease = leases.holder(k)
                assert lease is not None
                assert lease.token >= 1 + sum(1 for t, _ in takeovers if t == k)
            workers.stop()
            print(
                f"{len(workers.killed)} kills, {len(takeovers)} takeovers (slowest "
                f"{max(s for _, s in takeovers):.2f}s), {head} events, "
                f"{time.monotonic() - started:.1f}s"
            )
        finally:
            workers.clean_up()
            print(workers.report())

        recorded = list(store.read_all())
        applied: dict[int, int] = dict(
            select(postgres_dsn, f'SELECT position, times FROM "{pg_schema}".applied')
        )
        assert {r.position: 1 for r in recorded} == applied
        totals = select(
            postgres_dsn, f'SELECT stream, total, events FROM "{pg_schema}".totals ORDER BY stream'
        )
        expected: dict[str, tuple[int, int]] = {}
        for r in recorded:
            total, count = expected.get(r.stream_id, (0, 0))
            amount = r.event.amount if isinstance(r.event, Deposited) else 0
            expected[r.stream_id] = (total + amount, count + 1)
        assert sorted((s, t, n) for s, (t, n) in expected.items()) == totals
        # A rebuild from the first event gives the same read model.
        ProjectionRunner(
            store, Totals(pg_schema), checkpoints=checkpoints, leases=leases, partitions=PARTITIONS
        ).rebuild()
        assert totals == select(
            postgres_dsn, f'SELECT stream, total, events FROM "{pg_schema}".totals ORDER BY stream'
        )
    assert len(workers.killed) >= KILLS
