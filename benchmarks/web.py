"""Web suite: busway.web.follow() reading an SQLite store, against its live stream itself.

    python benchmarks/web.py            # this suite only, full sizes (20,000 events)
    python benchmarks/web.py --quick    # small sizes, for a smoke run

Reading: a client's stream, ``follow(store, after=0)``, reads events already stored in an
``AsyncSQLiteEventStore`` file: without a disconnect to race, with one (``until=``, a
future that never completes), and with a ``where`` filter keeping one event in two. The
limit is ``async for`` over ``store.subscribe()``, which ``follow()`` is built on, with the
same filter written as an ``if`` in the loop. The figure is the time an event read takes.

Latency: a client waits on a quiet store while the same event loop appends one event at a
time, a few milliseconds apart. Each event carries the time ``append()`` was called; the
client takes the time since when it gets the event, through ``follow(until=...)`` and
through ``store.subscribe()``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _harness import WARM_UP, Options, Table, percentile, timed
from eventstore import TYPES, fill
from subscriptions import STAMPED, STREAMS, Stamped

from busway.eventstore import AsyncLiveEvents, AsyncSQLiteEventStore, RecordedEvent
from busway.web import Following, follow

PER_EVENT = "µs/event"
LIMIT = "async for over store.subscribe()"
FILTERED_LIMIT = "async for over store.subscribe(), if where(event)"
FOLLOW = "follow(after=0)"
FOLLOW_UNTIL = "follow(after=0, until=disconnect)"
FOLLOW_WHERE = "follow(after=0, where=...)"
FOLLOW_UNTIL_WHERE = "follow(after=0, until=disconnect, where=...)"
LATENCY_LIMIT = "store.subscribe()"
LATENCY_FOLLOW = "follow(until=disconnect)"

Live = AsyncLiveEvents | Following


def every_other(recorded: RecordedEvent) -> bool:
    """The filter of the where cases: one event in two."""
    return recorded.position % 2 == 0


# -- reading ----------------------------------------------------------------------------------


async def drain(
    events: Live,
    count: int,
    where: Callable[[RecordedEvent], object] | None = None,
) -> int:
    """Take *count* events from *events* (those *where* keeps, if given), then close it."""
    taken = 0
    try:
        async for recorded in events:
            if where is None or where(recorded):
                taken += 1
                if taken == count:
                    break
    finally:
        await events.aclose()
    return taken


def read_once(
    loop: asyncio.AbstractEventLoop,
    events: Live,
    count: int,
    where: Callable[[RecordedEvent], object] | None,
) -> float:
    """Seconds *loop* takes to drain *count* events from *events*."""
    taken: list[int] = []
    seconds = timed(lambda: taken.append(loop.run_until_complete(drain(events, count, where))))
    assert [count] == taken, f"{events!r} delivered {taken} of {count} events"
    return seconds


Reader = Callable[[AsyncSQLiteEventStore, asyncio.Future[None]], Live]


def reading(stored: int) -> Iterator[tuple[str, str, int, Reader, bool]]:
    """(group, case, events delivered, the stream to read, filter in the loop) of each case."""
    every = f"read {stored:,} stored events"
    half = f"read {stored:,} stored events, where keeps one in two"
    yield every, LIMIT, stored, lambda s, _: s.subscribe(), False
    yield every, FOLLOW, stored, lambda s, _: follow(s, after=0), False
    yield every, FOLLOW_UNTIL, stored, lambda s, gone: follow(s, after=0, until=gone), False
    yield half, FILTERED_LIMIT, stored // 2, lambda s, _: s.subscribe(), True
    yield half, FOLLOW_WHERE, stored // 2, lambda s, _: follow(s, after=0, where=every_other), False
    yield (
        half,
        FOLLOW_UNTIL_WHERE,
        stored // 2,
        lambda s, gone: follow(s, after=0, until=gone, where=every_other),
        False,
    )


def read_costs(path: Path, stored: int, rounds: int) -> dict[tuple[str, str], float]:
    """Median µs an event read, over rounds that interleave the cases, of each case."""
    loop = asyncio.new_event_loop()
    store = AsyncSQLiteEventStore(path, types=TYPES)
    results: dict[tuple[str, str], list[float]] = {}
    try:
        loop.run_until_complete(store.head_position())  # opened before anything is timed
        for round_ in range(rounds + 1):
            for group, case, delivered, reader, in_loop in reading(stored):
                gone: asyncio.Future[None] = loop.create_future()
                where = every_other if in_loop else None
                seconds = read_once(loop, reader(store, gone), delivered, where)
                gone.cancel()
                if round_:  # round 0 warms up the caches and the worker thread
                    results.setdefault((group, case), []).append(seconds / stored * 1e6)
    finally:
        loop.run_until_complete(store.aclose())
        loop.close()
    return {key: statistics.median(costs) for key, costs in results.items()}


# -- latency ----------------------------------------------------------------------------------


async def deliveries(
    store: AsyncSQLiteEventStore, through: str, count: int, spacing: float
) -> tuple[list[float], list[float]]:
    """Return each sample's append time and its time from append() called to delivered."""
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    head = await store.head_position()
    events: Live = (
        store.subscribe(from_position=head + 1)
        if through == LATENCY_LIMIT
        else follow(store, after=head, until=gone)
    )
    delivered: list[float] = []

    async def client() -> None:
        async for recorded in events:
            assert isinstance(recorded.event, Stamped)
            delivered.append(time.perf_counter() - recorded.event.sent)
            if len(delivered) == count:
                return

    listening = asyncio.ensure_future(client())
    took = []
    try:
        await asyncio.sleep(0.05)  # the client has caught up and waits
        for n in range(count):
            sent = time.perf_counter()
            await store.append("stamps", [Stamped(n, sent)])
            took.append(time.perf_counter() - sent)
            await asyncio.sleep(spacing)
        await asyncio.wait_for(listening, 30)
    finally:
        gone.set_result(None)
        await events.aclose()
    return took[WARM_UP:], delivered[WARM_UP:]


