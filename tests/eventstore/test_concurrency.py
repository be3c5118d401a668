"""Many writers at once, in threads and in processes, and writers killed mid-append."""

from __future__ import annotations

import collections
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from busway.eventstore import (
    ConcurrencyError,
    EventStore,
    InMemoryEventStore,
    NewEvent,
    SQLiteEventStore,
)

from .events import Tick, types

WORKER = Path(__file__).with_name("_worker.py")


def check(store: EventStore, stored: list[tuple[str, uuid.UUID]]) -> None:
    """Every stored event is there once, versions run 1..n, read_all agrees with streams."""
    everything = list(store.read_all())
    positions = [r.position for r in everything]
    assert sorted(set(positions)) == positions
    counts = collections.Counter(r.event_id for r in everything)
    assert {eid for _, eid in stored} == set(counts)
    assert {1} == set(counts.values())
    expected_streams = collections.Counter(stream for stream, _ in stored)
    assert sorted(expected_streams.items()) == list(store.streams())
    for stream, count in expected_streams.items():
        recorded = store.read_stream(stream)
        assert list(range(1, count + 1)) == [r.version for r in recorded]
        assert [r.event_id for r in recorded] == [
            r.event_id for r in everything if r.stream_id == stream
        ]
        assert {eid for s, eid in stored if s == stream} == {r.event_id for r in recorded}


def append_with_retries(store: EventStore, stream: str, event: NewEvent) -> None:
    while True:
        try:
            store.append(stream, [event], expected_version=store.stream_version(stream))
        except ConcurrencyError:
            continue
        return


def run_threads(
    stores: Callable[[int], EventStore], threads: int, count: int
) -> list[tuple[str, uuid.UUID]]:
    stored: list[tuple[str, uuid.UUID]] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            store = stores(i)
            start.wait()
            for n in range(count):
                for stream in (f"own-{i}", "shared"):
                    event = NewEvent(Tick(str(i), n))
                    append_with_retries(store, stream, event)
                    with lock:
                        stored.append((stream, event.event_id))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [] == errors
    return stored


def test_threads_share_an_in_memory_store() -> None:
    """Threads appending to shared and own streams of one in-memory store lose nothing."""
    with InMemoryEventStore(types=types()) as store:
        check(store, run_threads(lambda _: store, threads=8, count=25))


def test_threads_share_an_sqlite_store(tmp_path: Path) -> None:
    """Threads appending through one SQLite store object lose nothing."""
    with SQLiteEventStore(tmp_path / "e.db", types=types(), synchronous="normal") as store:
        check(store, run_threads(lambda _: store, threads=8, count=25))


def test_threads_with_a_store_each(tmp_path: Path) -> None:
    """Threads with their own connections to one file take turns through SQLite's lock."""
    path = tmp_path / "e.db"
    opened: list[SQLiteEventStore] = []
    lock = threading.Lock()

    def open_store(_: int) -> EventStore:
        store = SQLiteEventStore(path, types=types(), synchronous="normal")
        with lock:
            opened.append(store)
        return store

    try:
        stored = run_threads(open_store, threads=6, count=15)
    finally:
        for store in opened:
            store.close()
    with SQLiteEventStore(path, types=types()) as store:
        check(store, stored)


def test_processes_share_a_file(tmp_path: Path) -> None:
    """Processes appending to shared and own streams of one file lose nothing."""
    path = tmp_path / "e.db"
    SQLiteEventStore(path, types=types()).close()
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "append", str(path), str(i), "15"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    stored: list[tuple[str, uuid.UUID]] = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert 0 == worker.returncode
        stored += [(s, uuid.UUID(e)) for s, e in map(json.loads, out.splitlines())]
    assert 4 * 15 * 2 == len(stored)
    with SQLiteEventStore(path, types=types()) as store:
        check(store, stored)


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.45])
def test_a_killed_writer_leaves_whole_appends(tmp_path: Path, delay: float) -> None:
    """A process killed in the middle of large appends leaves each one whole or absent."""
    path = tmp_path / "e.db"
    size = 5000
    for _ in range(2):  # the second round starts from the database the first one broke off
        worker = subprocess.Popen(
            [sys.executable, str(WORKER), "bulk", str(path), str(size)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert worker.stdout is not None
        assert "ready\n" == worker.stdout.readline()
        threading.Event().wait(delay * random.uniform(0.8, 1.2))
        worker.send_signal(signal.SIGKILL)
        worker.communicate()
        assert -signal.SIGKILL == worker.returncode
        with SQLiteEventStore(path, types=types()) as store:
            version = store.stream_version("bulk")
            assert 0 == version % size
            recorded = store.read_stream("bulk")
            assert list(range(1, version + 1)) == [r.version for r in recorded]
            assert [Tick("bulk", v) for v in range(version)] == [r.event for r in recorded]
            assert version == store.head_position()
    connection = sqlite3.connect(path)
    try:
        assert [("ok",)] == connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
