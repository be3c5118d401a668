"""Subscriptions suite: a projection runner catching up with an SQLite store, and following it.

    python benchmarks/subscriptions.py            # this suite only, full sizes (20,000 events)
    python benchmarks/subscriptions.py --quick    # small sizes, for a smoke run

Throughput: ``ProjectionRunner`` feeds an ``SQLiteProjection`` that writes one row an event
into a read model in a database file of its own, with its ``SQLiteCheckpointStore`` there
too, catching up from an ``SQLiteEventStore`` file. Its limit is a hand-written loop over
``store.read_all`` that writes the same rows and the checkpoint with raw sqlite3, one
transaction a batch. When eventsourcing is installed, its SQLite process application and a
materialised view of its own catch up too, one transaction an event as it does them, beside
busway and the loop at one event a batch. Every database runs in WAL mode with
``synchronous=FULL``.

Latency: a runner follows the store on its thread (``start()``) while a writer appends one
event at a time, a few milliseconds apart, first in this process, then in another one
(spawned) on the same file. Each event carries the time it was sent; the handler writes
the time since into the read model, and the writer's own record of how long each append
took turns that into the time from ``append()`` returning to the handler running.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import attrs
from _harness import WARM_UP, Options, Peers, Table, percentile, timed
from eventstore import TYPES, ItemAdded, event, rate

from busway.eventstore import EventStore, EventTypes, RecordedEvent, SQLiteEventStore
from busway.projections import (
    ProjectionRunner,
    SQLiteCheckpointStore,
    SQLiteProjection,
    when,
)

EPS = "events/s"
STREAMS = 200
RAW = "hand-written sqlite3 loop"
BUSWAY = "busway ProjectionRunner"
ES_PROCESS = "eventsourcing ProcessApplication"
ES_VIEW = "eventsourcing Projection + view"
LINES = (
    "CREATE TABLE IF NOT EXISTS lines (position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, "
    "sku TEXT NOT NULL, quantity INTEGER NOT NULL, price TEXT NOT NULL)"
)
INSERT_LINE = "INSERT INTO lines VALUES (?, ?, ?, ?, ?)"


# -- throughput -------------------------------------------------------------------------------


class Lines(SQLiteProjection):
    """One row an ItemAdded, written in the runner's transaction."""

    name = "lines"

    def setup(self, conn: sqlite3.Connection) -> None:
        conn.execute(LINES)

    @when(ItemAdded)
    def _added(self, event: ItemAdded, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        conn.execute(
            INSERT_LINE,
            (recorded.position, recorded.stream_id, event.sku, event.quantity, str(event.price)),
        )


def fill(path: Path, events: int) -> None:
    """Store *events* ItemAdded events over a few hundred streams, a stream at a time."""
    with SQLiteEventStore(path, types=TYPES, synchronous="off") as store:
        streams = min(STREAMS, events)
        for s in range(streams):
            store.append(f"order-{s}", [event(n) for n in range(s, events, streams)])


def lines_in(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM lines").fetchone()[0])


def busway_catch_up(events: Path, model: Path, batch: int) -> float:
    """Seconds a fresh runner takes to catch up from *events* into *model*."""
    with (
        SQLiteEventStore(events, types=TYPES) as store,
        SQLiteCheckpointStore(model) as checkpoints,
    ):
        runner = ProjectionRunner(store, Lines(), checkpoints=checkpoints, batch_size=batch)
        return timed(runner.run_until_caught_up)


def raw_catch_up(events: Path, model: Path, batch: int) -> float:
    """The limit: read_all a batch at a time, then the batch's rows and the checkpoint,
    written with raw sqlite3 in one transaction."""
    with (
        SQLiteEventStore(events, types=TYPES) as store,
        contextlib.closing(sqlite3.connect(model, isolation_level=None)) as conn,
    ):
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(LINES)
        conn.execute("CREATE TABLE checkpoints (name TEXT PRIMARY KEY, position INTEGER)")

        def catch_up() -> None:
            position = 0
            while page := list(store.read_all(from_position=position + 1, limit=batch)):
                conn.execute("BEGIN IMMEDIATE")
                for recorded in page:
                    e = recorded.event
                    conn.execute(
                        INSERT_LINE,
                        (recorded.position, recorded.stream_id, e.sku, e.quantity, str(e.price)),
                    )
                position = page[-1].position
                conn.execute(
                    "INSERT INTO checkpoints VALUES ('lines', ?) ON CONFLICT (name) "
                    "DO UPDATE SET position = excluded.position",
                    (position,),
                )
                conn.execute("COMMIT")

        return timed(catch_up)


CatchUp = Callable[[Path, Path, int], float]
Contender = Callable[[Path], tuple[float, int]]
BATCHES = (100, 500)


def batched(events: int, batch: int) -> str:
    return f"catch up {events:,} events, batch_size={batch}"


def throughput(
    options: Options, root: Path, es: Any | None
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Return events/s of each contender in each group (median over rounds), and sizes."""
    many = options.size(20_000, 2_000)
    few = options.size(2_000, 200)
    rounds = 3 if options.quick else 5
    fill(root / "many.db", many)
    fill(root / "few.db", few)
    if es is not None:
        es.fill(root / "es-few.db", few, min(STREAMS, few))

    def catching_up(catch_up: CatchUp, source: str, batch: int) -> Contender:
        def run(model: Path) -> tuple[float, int]:
            return catch_up(root / source, model, batch), lines_in(model)

        return run

    def es_process(model: Path) -> tuple[float, int]:
        assert es is not None
        return es.process_catch_up(root / "es-few.db", model, timed)

    def es_view(model: Path) -> tuple[float, int]:
        assert es is not None
        seconds, rows, synchronous = es.view_catch_up(root / "es-few.db", model, timed)
        assert 2 == synchronous, "eventsourcing must run at synchronous=FULL"
        return seconds, rows

    def contenders() -> Iterator[tuple[str, str, int, Contender]]:
        for batch in BATCHES:
            group = batched(many, batch)
            yield group, RAW, many, catching_up(raw_catch_up, "many.db", batch)
            yield group, BUSWAY, many, catching_up(busway_catch_up, "many.db", batch)
        group = f"catch up {few:,} events, one transaction an event"
        yield group, RAW, few, catching_up(raw_catch_up, "few.db", 1)
        yield group, BUSWAY, few, catching_up(busway_catch_up, "few.db", 1)
        if es is not None:
            yield group, ES_PROCESS, few, es_process
            yield group, ES_VIEW, few, es_view

    results: dict[str, dict[str, list[float]]] = {}
    # Rounds interleave the contenders, so a noisy moment hurts no one of them alone; each
    # run writes a fresh read model.
    for round_ in range(rounds):
        for i, (group, name, count, run) in enumerate(contenders()):
            seconds, handled = run(root / f"model-{round_}-{i}.db")
            assert count == handled, f"{name} handled {handled} of {count} events"
            results.setdefault(group, {}).setdefault(name, []).append(rate(count, seconds))
    medians = {
        group: {name: statistics.median(rates) for name, rates in by_name.items()}
        for group, by_name in results.items()
    }
    return medians, {"events": many, "events one a transaction": few, "rounds": rounds}


# -- latency ----------------------------------------------------------------------------------


@attrs.frozen
class Stamped:
    n: int
    sent: float


STAMPED = EventTypes(Stamped)


class Arrivals(SQLiteProjection):
    """Writes, for each stamped event, how long after its stamp the handler ran."""

    name = "arrivals"

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock

    def setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS arrivals (n INTEGER PRIMARY KEY, seconds REAL)")

    @when(Stamped)
    def _arrived(self, event: Stamped, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO arrivals VALUES (?, ?)", (event.n, self.clock() - event.sent))


def write_stamped(
    store: EventStore, count: int, spacing: float, clock: Callable[[], float]
) -> list[float]:
    """Append *count* stamped events one at a time; return the seconds each append took."""
    took = []
    for n in range(count):
        sent = clock()
        store.append("stamps", [Stamped(n, sent)])
        took.append(clock() - sent)
        time.sleep(spacing)
    return took


def write_elsewhere(path: str, count: int, spacing: float, out: Connection) -> None:
    """In another process: append stamped with time.time() to *path*; send the append times."""
    with SQLiteEventStore(path, types=STAMPED) as store:
        out.send(write_stamped(store, count, spacing, time.time))
    out.close()


def in_another_process(path: Path, count: int, spacing: float) -> list[float]:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    writer = context.Process(target=write_elsewhere, args=(str(path), count, spacing, send))
    writer.start()
    send.close()
    try:
        took: list[float] = receive.recv()
    finally:
        writer.join()
    return took


def follow(
    root: Path, poll: float, count: int, spacing: float, *, elsewhere: bool
) -> tuple[list[float], list[float]]:
    """Return each sample's append time and its time from append() returning to handled."""
    name = f"follow-{poll}-{'elsewhere' if elsewhere else 'here'}"
    events, model = root / f"{name}.db", root / f"{name}-model.db"
    clock = time.time if elsewhere else time.perf_counter  # time.time: one clock for both
    with (
        SQLiteEventStore(events, types=STAMPED) as store,
        SQLiteCheckpointStore(model) as checkpoints,
    ):
        runner = ProjectionRunner(
            store, Arrivals(clock), checkpoints=checkpoints, poll_interval=poll
        )
        with runner.running():
            if elsewhere:
                took = in_another_process(events, count, spacing)
            else:
                took = write_stamped(store, count, spacing, clock)
            runner.wait_for(store.head_position(), timeout=30)
    with contextlib.closing(sqlite3.connect(model)) as conn:
        arrived = [s for (s,) in conn.execute("SELECT seconds FROM arrivals ORDER BY n")]
    assert count == len(arrived), f"{len(arrived)} of {count} stamped events arrived"
    handled = [a - t for a, t in zip(arrived, took, strict=True)]
    return took[WARM_UP:], handled[WARM_UP:]


# -- the suite --------------------------------------------------------------------------------


def subscriptions_suite(options: Options) -> Table:
    """Events/s of a runner catching up, against the limit and peers; latency following."""
    table = Table(
        "subscriptions",
        f"Projection runner on SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL",
    )
    table.stat = "measured"
    table.ratio_means = (
        "events/s / events/s of the row named after it (higher is faster); for latencies, "
        "ms / the runner's poll_interval in ms"
    )
    peers = Peers(options, table)
    es = peers.build("eventsourcing", lambda: importlib.import_module("_eventsourcing"))
    samples = options.size(300, 30) + WARM_UP
    spacing = 0.005
    polls = (0.1, 0.01)
    with tempfile.TemporaryDirectory(prefix="busway-bench-") as tmp:
        root = Path(tmp)
        medians, sizes = throughput(options, root, es)
        latencies = {
            (poll, elsewhere): follow(root, poll, samples, spacing, elsewhere=elsewhere)
            for poll in polls
            for elsewhere in (False, True)
        }

    # busway's default batch beside eventsourcing, which has no batches: the same figure as
    # in the batch_size=100 group.
    default = f"{BUSWAY}, batch_size=100"
    by_default = medians[batched(sizes["events"], 100)][BUSWAY]
    for group, med in medians.items():
        table.add(RAW, med[RAW], EPS, library="limit", group=group)
        table.add(BUSWAY, med[BUSWAY], EPS, against=RAW, library="busway", group=group)
        for peer in (ES_PROCESS, ES_VIEW):
            if peer in med:
                table.add(peer, med[peer], EPS, against=RAW, library="eventsourcing", group=group)
                table.add(BUSWAY, med[BUSWAY], EPS, against=peer, library="busway", group=group)
                table.add(default, by_default, EPS, against=peer, library="busway", group=group)
    for (poll, elsewhere), (took, handled) in latencies.items():
        where = "another process" if elsewhere else "this process"
        group = f"append to handled, writer in {where}, poll_interval={poll} s"
        for p in (50, 99):
            table.add(f"append() itself, p{p}", percentile(took, p) * 1e3, "ms", group=group)
        for p in (50, 99):
            table.add(
                f"append() returned to handled, p{p}",
                percentile(handled, p) * 1e3,
                "ms",
                against="poll_interval",
                base=poll * 1e3,
                library="busway",
                group=group,
            )
    table.params = {
        **sizes,
        "latency samples": samples - WARM_UP,
        "spacing between appends (s)": spacing,
        "poll intervals (s)": list(polls),
    }
    table.notes.append(
        "throughput figures are medians over rounds; latencies are percentiles of "
        f"{samples - WARM_UP} appends, {spacing * 1e3:.0f} ms apart after each returns"
    )
    table.notes.append(
        "a caught-up runner wakes at once for an append in its own process, and polls the "
        "store every poll_interval for other processes': their events wait up to the next "
        "poll, so p99 comes close to the interval"
    )
    if es is not None:
        table.notes.append(
            "eventsourcing commits each event with its tracking record (its ProjectionRunner "
            "needs recorder subscriptions, which its SQLite module lacks, so the view is fed "
            "by a NotificationLogReader loop; see benchmarks/_eventsourcing.py)"
        )
    return table


SUITES = {"subscriptions": subscriptions_suite}


if __name__ == "__main__":
    from run import main

    sys.exit(main(["--only", ",".join(SUITES), *sys.argv[1:]]))
