"""What the PostgreSQL event store promises beyond the contract: order, wake-ups, failures."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import psycopg.errors
import pytest
from psycopg_pool import ConnectionPool

from busway.errors import (
    ConcurrencyError,
    ConnectionLostError,
    InvalidArgumentError,
    StoreClosedError,
    StoreFormatError,
    StoreUnavailableError,
)
from busway.eventstore import EventTypes, NewEvent, RecordedEvent
from busway.postgres import AsyncPostgresEventStore, PostgresEventStore

from ._writer import TYPES, Tick, event_id

WRITER = Path(__file__).with_name("_writer.py")
DEADLINE = 30.0  # seconds anything that should happen soon may take on a busy machine


@attrs.frozen
class Note:
    text: str


def types() -> EventTypes:
    return EventTypes(Note)


def lock_key(schema: str, table: str = "events") -> str:
    """The text whose hash is the table's append lock, as docs/postgres.md gives it."""
    return f"busway events {schema}.{table}"


def channel(schema: str, table: str = "events") -> str:
    """The table's NOTIFY channel, as docs/postgres.md gives it."""
    return "busway_" + hashlib.sha256(f"{schema}.{table}".encode()).hexdigest()[:32]


def eventually(check: Callable[[], bool], what: str) -> None:
    """Wait until *check* holds, failing after the deadline."""
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"waited {DEADLINE} s for {what}"
        time.sleep(0.01)


def sql(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own and return its rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description is not None else []


def waiting_on_the_lock(dsn: str, app: str) -> list[int]:
    """Return the backends of application *app* waiting on an advisory lock."""
    rows = sql(
        dsn,
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
        "AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
        (app,),
    )
    return [pid for (pid,) in rows]


@pytest.fixture
def holder(postgres_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection of the test's own, for transactions it holds open."""
    with psycopg.connect(postgres_dsn) as conn:
        yield conn


class Thread(threading.Thread):
    """A thread that keeps what its target returned or raised."""

    def __init__(self, target: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self._call = target
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._call()
        except BaseException as exc:  # handed to the test, which asserts on it
            self.error = exc

    def outcome(self) -> object:
        self.join(DEADLINE)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def named(dsn: str, app: str) -> str:
    return f"{dsn}?application_name={app}" if "?" not in dsn else f"{dsn}&application_name={app}"


# -- global order --------------------------------------------------------------------------


def test_a_later_commit_waits_for_an_earlier_position(
    postgres_dsn: str, pg_schema: str, holder: psycopg.Connection[Any]
) -> None:
    """A reader never skips an event whose transaction took an earlier position but commits late.

    A transaction takes the table's append lock and the next position, and stays open; an
    append to another stream then waits for it instead of committing a later position
    first, so readers meanwhile see neither, and afterwards both, the earlier first.
    """
    app = f"order-{uuid.uuid4().hex[:8]}"
    with PostgresEventStore(named(postgres_dsn, app), types=types(), schema=pg_schema) as store:
        store.append("before", [Note("0")])
        follower = store.subscribe(poll_interval=0.05)
        assert "0" == _text(next(follower))
        received: list[RecordedEvent] = []
        reader = Thread(lambda: received.extend(next(follower) for _ in range(2)))
        reader.start()
        with holder.transaction():
            holder.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock_key(pg_schema),)
            )
            ((early,),) = holder.execute(
                f'INSERT INTO "{pg_schema}".events (stream_id, version, event_id, type, '
                "schema_version, data, metadata, recorded_at) VALUES ('early', 1, %s, 'Note', "
                """1, '{"text": "early"}', '{}', '2026-01-01T00:00:00+00:00') RETURNING position""",
                (uuid.uuid4().bytes,),
            ).fetchall()
            late = Thread(lambda: store.append("late", [Note("late")]))
            late.start()
            eventually(lambda: bool(waiting_on_the_lock(postgres_dsn, app)), "the append to wait")
            assert ["0"] == [_text(r) for r in store.read_all()]
            assert late.is_alive()
        assert 1 == late.outcome()
        assert None is reader.outcome()
        follower.close()
        assert ["0", "early", "late"] == [_text(r) for r in store.read_all()]
        assert ["early", "late"] == [_text(r) for r in received]
        assert early == received[0].position < received[1].position


def test_concurrent_appends_to_one_stream_take_turns(
    postgres_dsn: str, pg_schema: str, holder: psycopg.Connection[Any]
) -> None:
    """Two appends with ANY that read the same version both land, one after the other."""
    app = f"turns-{uuid.uuid4().hex[:8]}"
    with PostgresEventStore(named(postgres_dsn, app), types=types(), schema=pg_schema) as store:
        store.head_position()
        with holder.transaction():
            holder.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock_key(pg_schema),)
            )
            writers = [
                Thread(functools.partial(store.append, "s", [Note(str(n))])) for n in range(2)
            ]
            for writer in writers:
                writer.start()
            eventually(lambda: len(waiting_on_the_lock(postgres_dsn, app)) == 2, "both to wait")
        assert {1, 2} == {writer.outcome() for writer in writers}
        assert [1, 2] == [r.version for r in store.read_stream("s")]


