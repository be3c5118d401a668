"""Measure the event store: appends, stream reads and read_all, beside raw sqlite3 and peers.

    python benchmarks/eventstore.py            # full sizes (a few minutes; 1,000,000 events)
    python benchmarks/eventstore.py --quick    # small sizes, for a smoke run

Every SQLite contender runs in WAL mode with ``synchronous=FULL`` (a commit survives a power
cut) on a fresh file in a temporary directory. "raw sqlite3" is hand-written code on the same
table: BEGIN IMMEDIATE, read the stream's version, insert JSON payloads made with json.dumps,
COMMIT. The eventsourcing library's SQLite application recorder is measured when installed,
given payloads made with json.dumps too. Figures come from one run: compare ratios, not
absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import contextlib
import decimal
import gc
import importlib.util
import json
import resource
import sqlite3
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import attrs

from busline.eventstore import EventTypes, InMemoryEventStore, SQLiteEventStore
from busline.eventstore._ids import new_ids


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


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


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


class Busline:
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


def read_all_memory(path: Path, limits: list[int]) -> list[float]:
    """Peak traced memory (MiB) of read_all over the first *limit* events, for each limit."""
    peaks = []
    with SQLiteEventStore(path, types=TYPES) as store:
        for limit in limits:
            gc.collect()
            tracemalloc.start()
            for _ in store.read_all(limit=limit):
                pass
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
    return peaks


def measure(
    store: Raw | Busline | EventSourcing, single: int, batches: int
) -> dict[str, float | None]:
    """Return events per second of each operation on a fresh *store*."""
    row: dict[str, float | None] = {}
    row["append 1 event/tx (events/s)"] = rate(
        single, timed(lambda: [store.append(f"a-{n}", 1) for n in range(single)])
    )
    row["append 100 events/tx (events/s)"] = rate(
        batches * 100, timed(lambda: [store.append(f"b-{n % 10}", 100) for n in range(batches)])
    )
    row["read a 100-event stream (events/s)"] = rate(
        200 * 100, timed(lambda: [store.read_stream(f"b-{n % 10}") for n in range(200)])
    )
    row["read_all (events/s)"] = rate(single + batches * 100, timed(store.read_all))
    return row


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    single = 300 if args.quick else 2_000
    batches = 30 if args.quick else 300
    big = 20_000 if args.quick else 1_000_000
    has_es = importlib.util.find_spec("eventsourcing") is not None

    results: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory(prefix="busline-bench-") as tmp:
        root = Path(tmp)

        def contenders() -> Iterator[tuple[str, Callable[[Path], object]]]:
            yield "in-memory", lambda p: Busline(InMemoryEventStore(types=TYPES))
            yield (
                "busline SQLite",
                lambda p: Busline(SQLiteEventStore(p, types=TYPES, synchronous="full")),
            )
            yield "raw sqlite3", Raw
            if has_es:
                yield "eventsourcing", EventSourcing

        rounds = 3  # best of three, interleaved, so a noisy moment hurts no one contender
        for round_ in range(rounds):
            for i, (name, make) in enumerate(contenders()):
                store = make(root / f"{round_}-{i}.db")
                assert isinstance(store, Raw | Busline | EventSourcing)
                if isinstance(store, EventSourcing):
                    assert 2 == store.synchronous(), "eventsourcing must run at synchronous=FULL"
                row = measure(store, single, batches)
                store.close()
                best = results.setdefault(name, row)
                for op, value in row.items():
                    best[op] = max(best[op] or 0.0, value or 0.0)

        small = stream_read_cost(root / "small.db", 1_000, 200)
        large = stream_read_cost(root / "large.db", big, 200)
        with SQLiteEventStore(root / "large.db", types=TYPES) as store:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            seconds = timed(lambda: sum(1 for _ in store.read_all()))
            grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        peaks = read_all_memory(root / "large.db", [big // 10, big])

    names = list(results)
    operations = list(results[names[0]])
    width = max(len(o) for o in operations)
    header = f"{'operation':<{width}} | " + " | ".join(f"{n:>14}" for n in names)
    header += " | SQLite/raw | SQLite/eventsourcing"
    print()
    print(
        f"busline event store, SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL, "
        f"{'quick' if args.quick else 'full'} sizes"
    )
    print(header)
    print("-" * len(header))
    for op in operations:
        cells = " | ".join(f"{fmt(results[n][op]):>14}" for n in names)
        ours = results["busline SQLite"][op] or 0.0
        raw = results["raw sqlite3"][op] or 1.0
        es = results.get("eventsourcing", {}).get(op)
        print(
            f"{op:<{width}} | {cells} | {ours / raw:>10.2f} | "
            f"{(ours / es if es else float('nan')):>20.2f}"
        )
    print()
    print(
        f"read a 10-event stream: {small * 1e6:,.0f} µs with 1,000 events stored, "
        f"{large * 1e6:,.0f} µs with {big:,} stored (ratio {large / small:.2f})"
    )
    print(
        f"read_all over {big:,} events: {rate(big, seconds):,.0f} events/s; "
        f"max RSS grew {grown:,.1f} MiB; traced peak {peaks[0]:.2f} MiB for "
        f"{big // 10:,} events, {peaks[1]:.2f} MiB for {big:,}"
    )
    if not has_es:
        print("eventsourcing is not installed (pip install busline[bench]); its column is absent")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
