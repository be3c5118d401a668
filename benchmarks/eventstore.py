"""Event store suite: appends, stream reads and read_all, beside raw sqlite3 and peers.

    python benchmarks/eventstore.py            # this suite only, full sizes (1,000,000 events)
    python benchmarks/eventstore.py --quick    # small sizes, for a smoke run

Every SQLite contender runs in WAL mode with ``synchronous=FULL`` (a commit survives a power
cut) on a fresh file in a temporary directory. "raw sqlite3" is hand-written code on the same
table: BEGIN IMMEDIATE, read the stream's version, insert JSON payloads made with json.dumps,
COMMIT. The eventsourcing library's SQLite application recorder is measured when installed,
given payloads made with json.dumps too. Figures come from one run: compare ratios, not
absolute numbers across machines.
"""

from __future__ import annotations

import decimal
import importlib
import json
import sqlite3
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from _harness import WARM_UP, Options, Peers, Table, percentile, timed

from busway.eventstore import EventTypes, InMemoryEventStore, SQLiteEventStore
from busway.eventstore._ids import new_ids


@attrs.frozen
class ItemAdded:
    order_id: str
    sku: str
    quantity: int
    price: decimal.Decimal


TYPES = EventTypes(ItemAdded)
PAYLOAD = {"order_id": "order-1", "sku": "SKU-123", "quantity": 2, "price": "9.99"}


def event(n: int) -> ItemAdded:
    return ItemAdded("order-1", f"SKU-{n}", 2, decimal.Decimal("9.99"))


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


# -- contenders -------------------------------------------------------------------------------


class Raw:
    """The floor: what the same work costs written directly against sqlite3."""

    def __init__(self, path: Path) -> None:
        # The same table as SQLiteEventStore, made by it, so indexes and constraints match.
        SQLiteEventStore(path, types=TYPES).close()
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")

    def append(self, stream: str, count: int) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(
            "SELECT version FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT 1",
            (stream,),
        ).fetchone()
        version = row[0] if row else 0
        at = datetime.now(UTC).isoformat()
        ids = new_ids(count)  # the same time-ordered ids, so the index does the same work
        conn.executemany(
            "INSERT INTO events (stream_id, version, event_id, type, schema_version, data, "
            "metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    stream,
                    version + i,
                    ids[i - 1],
                    "ItemAdded",
                    1,
                    json.dumps(PAYLOAD),
                    "{}",
                    at,
                )
                for i in range(1, count + 1)
            ],
        )
        conn.execute("COMMIT")

    def read_stream(self, stream: str) -> list[object]:
        rows = self.conn.execute(
            "SELECT * FROM events WHERE stream_id = ? AND version >= 1 ORDER BY version LIMIT 100",
            (stream,),
        ).fetchall()
        return [json.loads(r[6]) for r in rows]

    def read_all(self) -> int:
        count, position = 0, 1
        while True:
            rows = self.conn.execute(
                "SELECT * FROM events WHERE position >= ? ORDER BY position LIMIT 1000",
                (position,),
            ).fetchall()
            if not rows:
                return count
            for r in rows:
                json.loads(r[6])
            count += len(rows)
            position = rows[-1][0] + 1

    def close(self) -> None:
        self.conn.close()


class Busway:
    def __init__(self, store: InMemoryEventStore | SQLiteEventStore) -> None:
        self.store = store
        self.versions: dict[str, int] = {}
        self.events: dict[int, list[ItemAdded]] = {}

    def append(self, stream: str, count: int) -> None:
        # Like the other contenders, time storing and serializing, not building the events.
        events = self.events.get(count)
        if events is None:
            events = self.events[count] = [event(n) for n in range(count)]
        self.versions[stream] = self.store.append(
            stream, events, expected_version=self.versions.get(stream, 0)
        )

    def read_stream(self, stream: str) -> list[object]:
        return list(self.store.read_stream(stream, limit=100))

    def read_all(self) -> int:
        return sum(1 for _ in self.store.read_all())

    def close(self) -> None:
        self.store.close()


