"""A separate process writing to an SQLite store, for the concurrency and crash tests.

python _worker.py append DB NAME COUNT   appends COUNT events to its own stream and to the
                                         shared one, retrying on ConcurrencyError, and prints
                                         each stored event as a JSON line
python _worker.py bulk DB SIZE           appends batches of SIZE events forever, printing
                                         "ready" first, until it is killed
"""

from __future__ import annotations

import json
import sys

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


if __name__ == "__main__":
    command, db, *args = sys.argv[1:]
    if command == "append":
        append(db, args[0], int(args[1]))
    else:
        bulk(db, int(args[0]))
