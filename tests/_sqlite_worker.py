"""What other processes do to an SQLite file in tests/test_sqlite.py: open it, hold it, try it.

Each store kind has a way to open it, to write to it and to read from it, so that one test
can be asked of every SQLite store. Run as a script, ``python _sqlite_worker.py KIND PATH``
opens a store of KIND at PATH, reads, writes, and prints what happened as a JSON object.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import uuid
from collections.abc import Callable
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import attrs

from busway import BuswayError
from busway.aggregates import Snapshot, SQLiteSnapshotStore
from busway.eventstore import EventTypes, SQLiteEventStore
from busway.projections import SQLiteCheckpointStore
from busway.sagas import SQLiteSagaStore
from busway.subscriptions import Advance


@attrs.frozen
class Tick:
    worker: str
    n: int


Where = str | Path | sqlite3.Connection


def _events(where: Where, **options: Any) -> SQLiteEventStore:
    return SQLiteEventStore(where, types=EventTypes(Tick), **options)


def _sagas(where: Where, **options: Any) -> SQLiteSagaStore:
    assert not isinstance(where, sqlite3.Connection)
    return SQLiteSagaStore(where, **options)


OPEN: dict[str, Callable[..., Any]] = {
    "events": _events,
    "sagas": _sagas,
    "snapshots": SQLiteSnapshotStore,
    "checkpoints": SQLiteCheckpointStore,
}
"""How to open each kind of store on a path (or, but for sagas, a connection)."""

WRITE: dict[str, Callable[[Any, str], object]] = {
    "events": lambda store, text: store.append("s-1", [Tick(text, 1)]),
    "sagas": lambda store, text: store.commit(
        [], checkpoint=Advance(text, store.checkpoint(text), 1)
    ),
    "snapshots": lambda store, text: store.save(
        Snapshot("s-1", 1, uuid.uuid4(), 1, json.dumps({"text": text}))
    ),
    "checkpoints": lambda store, text: store.save(text, 1),
}
"""How to write *text* (of any size) into each kind of store."""

READ: dict[str, Callable[[Any], object]] = {
    "events": lambda store: len(store.read_stream("s-1")),
    "sagas": lambda store: store.checkpoint("w"),
    "snapshots": lambda store: store.load("s-1") is not None,
    "checkpoints": lambda store: store.load("w"),
}
"""How to read each kind of store; what it returns says what was read."""


def open_in_step(kinds: list[str], paths: list[str], start: Barrier, failures: Any) -> None:
    """Open and close a store on each path, meeting the other processes before each one."""
    failed = []
    for n, path in enumerate(paths):
        start.wait(60)
        kind = kinds[n % len(kinds)]
        try:
            OPEN[kind](path).close()
        except Exception as exc:  # reported by the test, whatever it is
            failed.append(f"{kind} on {Path(path).name}: {type(exc).__name__}: {exc}")
    failures.put(failed)


def hold(path: str, statements: list[str], ready: Event, release: Event) -> None:
    """Run *statements* on a connection of its own, then keep it as it is until released."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    ready.set()
    release.wait(60)
    conn.close()


def attempt(kind: str, path: str) -> dict[str, object]:
    """Open, read and write a store, and say how far that went and why it stopped."""
    done: dict[str, object] = {}
    try:
        with OPEN[kind](path) as store:
            done["read"] = READ[kind](store)
            WRITE[kind](store, "w")
            done["wrote"] = True
    except BuswayError as exc:
        done["error"] = type(exc).__name__
        done["message"] = str(exc)
        done["cause"] = repr(exc.__cause__)
    return done


if __name__ == "__main__":
    print(json.dumps(attempt(sys.argv[1], sys.argv[2])))
