"""A separate process writing to a PostgreSQL event store, for the concurrency and crash tests.

python _writer.py append DSN SCHEMA NAME COUNT   appends COUNT events to its own stream and
                                                 to a shared one, each read-then-append
                                                 retried on ConcurrencyError
python _writer.py batches DSN SCHEMA NAME SIZE   appends batches of SIZE events to its own
                                                 stream forever (each batch's ids derived
                                                 from NAME and its number, so a restarted
                                                 writer retries the batch it was killed in),
                                                 printing "ready" first, until it is killed
"""

from __future__ import annotations

import sys
import uuid

import attrs

from busway.eventstore import ConcurrencyError, EventTypes, NewEvent
from busway.postgres import PostgresEventStore


@attrs.frozen
class Tick:
    writer: str
    batch: int
    n: int


TYPES = EventTypes(Tick)


def event_id(name: str, batch: int, n: int) -> uuid.UUID:
    """Return the id a writer gives event *n* of its batch *batch*, the same on every run."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"busway-test/{name}/{batch}/{n}")


def append(dsn: str, schema: str, name: str, count: int) -> None:
    with PostgresEventStore(dsn, types=TYPES, schema=schema) as store:
        for n in range(count):
            for stream in (f"own-{name}", "shared"):
                event = NewEvent(Tick(name, n, 0), event_id=event_id(f"{name}/{stream}", n, 0))
                while True:
                    version = store.stream_version(stream)
                    try:
                        store.append(stream, [event], expected_version=version)
                    except ConcurrencyError:
                        continue
                    break


def batches(dsn: str, schema: str, name: str, size: int) -> None:
    with PostgresEventStore(dsn, types=TYPES, schema=schema) as store:
        stream = f"batches-{name}"
        batch = store.stream_version(stream) // size
        print("ready", flush=True)
        while True:
            events = [
                NewEvent(Tick(name, batch, n), event_id=event_id(name, batch, n))
                for n in range(size)
            ]
            store.append(stream, events, expected_version=batch * size)
            batch += 1


if __name__ == "__main__":
    command, dsn, schema, name, number = sys.argv[1:]
    (append if command == "append" else batches)(dsn, schema, name, int(number))