class EventSourcing:
    """The eventsourcing library's SQLite application recorder (global order included)."""

    def __init__(self, path: Path) -> None:
        from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

        self.datastore = SQLiteDatastore(str(path))
        self.recorder = SQLiteApplicationRecorder(self.datastore)
        self.recorder.create_table()
        self.ids: dict[str, uuid.UUID] = {}
        self.versions: dict[str, int] = {}

    def append(self, stream: str, count: int) -> None:
        from eventsourcing.persistence import StoredEvent

        originator = self.ids.setdefault(stream, uuid.uuid4())
        version = self.versions.get(stream, 0)
        self.recorder.insert_events(
            [
                StoredEvent(originator, version + i, "ItemAdded", json.dumps(PAYLOAD).encode())
                for i in range(1, count + 1)
            ]
        )
        self.versions[stream] = version + count

    def read_stream(self, stream: str) -> list[object]:
        events = self.recorder.select_events(self.ids[stream], limit=100)
        return [json.loads(e.state) for e in events]

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

    def synchronous(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute("PRAGMA synchronous")
            return int(c.fetchone()[0])

    def close(self) -> None:
        self.datastore.close()


def _import_eventsourcing() -> Any:
    import eventsourcing.sqlite

    return eventsourcing.sqlite


# -- measurements -----------------------------------------------------------------------------


def fill(path: Path, events: int, streams: int) -> None:
    """Store *events* events spread over *streams* streams, quickly, straight into SQLite."""
    store = SQLiteEventStore(path, types=TYPES, synchronous="off")
    _, _, data = TYPES.encode(event(0))
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    at = datetime.now(UTC).isoformat()

    def rows() -> Iterator[tuple[object, ...]]:
        for n in range(events):
            yield (
                f"s-{n % streams}",
                n // streams + 1,
                uuid.uuid4().bytes,
                "ItemAdded",
                1,
                data,
                "{}",
                at,
            )

    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata,"
        " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows(),
    )
    conn.execute("COMMIT")
    conn.close()


