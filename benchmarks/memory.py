"""Memory suite: bytes per registered handler, bytes per stored event, read_all's peak.

    python benchmarks/memory.py [--quick] [--no-peers]   # this suite only

Sizes come from tracemalloc (what Python allocated and still holds), taken around the
registrations or appends alone: message classes, handlers and events are made first, so
only what the library keeps for them is counted. read_all's peak is the highest traced
memory while iterating over every event of an SQLite store, against a store 100 times
smaller: a flat peak means the store pages through the table instead of loading it.
"""

from __future__ import annotations

import functools
import gc
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from _harness import Options, Peers, Table
from _peers import load, subclass
from dispatch import MinimalBus, many_types
from eventstore import TYPES, event, fill

from busway import CommandBus, Event, EventBus, Registry
from busway.eventstore import InMemoryEventStore, SQLiteEventStore

BYTES = "bytes"


def handle(message: object) -> None:
    """The one handler every registration uses: it exists before any of them."""


def traced(fn: Callable[[], object]) -> tuple[int, object]:
    """Return the bytes *fn* allocated and still holds when it returns, and its result."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before, result


def traced_peak(fn: Callable[[], object]) -> int:
    """Return the highest traced memory while *fn* runs, above what was held before."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def _registrations(table: Table, options: Options) -> None:
    count = options.size(10_000, 1_000)
    group = f"per registered handler ({count:,} message types)"
    commands = many_types(count)
    events = many_types(count, Event)

    def minimal() -> object:
        return MinimalBus(dict.fromkeys(commands, handle))

    def command_bus() -> object:
        registry = Registry()
        for tp in commands:
            registry.command(tp)(handle)
        return CommandBus(registry)

    def command_bus_dispatched() -> object:
        bus = command_bus()
        assert isinstance(bus, CommandBus)
        for tp in commands:  # builds and caches every type's chain
            bus.execute(tp())
        return bus

    def event_bus() -> object:
        registry = Registry()
        for tp in events:
            registry.event(tp)(handle)
        return EventBus(registry)

    base = "minimal bus (a dict)"
    size, kept = traced(minimal)
    table.add(base, size / count, BYTES, against=base, library=base, group=group)
    for case, build in (
        ("busway CommandBus", command_bus),
        ("busway CommandBus, every type dispatched once", command_bus_dispatched),
        ("busway EventBus", event_bus),
    ):
        size, kept = traced(build)
        table.add(case, size / count, BYTES, against=base, library="busway", group=group)
    del kept

    peers = Peers(options, table)
    for library, case, setup in (
        ("lato", "lato Application.handler", functools.partial(_lato_registrations, count)),
        ("pyee", "pyee EventEmitter.on (names)", _pyee_registrations),
        ("blinker", "blinker Signal.connect (a signal each)", _blinker_registrations),
    ):
        register = peers.build(library, setup)
        if register is not None:
            size, kept = traced(functools.partial(register, commands))
            table.add(case, size / count, BYTES, against=base, library=library, group=group)
            del kept


def _lato_registrations(count: int) -> Callable[[list[type]], object]:
    lato = load("lato")
    # lato keys handlers by its own Command classes: make them before tracing starts.
    own = [subclass(lato.Command, f"Filler{i}", {}) for i in range(count)]

    def register(types: list[type]) -> object:
        app = lato.Application("bench")
        for tp in own:
            app.handler(tp)(handle)
        return app

    return register


def _pyee_registrations() -> Callable[[list[type]], object]:
    pyee = load("pyee")

    def register(types: list[type]) -> object:
        ee = pyee.EventEmitter()
        for tp in types:
            ee.on(tp.__name__, handle)
        return ee

    return register


def _blinker_registrations() -> Callable[[list[type]], object]:
    blinker = load("blinker")

    def register(types: list[type]) -> object:
        signals = [blinker.Signal() for _ in types]
        for signal in signals:
            signal.connect(handle)
        return signals

    return register


def _stored_events(table: Table, options: Options) -> None:
    count = options.size(100_000, 5_000)
    group = f"per event in the in-memory store ({count:,} events, 100 a batch)"
    batch = [event(n) for n in range(100)]
    _, _, payload = TYPES.encode(batch[0])

    def append() -> object:
        store = InMemoryEventStore(types=TYPES)
        for n in range(count // 100):
            store.append(f"order-{n}", batch)
        return store

    size, kept = traced(append)
    del kept
    table.add("JSON payload alone", len(payload), BYTES, group=group)
    table.add(
        "busway InMemoryEventStore",
        size / (count // 100 * 100),
        BYTES,
        against="JSON payload alone",
        library="busway",
        group=group,
    )


def _read_all_peak(table: Table, options: Options) -> None:
    big = options.size(1_000_000, 20_000)
    small = min(big, max(10_000, big // 100))  # several pages of 1,000, so both page
    group = "peak while iterating read_all over an SQLite store (MiB)"
    with tempfile.TemporaryDirectory(prefix="busway-bench-") as tmp:
        peaks = {}
        for name, size in (("small", small), ("big", big)):
            path = Path(tmp) / f"{name}.db"
            fill(path, size, max(1, size // 10))
            with SQLiteEventStore(path, types=TYPES) as store:

                def read(s: SQLiteEventStore = store) -> None:
                    for _ in s.read_all():
                        pass

                peaks[size] = traced_peak(read) / 2**20
    first = f"{small:,} events"
    table.add(first, peaks[small], "MiB", group=group)
    table.add(f"{big:,} events", peaks[big], "MiB", against=first, group=group)


def memory_suite(options: Options) -> Table:
    """Memory per handler, per stored event, and read_all's peak."""
    table = Table("memory", "Memory: what registrations and stored events keep")
    table.stat = "measured"
    table.ratio_means = "value / value of the row named after it (lower is leaner)"
    _registrations(table, options)
    _stored_events(table, options)
    _read_all_peak(table, options)
    table.notes.append(
        "bytes per handler include the library's tables and wrappers, not the classes or the "
        "handler function, which exist before registration"
    )
    return table


SUITES = {"memory": memory_suite}

if __name__ == "__main__":
    from run import main

    sys.exit(main(["--only", ",".join(SUITES), *sys.argv[1:]]))