def _text(recorded: RecordedEvent) -> str:
    assert isinstance(recorded.event, Note)
    return recorded.event.text


# -- connection loss -----------------------------------------------------------------------


def test_an_append_cut_off_while_it_waits_can_be_retried(
    postgres_dsn: str, pg_schema: str, holder: psycopg.Connection[Any]
) -> None:
    """An append whose connection is cut says so, and its retry with the same ids lands once."""
    app = f"cut-{uuid.uuid4().hex[:8]}"
    with PostgresEventStore(named(postgres_dsn, app), types=types(), schema=pg_schema) as store:
        batch = [NewEvent(Note("a")), NewEvent(Note("b"))]
        store.head_position()
        with holder.transaction():
            holder.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock_key(pg_schema),)
            )
            cut = Thread(lambda: store.append("s", batch, expected_version=0))
            cut.start()
            eventually(lambda: bool(waiting_on_the_lock(postgres_dsn, app)), "the append to wait")
            (pid,) = waiting_on_the_lock(postgres_dsn, app)
            holder.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(ConnectionLostError) as info:
                cut.outcome()
        assert info.value.committed is None
        assert "retried with the same NewEvent ids" in str(info.value)
        assert [] == store.read_stream("s")
        assert 2 == store.append("s", batch, expected_version=0)
        assert 2 == store.append("s", batch, expected_version=0)  # and again: nothing twice
        assert [e.event_id for e in batch] == [r.event_id for r in store.read_stream("s")]


def test_an_async_append_cut_off_can_be_retried(
    postgres_dsn: str, pg_schema: str, holder: psycopg.Connection[Any]
) -> None:
    """The async store says so too when its connection is cut, and its retry lands once."""
    app = f"acut-{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        async with AsyncPostgresEventStore(
            named(postgres_dsn, app), types=types(), schema=pg_schema
        ) as store:
            batch = [NewEvent(Note("a"))]
            with holder.transaction():
                holder.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock_key(pg_schema),)
                )
                cut = asyncio.create_task(store.append("s", batch))
                deadline = time.monotonic() + DEADLINE
                while not waiting_on_the_lock(postgres_dsn, app):
                    assert time.monotonic() < deadline, "the append never waited"
                    await asyncio.sleep(0.01)
                (pid,) = waiting_on_the_lock(postgres_dsn, app)
                holder.execute("SELECT pg_terminate_backend(%s)", (pid,))
                with pytest.raises(ConnectionLostError):
                    await cut
            assert 1 == await store.append("s", batch)
            assert 1 == await store.append("s", batch)
            assert [batch[0].event_id] == [r.event_id for r in await store.read_stream("s")]

    asyncio.run(main())


