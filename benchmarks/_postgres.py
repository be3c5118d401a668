"""The PostgreSQL contenders of the event store suite, and the writers that drive them.

Each contender works in a schema of its own on the server named by ``BUSWAY_POSTGRES_DSN``
(default: a local server, database ``test``), made for it and dropped afterwards, at the
server's durability, which the suite checks is ``synchronous_commit=on``:

- :class:`Raw` is the limit: hand-written psycopg on busway's own table, doing what a
  gap-safe append must do in one statement (read the stream's version, take the table's
  transaction-scoped advisory lock, insert the rows, whose positions the table's identity
  column draws under the lock, notify) and its commit.
- :class:`Unordered` is the same without the lock: it shows what serializing the commits
  costs, and is not gap-safe (positions are drawn in the order the inserts run, not the
  order they commit, so a reader may pass a position whose transaction commits later).
- :class:`EventSourcing` is the eventsourcing library's ``PostgresApplicationRecorder``,
  which takes ``LOCK TABLE ... IN EXCLUSIVE MODE`` to serialize its inserts.
- :class:`Busway` is ``PostgresEventStore``.

Writers are threads, each with a connection of its own, appending to streams no other
writer touches; they start together and the clock runs until the last is done.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from _harness import gc_paused
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

DSN = os.environ.get("BUSWAY_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PAYLOAD = {"order_id": "order-1", "sku": "SKU-123", "quantity": 2, "price": "9.99"}

#: One writer's append: ``append(stream, count)`` stores *count* events in one transaction.
Append = Callable[[str, int], None]


def has_runner() -> bool:
    """Tell whether a ProjectionRunner can keep its checkpoint and read model on PostgreSQL."""
    import busway.postgres

    return all(
        hasattr(busway.postgres, name)
        for name in ("PostgresEventStore", "PostgresCheckpointStore", "PostgresProjection")
    )


def unreachable() -> str | None:
    """Return why the server cannot be used for the suite, or None if it can."""
    try:
        with psycopg.connect(DSN, connect_timeout=3) as conn:
            setting = conn.execute("SHOW synchronous_commit").fetchone()
    except psycopg.Error as exc:
        return f"PostgreSQL does not answer at {DSN!r} ({str(exc).strip()})"
    if setting is None or setting[0] != "on":
        return f"the server runs at synchronous_commit={setting}, the suite wants 'on'"
    return None


def server_version() -> str:
    with psycopg.connect(DSN) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else "?"


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """Make a schema for one contender, and drop it with all it holds afterwards."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def run_writers(writers: list[Append], transactions: int, count: int) -> float:
    """Return the seconds *writers*, together, take for *transactions* appends of *count*
    events each, every writer to streams of its own."""
    start = threading.Barrier(len(writers) + 1)
    failures: list[BaseException] = []

    def write(i: int, append: Append) -> None:
        start.wait()
        try:
            for n in range(transactions):
                append(f"w{i}-{n if count == 1 else n % 10}", count)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [
        threading.Thread(target=write, args=(i, a), daemon=True) for i, a in enumerate(writers)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - began
    if failures:
        raise failures[0]
    return took


# -- contenders -------------------------------------------------------------------------------


class Raw:
    """The limit: busway's table, written and read with hand-written psycopg."""

    lock = True

    def __init__(self, schema: str, writers: int, *, make: bool = True) -> None:
        from eventstore import TYPES

        from busway.postgres import PostgresEventStore

        if make:
            # The same table as PostgresEventStore, made by it, so indexes and constraints
            # match (positions come from its identity column). It makes them on first use.
            with PostgresEventStore(DSN, types=TYPES, schema=schema) as store:
                store.head_position()
        self.table = f'"{schema}"."events"'
        self.key = f"busway events {schema}.events"
        self.channel = f"{schema}.events"
        self.conns = [psycopg.connect(DSN, autocommit=True) for _ in range(max(1, writers))]

    def writer(self, i: int) -> Append:
        store = self.storer(i)
        return lambda stream, count: store(stream, [json.dumps(PAYLOAD) for _ in range(count)])

    def storer(self, i: int) -> Callable[[str, list[str]], None]:
        """Return writer *i*'s append of one transaction with these JSON payloads."""
        conn = self.conns[i]
        t = self.table
        # One statement, so one round trip: the stream's version, the lock (taken after the
        # version is read, released by the commit, so positions are drawn in commit
        # order), the rows, the wake-up.
        lock = ", pg_advisory_xact_lock(hashtextextended(%s, 0))" if self.lock else ""
        sql = f"""WITH current AS (
                SELECT coalesce(max(version), 0) AS version FROM {t} WHERE stream_id = %s
            ), locked AS MATERIALIZED (
                SELECT version{lock} FROM current
            ), added AS (
                INSERT INTO {t} (stream_id, version, event_id, type, schema_version, data,
                    metadata, recorded_at)
                SELECT %s, locked.version + e.n, e.event_id, 'ItemAdded', 1, e.data, '{{}}', %s
                FROM locked, unnest(%s::bytea[], %s::text[]) WITH ORDINALITY
                    AS e(event_id, data, n)
                RETURNING 1
            ), told AS MATERIALIZED (
                SELECT pg_notify(%s, '') FROM locked
            )
            SELECT (SELECT count(*) FROM added), (SELECT count(*) FROM told)"""
        key = (self.key,) if self.lock else ()

        def append(stream: str, data: list[str]) -> None:
            ids = [uuid.uuid4().bytes for _ in data]
            at = datetime.now(UTC).isoformat()
            conn.execute(sql, (stream, *key, stream, at, ids, data, self.channel)).fetchone()

        return append

    def read_all(self) -> int:
        conn = self.conns[0]
        count, position = 0, 1
        while True:
            rows = conn.execute(
                f"SELECT * FROM {self.table} WHERE position >= %s ORDER BY position LIMIT 1000",
                (position,),
            ).fetchall()
            if not rows:
                return count
            for r in rows:
                json.loads(r[6])
            count += len(rows)
            position = rows[-1][0] + 1

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


class Unordered(Raw):
    """:class:`Raw` without the lock: commits side by side, positions out of commit order."""

    lock = False


class EventSourcing:
    """The eventsourcing library's PostgreSQL application recorder."""

    def __init__(self, schema: str, writers: int) -> None:
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        info = conninfo_to_dict(DSN)
        self.datastore = PostgresDatastore(
            dbname=str(info.get("dbname", "")),
            host=str(info.get("host", "127.0.0.1")),
            port=str(info.get("port", "5432")),
            user=str(info.get("user", "")),
            password=str(info.get("password", "")),
            pool_size=max(1, writers),
            schema=schema,
        )
        self.recorder = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()
        self.datastore.pool.wait()  # every writer's connection open before the clock starts

    def writer(self, i: int) -> Append:
        from eventsourcing.persistence import StoredEvent

        ids: dict[str, uuid.UUID] = {}
        versions: dict[str, int] = {}

        def append(stream: str, count: int) -> None:
            originator = ids.setdefault(stream, uuid.uuid4())
            version = versions.get(stream, 0)
            self.recorder.insert_events(
                [
                    StoredEvent(originator, version + n, "ItemAdded", json.dumps(PAYLOAD).encode())
                    for n in range(1, count + 1)
                ]
            )
            versions[stream] = version + count

        return append

    def read_all(self) -> int:
        count, start = 0, 1
        while True:
            page = self.recorder.select_notifications(start, 1000)
            if not page:
                return count
            for n in page:
                json.loads(n.state)
            count += len(page)
            start = page[-1].id + 1

    def synchronous_commit(self) -> str:
        with self.datastore.get_connection() as conn:
            row: Any = conn.execute("SHOW synchronous_commit").fetchone()
            return str(row["synchronous_commit"])

    def close(self) -> None:
        self.datastore.close()


class Busway:
    """``PostgresEventStore`` on a pool with a connection for every writer."""

    def __init__(self, schema: str, writers: int) -> None:
        from eventstore import TYPES, event

        from busway.postgres import PostgresEventStore

        self.pool: ConnectionPool[Any] = ConnectionPool(
            DSN,
            min_size=max(1, writers),
            max_size=max(1, writers),
            kwargs={"autocommit": True},
            open=True,
        )
        self.pool.wait()  # every writer's connection open before the clock starts, as for raw
        self.store = PostgresEventStore(self.pool, types=TYPES, schema=schema)
        self.store.head_position()  # the tables are made on first use: not in the timing
        self.make = event
        self.events: dict[int, list[Any]] = {}

    def writer(self, i: int) -> Append:
        versions: dict[str, int] = {}

        def append(stream: str, count: int) -> None:
            # Like the other contenders, time storing and serializing, not building events.
            events = self.events.get(count)
            if events is None:
                events = self.events[count] = [self.make(n) for n in range(count)]
            versions[stream] = self.store.append(
                stream, events, expected_version=versions.get(stream, 0)
            )

        return append

    def read_all(self) -> int:
        return sum(1 for _ in self.store.read_all())

    def close(self) -> None:
        self.store.close()
        self.pool.close()


Contender = Raw | Unordered | EventSourcing | Busway


def fill(contender: Contender, events: int) -> None:
    """Store *events* events through *contender*, up to 1,000 a transaction."""
    append = contender.writer(0)
    for n in range(0, events, 1000):
        append(f"fill-{n // 1000 % 10}", min(1000, events - n))


def appends(batch: int, writers: int) -> str:
    """Name the group of appends of *batch* events a transaction by *writers* writers."""
    events = "event" if batch == 1 else "events"
    return f"append {batch} {events}/tx, {writers} writer{'' if writers == 1 else 's'}"


def measure(
    store: Contender, writers: int, singles: int, batches: int, stored: int
) -> dict[str, float]:
    """Return events/s of appends by *writers* writers, 1 and 100 events a transaction,
    on a fresh *store*; with one writer, also of read_all over about *stored* events."""
    row: dict[str, float] = {}
    try:
        if isinstance(store, EventSourcing):
            assert "on" == store.synchronous_commit(), "eventsourcing must commit synchronously"
        each = [store.writer(i) for i in range(writers)]
        for batch, total in ((1, singles), (100, batches)):
            transactions = max(1, total // writers)
            seconds = run_writers(each, transactions, batch)
            row[appends(batch, writers)] = transactions * writers * batch / seconds
        if writers == 1:
            fill(store, stored)
            with gc_paused():
                began = time.perf_counter()
                count = store.read_all()
                seconds = time.perf_counter() - began
            row["read_all"] = count / seconds
    finally:
        store.close()
    return row


# -- latency ------------------------------------------------------------------------------------


def write_stamped(kind: str, schema: str, count: int, spacing: float, out: Any) -> None:
    """In another process: append *count* events stamped with time.time(), one at a time,
    *spacing* seconds apart, with the *kind* contender; send back how long each took."""
    took = []
    if kind == "raw":
        raw = Raw(schema, 1, make=False)
        store = raw.storer(0)

        def append(n: int, sent: float) -> None:
            store("stamps", [json.dumps({"n": n, "sent": sent})])

        close = raw.close
    elif kind == "eventsourcing":
        from eventsourcing.persistence import StoredEvent

        es = EventSourcing(schema, 1)
        originator = uuid.uuid4()

        def append(n: int, sent: float) -> None:
            state = json.dumps({"n": n, "sent": sent}).encode()
            es.recorder.insert_events([StoredEvent(originator, n + 1, "Stamped", state)])

        close = es.close
    else:
        from subscriptions import STAMPED, Stamped

        from busway.postgres import PostgresEventStore

        events = PostgresEventStore(DSN, types=STAMPED, schema=schema)

        def append(n: int, sent: float) -> None:
            events.append("stamps", [Stamped(n, sent)])

        close = events.close
    try:
        for n in range(count):
            sent = time.time()
            append(n, sent)
            took.append(time.time() - sent)
            time.sleep(spacing)
    finally:
        close()
    out.send(took)
    out.close()


@contextlib.contextmanager
def writing_elsewhere(kind: str, schema: str, count: int, spacing: float) -> Iterator[Any]:
    """Run :func:`write_stamped` in a spawned process; yield the pipe its times come on."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    writer = context.Process(target=write_stamped, args=(kind, schema, count, spacing, send))
    writer.start()
    send.close()
    try:
        yield receive
    finally:
        writer.join()


def raw_follow(schema: str, count: int, spacing: float) -> tuple[list[float], list[float]]:
    """The limit: LISTEN on the table's channel, and on each notification read the rows
    after the last one seen; return each append's time, and the time from its call to the
    event's arrival."""
    table = f'"{schema}"."events"'
    Raw(schema, 1).close()  # makes busway's table
    arrived: dict[int, float] = {}
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'LISTEN "{schema}.events"')
        with writing_elsewhere("raw", schema, count, spacing) as times:
            position = 0
            deadline = time.monotonic() + 60
            while len(arrived) < count and time.monotonic() < deadline:
                for _ in conn.notifies(timeout=1.0, stop_after=1):
                    pass
                rows = conn.execute(
                    f"SELECT position, data FROM {table} WHERE position > %s ORDER BY position",
                    (position,),
                ).fetchall()
                now = time.time()
                for _, data in rows:
                    stamp = json.loads(data)
                    arrived[stamp["n"]] = now - stamp["sent"]
                if rows:
                    position = rows[-1][0]
            took: list[float] = times.recv()
    assert count == len(arrived), f"{len(arrived)} of {count} stamped events arrived"
    return took, [arrived[n] for n in range(count)]


def es_follow(schema: str, count: int, spacing: float) -> tuple[list[float], list[float]]:
    """eventsourcing's own way to follow its recorder: a subscription, which LISTENs on the
    table's channel; return each append's time, and the time from its call to arrival."""
    es = EventSourcing(schema, 2)  # one connection listens, the other reads
    arrived: dict[int, float] = {}
    try:
        with (
            es.recorder.subscribe(gt=0) as notifications,
            writing_elsewhere("eventsourcing", schema, count, spacing) as times,
        ):
            for notification in notifications:
                stamp = json.loads(notification.state)
                arrived[stamp["n"]] = time.time() - stamp["sent"]
                if len(arrived) == count:
                    break
            took: list[float] = times.recv()
    finally:
        es.close()
    return took, [arrived[n] for n in range(count)]


def busway_follow(schema: str, count: int, spacing: float) -> tuple[list[float], list[float]]:
    """A ProjectionRunner on PostgreSQL stores, its projection writing each event's time of
    arrival in the runner's transaction; return each append's time, and the time from its
    call to the handler."""
    from subscriptions import STAMPED

    from busway.postgres import (
        PostgresCheckpointStore,
        PostgresEventStore,
    )
    from busway.projections import ProjectionRunner

    with (
        PostgresEventStore(DSN, types=STAMPED, schema=schema) as store,
        PostgresCheckpointStore(DSN, schema=schema) as checkpoints,
    ):
        runner = ProjectionRunner(store, arrivals(schema), checkpoints=checkpoints)
        with runner.running(), writing_elsewhere("busway", schema, count, spacing) as times:
            took: list[float] = times.recv()
            runner.wait_for(store.head_position(), timeout=30)
    with psycopg.connect(DSN) as conn:
        rows = conn.execute(f'SELECT seconds FROM "{schema}".arrivals ORDER BY n').fetchall()
    assert count == len(rows), f"{len(rows)} of {count} stamped events arrived"
    return took, [seconds for (seconds,) in rows]


def arrivals(schema: str) -> Any:
    """Return a PostgresProjection that writes how long after its stamp each event came."""
    from subscriptions import Stamped

    from busway.eventstore import RecordedEvent
    from busway.postgres import PostgresProjection
    from busway.projections import when

    table = f'"{schema}".arrivals'

    class Arrivals(PostgresProjection):
        name = "arrivals"

        def setup(self, conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (n INTEGER PRIMARY KEY, seconds FLOAT8)"
            )

        @when(Stamped)
        def _arrived(
            self, event: Stamped, recorded: RecordedEvent, conn: psycopg.Connection[Any]
        ) -> None:
            conn.execute(
                f"INSERT INTO {table} VALUES (%s, %s)", (event.n, time.time() - event.sent)
            )

    return Arrivals()
