"""A separate process writing to an SQLite store, for the concurrency and crash tests.

python _worker.py append DB NAME COUNT   appends COUNT events to its own stream and to the
                                         shared one, retrying on ConcurrencyError, and prints
                                         each stored event as a JSON line
python _worker.py bulk DB SIZE           appends batches of SIZE events forever, printing
                                         "ready" first, until it is killed
python _worker.py ticks DB COUNT PAUSE   appends COUNT events one at a time, PAUSE seconds
                                         apart, each with the wall-clock time it was sent
"""

from __future__ import annotations

import json
import sys
import time

import attrs

from busway.eventstore import ConcurrencyError, EventTypes, NewEvent, SQLiteEventStore


@attrs.frozen
class Tick:
    worker: str
    n: int


def append(path: str, name: str, count: int) -> None:
    with SQLiteEventStore(path, types=EventTypes(Tick), synchronous="normal") as store:
        for n in range(count):
            for stream in (f"own-{name}", "shared"):
                event = NewEvent(Tick(name, n))
                while True:
                    version = store.stream_version(stream)
                    try:
                        store.append(stream, [event], expected_version=version)
                    except ConcurrencyError:
                        continue
                    break
                print(json.dumps([stream, str(event.event_id)]), flush=True)


def bulk(path: str, size: int) -> None:
    with SQLiteEventStore(path, types=EventTypes(Tick)) as store:
        version = store.stream_version("bulk")
        print("ready", flush=True)
        while True:
            batch = [Tick("bulk", version + i) for i in range(size)]
            version = store.append("bulk", batch, expected_version=version)


def ticks(path: str, count: int, pause: float) -> None:
    with SQLiteEventStore(path, types=EventTypes(Tick), synchronous="normal") as store:
        for n in range(count):
            time.sleep(pause)
            store.append("ticks", [NewEvent(Tick("ticks", n), metadata={"sent": time.time()})])


if __name__ == "__main__":
    command, db, *args = sys.argv[1:]
    if command == "append":
        append(db, args[0], int(args[1]))
    elif command == "ticks":
        ticks(db, int(args[0]), float(args[1]))
    else:
        bulk(db, int(args[0]))