def test_appends_retried_through_connections_cut_at_random_land_once(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Appends whose connections are cut at random moments, retried, store each event once."""
    app = f"cuts-{uuid.uuid4().hex[:8]}"
    batches = [[NewEvent(Note(f"{b}-{n}")) for n in range(3)] for b in range(25)]
    lost = 0
    done = threading.Event()

    def cut() -> None:
        while not done.is_set():
            sql(
                postgres_dsn,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND state = 'active'",
                (app,),
            )
            time.sleep(random.uniform(0, 0.01))

    cutter = Thread(cut)
    with PostgresEventStore(named(postgres_dsn, app), types=types(), schema=pg_schema) as store:
        store.head_position()
        cutter.start()
        try:
            for number, batch in enumerate(batches):
                while True:
                    try:
                        store.append("s", batch, expected_version=3 * number)
                        break
                    except ConnectionLostError:
                        lost += 1
        finally:
            done.set()
            cutter.outcome()
        recorded = store.read_stream("s")
    assert [e.event_id for batch in batches for e in batch] == [r.event_id for r in recorded]
    assert list(range(1, 76)) == [r.version for r in recorded]


# -- many processes ------------------------------------------------------------------------


def test_eight_processes_append_to_shared_and_own_streams(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Eight processes appending at once, retrying conflicts, store every event once, in order."""
    count = 15
    PostgresEventStore(postgres_dsn, types=TYPES, schema=pg_schema).head_position()
    writers = [
        subprocess.Popen(
            [sys.executable, str(WRITER), "append", postgres_dsn, pg_schema, f"w{i}", str(count)]
        )
        for i in range(8)
    ]
    for writer in writers:
        assert 0 == writer.wait(timeout=120)
    with PostgresEventStore(postgres_dsn, types=TYPES, schema=pg_schema) as store:
        recorded = list(store.read_all())
        positions = [r.position for r in recorded]
        assert positions == sorted(set(positions))
        expected = {
            event_id(f"w{i}/{stream}", n, 0)
            for i in range(8)
            for stream in (f"own-w{i}", "shared")
            for n in range(count)
        }
        assert sorted(expected) == sorted(r.event_id for r in recorded)
        for stream, version in store.streams():
            assert list(range(1, version + 1)) == [
                r.version for r in recorded if r.stream_id == stream
            ]
        assert 8 * count == store.stream_version("shared")
        for i in range(8):
            own = [r.event for r in store.read_stream(f"own-w{i}")]
            assert [Tick(f"w{i}", n, 0) for n in range(count)] == own


@pytest.mark.parametrize("seed", [1])
def test_killed_writers_leave_whole_batches(postgres_dsn: str, pg_schema: str, seed: int) -> None:
    """Writer processes SIGKILLed at random moments leave every batch whole or absent."""
    rng = random.Random(seed)
    size = 50
    names = [f"k{i}" for i in range(3)]
    PostgresEventStore(postgres_dsn, types=TYPES, schema=pg_schema).head_position()
    for _ in range(2):  # the second round goes on from where the first was killed
        writers = [
            subprocess.Popen(
                [sys.executable, str(WRITER), "batches", postgres_dsn, pg_schema, name, str(size)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for name in names
        ]
        for writer in writers:
            assert writer.stdout is not None
            assert "ready\n" == writer.stdout.readline()
        for writer in writers:
            threading.Event().wait(rng.uniform(0.0, 0.3))
            writer.send_signal(signal.SIGKILL)
        for writer in writers:
            writer.communicate(timeout=DEADLINE)
            assert -signal.SIGKILL == writer.returncode
        with PostgresEventStore(postgres_dsn, types=TYPES, schema=pg_schema) as store:
            positions = [r.position for r in store.read_all()]
            assert positions == sorted(set(positions))
            for name in names:
                recorded = store.read_stream(f"batches-{name}")
                assert 0 == len(recorded) % size
                assert [
                    Tick(name, batch, n)
                    for batch in range(len(recorded) // size)
                    for n in range(size)
                ] == [r.event for r in recorded]
                assert list(range(1, len(recorded) + 1)) == [r.version for r in recorded]


# -- wake-ups ------------------------------------------------------------------------------


def listening(dsn: str, schema: str) -> list[int]:
    rows = sql(
        dsn,
        "SELECT pid FROM pg_stat_activity WHERE query = %s",
        (f'LISTEN "{channel(schema)}"',),
    )
    return [pid for (pid,) in rows]


def test_appends_through_another_connection_wake_a_live_stream(
    postgres_dsn: str, pg_schema: str
) -> None:
    """A live stream wakes for an append from elsewhere at once, also after its listener was cut."""
    with (
        PostgresEventStore(postgres_dsn, types=types(), schema=pg_schema) as store,
        # Another DSN, as another process would have: its appends reach the first store
        # only through NOTIFY.
        PostgresEventStore(
            named(postgres_dsn, "elsewhere"), types=types(), schema=pg_schema
        ) as other,
    ):
        live = store.subscribe(poll_interval=600)
        received: list[RecordedEvent] = []
        reader = Thread(lambda: received.extend(next(live) for _ in range(2)))
        reader.start()
        eventually(lambda: bool(listening(postgres_dsn, pg_schema)), "the store to listen")
        other.append("s", [Note("1")])
        eventually(lambda: len(received) == 1, "the first event")
        cut = listening(postgres_dsn, pg_schema)  # both stores' listeners
        for pid in cut:
            sql(postgres_dsn, "SELECT pg_terminate_backend(%s)", (pid,))
        eventually(
            lambda: len(set(listening(postgres_dsn, pg_schema)) - set(cut)) == 2, "new listeners"
        )
        other.append("s", [Note("2")])
        assert None is reader.outcome()
        live.close()
        assert ["1", "2"] == [_text(r) for r in received]


def test_stores_of_one_table_share_one_listener(postgres_dsn: str, pg_schema: str) -> None:
    """Stores of one table in a process listen on one connection, until the last one closes."""
    first = PostgresEventStore(postgres_dsn, types=types(), schema=pg_schema)
    second = PostgresEventStore(postgres_dsn, types=types(), schema=pg_schema)
    assert first.appended is second.appended
    first.head_position()
    second.head_position()
    eventually(lambda: len(listening(postgres_dsn, pg_schema)) == 1, "one listener")
    first.close()
    seen = second.appended.count
    sql(
        postgres_dsn,
        f'INSERT INTO "{pg_schema}".events (stream_id, version, event_id, type, schema_version, '
        """data, metadata, recorded_at) VALUES ('s', 1, %s, 'Note', 1, '{"text": "x"}', '{}', """
        "'2026-01-01T00:00:00+00:00')",
        (uuid.uuid4().bytes,),
    )
    sql(postgres_dsn, "SELECT pg_notify(%s, '')", (channel(pg_schema),))
    assert second.appended.wait(seen, DEADLINE)
    second.close()
    eventually(lambda: not listening(postgres_dsn, pg_schema), "the listener to stop")


# -- what the store refuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"schema": "1st"}, "schema"),
        ({"schema": "pg_catalog"}, "schema"),
        ({"schema": 'x"; DROP TABLE y; --'}, "schema"),
        ({"table": "busway_schema"}, "table"),
        ({"table": "a" * 64}, "table"),
        ({"table": "a-b"}, "table"),
        ({"page_size": 0}, "page_size"),
        ({"types": [Note]}, "types"),
    ],
)
def test_bad_arguments(postgres_dsn: str, options: dict[str, Any], argument: str) -> None:
    """A schema or table that is not a plain identifier, or a bad page size, is refused at once."""
    arguments: dict[str, Any] = {"types": types(), **options}
    for store in (PostgresEventStore, AsyncPostgresEventStore):
        with pytest.raises(InvalidArgumentError) as info:
            store(postgres_dsn, **arguments)
        assert argument == info.value.argument


@pytest.mark.parametrize("dsn", ["not a dsn", "host='unterminated", 42])
def test_bad_dsns(dsn: Any) -> None:
    """A DSN that is not a connection string, or not a string, is refused before connecting."""
    for store in (PostgresEventStore, AsyncPostgresEventStore):
        with pytest.raises(InvalidArgumentError) as info:
            store(dsn, types=types())
        assert "dsn" in info.value.argument


def test_repr_names_the_server_schema_and_table(postgres_dsn: str, pg_schema: str) -> None:
    """A store's repr says where it is, and whether it is closed; never a password."""
    store = PostgresEventStore(
        postgres_dsn + "?password=secret", types=types(), schema=pg_schema, table="log"
    )
    assert f"schema {pg_schema}, table log" in repr(store)
    store.close()
    assert repr(store).endswith(" closed>")
    assert "secret" not in repr(store)
    assert "table log" in repr(AsyncPostgresEventStore(postgres_dsn, types=types(), table="log"))


def foreign_table(dsn: str, schema: str) -> None:
    sql(dsn, f'CREATE SCHEMA "{schema}"')
    sql(dsn, f'CREATE TABLE "{schema}".events (id INTEGER)')


def test_a_foreign_table_is_refused_and_left_alone(postgres_dsn: str, pg_schema: str) -> None:
    """A table of the store's name that busway did not make is refused, sync and async."""
    foreign_table(postgres_dsn, pg_schema)
    with (
        PostgresEventStore(postgres_dsn, types=types(), schema=pg_schema) as store,
        pytest.raises(StoreFormatError, match="not registered as an event store"),
    ):
        store.head_position()

    async def main() -> None:
        store = AsyncPostgresEventStore(postgres_dsn, types=types(), schema=pg_schema)
        with pytest.raises(StoreFormatError, match="not registered"):
            async with store:
                pass
        with pytest.raises(StoreClosedError):  # a store that failed to open is closed
            await store.head_position()

    asyncio.run(main())
    assert [("id",)] == sql(
        postgres_dsn,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s",
        (pg_schema,),
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ('ALTER TABLE "{s}".events ADD COLUMN extra TEXT', "has columns"),
        ('UPDATE "{s}".busway_schema SET version = 99', "later busway"),
        ("UPDATE \"{s}\".busway_schema SET component = 'sagas'", "holds a busway sagas"),
    ],
)
def test_a_changed_table_is_refused(
    postgres_dsn: str, pg_schema: str, change: str, problem: str
) -> None:
    """A store table with other columns, of a later version or another component is refused."""
    with PostgresEventStore(postgres_dsn, types=types(), schema=pg_schema) as store:
        store.append("s", [Note("kept")])
    sql(postgres_dsn, change.format(s=pg_schema))
    with (
        PostgresEventStore(postgres_dsn, types=types(), schema=pg_schema) as store,
        pytest.raises(StoreFormatError, match=problem),
    ):
        store.read_stream("s")


def test_a_name_the_server_refuses_leaves_as_a_busway_error(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Where the server refuses to make the table, the error says so, sync and async."""
    sql(postgres_dsn, f'CREATE SCHEMA "{pg_schema}"')
    sql(postgres_dsn, f'CREATE TABLE "{pg_schema}".other (id INTEGER)')
    sql(postgres_dsn, f'CREATE INDEX events_event_id ON "{pg_schema}".other (id)')
    with (
        PostgresEventStore(postgres_dsn, types=types(), schema=pg_schema) as store,
        pytest.raises(StoreUnavailableError, match="already exists") as info,
    ):
        store.head_position()
    assert isinstance(info.value.__cause__, psycopg.errors.DuplicateTable)

    async def main() -> None:
        with pytest.raises(StoreUnavailableError, match="already exists"):
            async with AsyncPostgresEventStore(postgres_dsn, types=types(), schema=pg_schema):
                pass

    asyncio.run(main())


def test_a_borrowed_pool_is_left_open(postgres_dsn: str, pg_schema: str) -> None:
    """Closing a store on a pool its caller owns leaves the pool usable."""
    with ConnectionPool(postgres_dsn, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        with PostgresEventStore(pool, types=types(), schema=pg_schema) as store:
            store.append("s", [Note("1")])
        with PostgresEventStore(pool, types=types(), schema=pg_schema) as store:
            assert 1 == store.stream_version("s")
        assert not pool.closed


def test_expected_version_is_checked_under_concurrency(postgres_dsn: str, pg_schema: str) -> None:
    """Of appends that all expect the same version, exactly one lands; the others conflict."""
    with PostgresEventStore(postgres_dsn, types=types(), schema=pg_schema) as store:
        store.append("s", [Note("0")])
        writers = [
            Thread(functools.partial(store.append, "s", [Note(str(n))], expected_version=1))
            for n in range(4)
        ]
        for writer in writers:
            writer.start()
        outcomes: list[object] = []
        for writer in writers:
            try:
                outcomes.append(writer.outcome())
            except ConcurrencyError as exc:
                outcomes.append(exc.actual)
        assert [2, 2, 2, 2] == outcomes
        assert 2 == store.stream_version("s")