def latencies(path: Path, count: int, spacing: float) -> dict[str, tuple[list[float], list[float]]]:
    """Append and delivery times of each way of following, on the SQLite file at *path*."""

    async def measure() -> dict[str, tuple[list[float], list[float]]]:
        async with AsyncSQLiteEventStore(path, types=STAMPED) as store:
            return {
                through: await deliveries(store, through, count, spacing)
                for through in (LATENCY_LIMIT, LATENCY_FOLLOW)
            }

    return asyncio.run(measure())


# -- the suite --------------------------------------------------------------------------------


def web_suite(options: Options) -> Table:
    """µs an event of follow() against the live stream it reads; append-to-delivered latency."""
    table = Table(
        "web",
        f"busway.web.follow() on AsyncSQLiteEventStore, SQLite {sqlite3.sqlite_version}, WAL",
    )
    table.stat = "measured"
    table.ratio_means = (
        "µs/event / µs/event of the row named after it (lower is faster); for latencies, "
        "ms / ms of the row named after it"
    )
    stored = options.size(20_000, 2_000)
    rounds = 3 if options.quick else 5
    samples = options.size(300, 30) + WARM_UP
    spacing = 0.005
    with tempfile.TemporaryDirectory(prefix="busway-bench-") as tmp:
        root = Path(tmp)
        fill(root / "stored.db", stored, min(STREAMS, stored))
        costs = read_costs(root / "stored.db", stored, rounds)
        waits = latencies(root / "latency.db", samples, spacing)

    for (group, case), cost in costs.items():
        limit = LIMIT if case in (LIMIT, FOLLOW, FOLLOW_UNTIL) else FILTERED_LIMIT
        against = "" if case == limit else limit
        table.add(case, cost, PER_EVENT, against=against, library="busway", group=group)
    group = "append() called to delivered, one append at a time on a quiet store"
    for through, (took, delivered) in waits.items():
        for p in (50, 99):
            took_ms = percentile(took, p) * 1e3
            table.add(f"{through}: append() itself, p{p}", took_ms, "ms", group=group)
        for p in (50, 99):
            table.add(
                f"{through}, p{p}",
                percentile(delivered, p) * 1e3,
                "ms",
                against="" if through == LATENCY_LIMIT else f"{LATENCY_LIMIT}, p{p}",
                library="busway",
                group=group,
            )
    table.params = {
        "stored events": stored,
        "rounds": rounds,
        "latency samples": samples - WARM_UP,
        "spacing between appends (s)": spacing,
    }
    table.notes.append(
        "reading figures are medians over rounds of the time a stored event takes (filtered "
        "out or not); latencies are percentiles of "
        f"{samples - WARM_UP} appends, {spacing * 1e3:.0f} ms apart after each returns, "
        "timed from the call of append() (its commit included) in the client's event loop"
    )
    return table


SUITES = {"web": web_suite}


if __name__ == "__main__":
    from run import main

    sys.exit(main(["--only", ",".join(SUITES), *sys.argv[1:]]))