def stream_read_cost(path: Path, stored: int, reads: int) -> float:
    """Seconds per read of a 10-event stream in a store of *stored* events."""
    fill(path, stored, max(1, stored // 10))
    with SQLiteEventStore(path, types=TYPES) as store:
        streams = [f"s-{n}" for n in range(0, max(1, stored // 10), max(1, stored // 10 // reads))]
        assert 10 == len(store.read_stream(streams[0]))
        # Best of five rounds: the cost of the lookup, once SQLite's page cache is warm.
        seconds = min(timed(lambda: [store.read_stream(s) for s in streams]) for _ in range(5))
        return seconds / len(streams)


def measure(
    store: Raw | Busway | EventSourcing, single: int, batches: int
) -> dict[str, float | None]:
    """Return events per second of each operation on a fresh *store*."""
    row: dict[str, float | None] = {}
    row["append 1 event/tx"] = rate(
        single, timed(lambda: [store.append(f"a-{n}", 1) for n in range(single)])
    )
    row["append 100 events/tx"] = rate(
        batches * 100, timed(lambda: [store.append(f"b-{n % 10}", 100) for n in range(batches)])
    )
    row["read a 100-event stream"] = rate(
        200 * 100,
        timed(lambda: [store.read_stream(f"b-{n % min(10, batches)}") for n in range(200)]),
    )
    row["read_all"] = rate(single + batches * 100, timed(store.read_all))
    return row


OPERATIONS = (
    "append 1 event/tx",
    "append 100 events/tx",
    "read a 100-event stream",
    "read_all",
)
EPS = "events/s"


def eventstore_suite(options: Options) -> Table:
    """Appends and reads per second of busway's stores, raw sqlite3 and eventsourcing."""
    table = Table(
        "eventstore",
        f"Event store throughput, SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL",
    )
    table.ratio_means = (
        "events/s / events/s of the row named after it (higher is faster); for stream reads "
        "by store size, µs/read / µs/read (lower is faster)"
    )
    single = options.size(2_000, 300)
    batches = options.size(300, 30)
    big = options.size(1_000_000, 20_000)
    rounds = 3 if options.quick else 5
    peers = Peers(options, table)
    has_es = peers.build("eventsourcing", _import_eventsourcing) is not None
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="busway-bench-") as tmp:
        root = Path(tmp)

        def contenders() -> Iterator[tuple[str, Callable[[Path], Raw | Busway | EventSourcing]]]:
            yield "busway in-memory", lambda p: Busway(InMemoryEventStore(types=TYPES))
            yield (
                "busway SQLite",
                lambda p: Busway(SQLiteEventStore(p, types=TYPES, synchronous="full")),
            )
            yield "raw sqlite3", Raw
            if has_es:
                yield "eventsourcing", EventSourcing

        # Rounds interleave the contenders, so a noisy moment hurts no one of them alone.
        for round_ in range(rounds):
            for i, (name, make) in enumerate(contenders()):
                store = make(root / f"{round_}-{i}.db")
                if isinstance(store, EventSourcing):
                    assert 2 == store.synchronous(), "eventsourcing must run at synchronous=FULL"
                row = measure(store, single, batches)
                store.close()
                for op, value in row.items():
                    results.setdefault(name, {}).setdefault(op, []).append(value or 0.0)

        small = stream_read_cost(root / "small.db", 1_000, 200)
        large = stream_read_cost(root / "large.db", big, 200)

    table.params = {
        "single appends": single,
        "batches of 100": batches,
        "rounds": rounds,
        "large store": big,
    }
    for op in OPERATIONS:
        med = {name: statistics.median(ops[op]) for name, ops in results.items()}
        base = "raw sqlite3"
        table.add(base, med[base], EPS, against=base, library=base, group=op)
        if "eventsourcing" in med:
            table.add(
                "eventsourcing",
                med["eventsourcing"],
                EPS,
                against=base,
                library="eventsourcing",
                group=op,
            )
        table.add(
            "busway SQLite", med["busway SQLite"], EPS, against=base, library="busway", group=op
        )
        if "eventsourcing" in med:
            table.add(
                "busway SQLite",
                med["busway SQLite"],
                EPS,
                against="eventsourcing",
                library="busway",
                group=op,
            )
        table.add(
            "busway in-memory",
            med["busway in-memory"],
            EPS,
            against=base,
            library="busway in-memory",
            group=op,
        )
    group = "read a 10-event stream, by store size"
    table.add("1,000 events stored", small * 1e6, "µs/read", group=group)
    table.add(
        f"{big:,} events stored",
        large * 1e6,
        "µs/read",
        against="1,000 events stored",
        group=group,
    )
    table.notes.append(
        "raw sqlite3 and eventsourcing hand back JSON-decoded dicts; busway decodes each "
        "payload into its attrs class and builds a RecordedEvent (UUID, datetime, metadata)"
    )
    return table


# -- PostgreSQL ---------------------------------------------------------------------------------

PG_RAW = "raw psycopg"
PG_UNORDERED = "raw psycopg, no lock (not gap-safe)"
PG_ES = "eventsourcing"
PG_BUSWAY = "busway PostgresEventStore"
WRITERS = (1, 4, 16)


def _pg_contenders(pg: Any, es: bool) -> Iterator[tuple[str, Callable[[str, int], Any]]]:
    yield PG_RAW, pg.Raw
    yield PG_UNORDERED, pg.Unordered
    if es:
        yield PG_ES, pg.EventSourcing
    yield PG_BUSWAY, pg.Busway


def postgres_suite(options: Options) -> Table:
    """Appends with 1, 4 and 16 writers and read_all on PostgreSQL, beside raw psycopg and
    eventsourcing; append-to-handled latency of a runner in another process."""
    table = Table("postgres", "Event store on PostgreSQL, synchronous_commit=on")
    table.ratio_means = "events/s / events/s of the row named after it (higher is faster)"
    try:
        pg = importlib.import_module("_postgres")
    except ImportError as exc:
        table.notes.append(f'PostgreSQL skipped: pip install "busway[postgres]" ({exc})')
        return table
    why = pg.unreachable()
    if why is not None:
        table.notes.append(
            f"PostgreSQL skipped: {why}; set BUSWAY_POSTGRES_DSN to a server to measure it"
        )
        return table
    table.title = f"Event store on PostgreSQL {pg.server_version()}, synchronous_commit=on"
    peers = Peers(options, table)
    es = peers.build("eventsourcing", lambda: importlib.import_module("eventsourcing.postgres"))
    _pg_throughput(table, pg, options, es is not None)
    _pg_latency(table, pg, options, es is not None)
    table.notes.append(
        "writers are threads, each on a connection of its own, appending to streams of their "
        "own; figures are medians over rounds of all the writers' events over the time the "
        "last of them took"
    )
    table.notes.append(
        "raw psycopg does busway's append in one statement of its own: the version, the "
        "lock (pg_advisory_xact_lock, held to the commit), the rows, pg_notify; without "
        "the lock, commits overlap and positions are not drawn in commit order, so a "
        "reader may pass an event that commits later: what the order costs"
    )
    return table


def _pg_throughput(table: Table, pg: Any, options: Options, es: bool) -> None:
    singles = options.size(1_000, 100)
    batches = options.size(100, 10)
    stored = options.size(50_000, 2_000)
    rounds = 3 if options.quick else 5
    results: dict[str, dict[str, list[float]]] = {}
    # Rounds interleave the contenders, so a noisy moment hurts no one of them alone.
    for _ in range(rounds):
        for writers in WRITERS:
            for name, make in _pg_contenders(pg, es):
                with pg.fresh_schema() as schema:
                    row = pg.measure(make(schema, writers), writers, singles, batches, stored)
                for group, value in row.items():
                    results.setdefault(group, {}).setdefault(name, []).append(value)
    table.params.update(
        {
            "transactions of 1 event, across the writers": singles,
            "transactions of 100 events, across the writers": batches,
            "events stored for read_all (about)": stored,
            "rounds": rounds,
        }
    )
    for group, by_name in results.items():
        med = {name: statistics.median(values) for name, values in by_name.items()}
        table.add(PG_RAW, med[PG_RAW], EPS, library="limit", group=group)
        if group != "read_all":
            table.add(
                PG_UNORDERED, med[PG_UNORDERED], EPS, against=PG_RAW, library="limit", group=group
            )
        for name, library in ((PG_ES, "eventsourcing"), (PG_BUSWAY, "busway")):
            if name in med:
                table.add(name, med[name], EPS, against=PG_RAW, library=library, group=group)
        if PG_BUSWAY in med and PG_ES in med:
            table.add(PG_BUSWAY, med[PG_BUSWAY], EPS, against=PG_ES, library="busway", group=group)


def _pg_latency(table: Table, pg: Any, options: Options, es: bool) -> None:
    samples = options.size(300, 30) + WARM_UP
    spacing = 0.005
    followers = [("raw psycopg LISTEN loop", pg.raw_follow)]
    if es:
        followers.append(("eventsourcing recorder subscription", pg.es_follow))
    if pg.has_runner():
        followers.append(("busway ProjectionRunner", pg.busway_follow))
    for name, follow in followers:
        with pg.fresh_schema() as schema:
            took, handled = follow(schema, samples, spacing)
        group = f"append to handled, writer in another process, {name}"
        for p in (50, 99):
            table.add(
                f"append() itself, p{p}", percentile(took[WARM_UP:], p) * 1e3, "ms", group=group
            )
        for p in (50, 99):
            table.add(
                f"append() called to handled, p{p}",
                percentile(handled[WARM_UP:], p) * 1e3,
                "ms",
                library=name,
                group=group,
            )
    table.params.update(
        {"latency samples": samples - WARM_UP, "spacing between appends (s)": spacing}
    )
    table.notes.append(
        f"latencies: {samples - WARM_UP} appends of one event from a spawned process, "
        f"{spacing * 1e3:.0f} ms apart, timed with time.time() from the call of append() "
        "(its commit included) to the follower having the event: a follower may have it "
        "before the writer hears of the commit"
    )


SUITES = {"eventstore": eventstore_suite, "postgres": postgres_suite}


if __name__ == "__main__":
    from run import main

    sys.exit(main(["--only", ",".join(SUITES), *sys.argv[1:]]))
