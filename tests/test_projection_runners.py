"""Projection runners with other workers around: compare-and-set, leases, partitions, failures.

Every test here that takes ``make_runner`` runs against both runners (tests/_runners.py),
on real SQLite files: the event store, the read model with its checkpoints, and the leases
each in a file of their own. The read model is :class:`Ledger`, whose primary key turns a
second application of an event into an error, so "each event once" is checked by SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest

from busway.errors import SubscriptionError
from busway.eventstore import EventStore, RecordedEvent, SQLiteEventStore
from busway.projections import ProjectionRunner, SQLiteCheckpointStore
from busway.subscriptions import Park, Retry, SQLiteLeaseStore
from tests._projection_worker import LEASE, TYPES, Happened, Ledger, Pause, follow
from tests._runners import Blocking, LoopThread, MakeRunner, file_store

AT_ONCE = 1.0  # seconds: far below every poll interval and lease here, far above scheduling


@pytest.fixture
def events_path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def read_path(tmp_path: Path) -> Path:
    return tmp_path / "read.db"


@pytest.fixture
def store(flavour: str, loop: LoopThread, events_path: Path) -> Iterator[EventStore]:
    with file_store(flavour, loop, events_path, TYPES) as s:
        yield s


@pytest.fixture
def checkpoints(read_path: Path) -> Iterator[Callable[[], SQLiteCheckpointStore]]:
    """Open another checkpoint store on the read model's file, as another worker would."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(SQLiteCheckpointStore(read_path))


@pytest.fixture
def leases(tmp_path: Path) -> Iterator[SQLiteLeaseStore]:
    with SQLiteLeaseStore(tmp_path / "leases.db") as store:
        yield store


def append(store: EventStore, count: int, *, streams: int = 3) -> None:
    """Append *count* events, one per append, round the streams."""
    head = store.head_position()
    for n in range(head + 1, head + count + 1):
        store.append(f"s-{n % streams}", [Happened(n)])


def rows(read_path: Path) -> list[tuple[int, str, int, str]]:
    """Return the ledger's rows, (position, stream, version, worker), in commit order."""
    with contextlib.closing(sqlite3.connect(read_path)) as conn:
        found = conn.execute("SELECT position, stream, version, worker FROM ledger ORDER BY seq")
        return [(p, s, v, w) for p, s, v, w in found]


def positions(read_path: Path) -> list[int]:
    return sorted(p for p, _, _, _ in rows(read_path))


def workers(read_path: Path) -> dict[int, str]:
    return {p: w for p, _, _, w in rows(read_path)}


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until *check* passes (for what no runner call waits on, such as a lease)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


# -- compare-and-set -------------------------------------------------------------------------


def test_runners_racing_on_one_read_model_apply_each_event_once(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    read_path: Path,
) -> None:
    """Two runners in threads race batch for batch; the loser of each reads again."""
    runners = [
        make_runner(store, Ledger(w), checkpoints=checkpoints(), batch_size=3, poll_interval=0.01)
        for w in "ab"
    ]
    append(store, 30)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda runner: runner.run_until_caught_up(), runners))
    with runners[0].running(), runners[1].running():
        append(store, 30)
        for runner in runners:
            runner.wait_for(60)
    assert list(range(1, 61)) == positions(read_path)
    assert [60, 60] == [r.position for r in runners]


# -- leases ----------------------------------------------------------------------------------


def test_a_standby_reads_nothing_while_the_holder_runs(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    leases: SQLiteLeaseStore,
    read_path: Path,
) -> None:
    """Only the lease holder handles events; the standby's wait_for still sees them."""
    options: dict[str, Any] = {"leases": leases, "lease": 2.0, "poll_interval": 0.02}
    holder = make_runner(store, Ledger("a"), checkpoints=checkpoints(), owner="a", **options)
    standby = make_runner(store, Ledger("b"), checkpoints=checkpoints(), owner="b", **options)
    append(store, 3)
    with holder.running():
        holder.wait_for(3)
        with standby.running():
            append(store, 3)
            standby.wait_for(6)
    assert {"a"} == set(workers(read_path).values())
    (status,) = standby.status()
    assert status.holder is not None
    assert ("a", 1, 6, 0) == (status.holder.owner, status.holder.token, status.position, status.lag)


def test_a_standby_takes_over_once_the_holder_stops_renewing(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    leases: SQLiteLeaseStore,
    read_path: Path,
) -> None:
    """A holder that dies keeps its lease until it runs out; then the standby goes on."""
    lease = 0.5
    dead = make_runner(store, Ledger("a"), checkpoints=checkpoints(), leases=leases, lease=lease)
    append(store, 2)
    started = time.monotonic()
    dead.run_until_caught_up()  # takes the lease, and never renews it: as if it died
    standby = make_runner(
        store, Ledger("b"), checkpoints=checkpoints(), leases=leases, lease=lease, owner="b"
    )
    with standby.running():
        append(store, 1)
        standby.wait_for(3)
        waited = time.monotonic() - started
    assert lease <= waited < lease + AT_ONCE
    assert {1: "a", 2: "a", 3: "b"} == workers(read_path)
    (status,) = standby.status()
    assert status.holder is not None
    assert ("b", 2) == (status.holder.owner, status.holder.token)


def test_stop_releases_the_lease_and_a_standby_takes_over_at_once(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    leases: SQLiteLeaseStore,
    read_path: Path,
) -> None:
    """With the lease given back, the standby need not wait for it to run out."""
    options: dict[str, Any] = {"leases": leases, "lease": 5.0, "poll_interval": 0.02}
    holder = make_runner(store, Ledger("a"), checkpoints=checkpoints(), owner="a", **options)
    standby = make_runner(store, Ledger("b"), checkpoints=checkpoints(), owner="b", **options)
    append(store, 1)
    holder.start()
    holder.wait_for(1)
    with standby.running():
        holder.stop()
        started = time.monotonic()
        append(store, 1)
        standby.wait_for(2)
        assert time.monotonic() - started < AT_ONCE
    assert {1: "a", 2: "b"} == workers(read_path)


def test_a_runner_paused_past_its_lease_hands_over_without_applying_an_event_twice(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    leases: SQLiteLeaseStore,
    read_path: Path,
) -> None:
    """A batch that outlives its lease stops after the event in progress; the new holder goes on.

    The new holder takes the lease, then waits for the paused batch's transaction to fence
    the checkpoint. The paused runner, its renewal due, commits what it did and stops; it
    finds its lease gone and stands by, and the new holder starts after it.
    """
    pause = Pause(at=2)
    options: dict[str, Any] = {"leases": leases, "lease": 0.3, "poll_interval": 0.02}
    slow = make_runner(store, Ledger("a", pause=pause), checkpoints=checkpoints(), **options)
    other = make_runner(store, Ledger("b"), checkpoints=checkpoints(), owner="b", **options)
    append(store, 3)
    with slow.running():
        assert pause.reached.wait(10)
        with other.running():
            until(lambda: getattr(leases.holder("ledger"), "owner", None) == "b")
            pause.go.set()
            append(store, 2)
            other.wait_for(5)
            slow.wait_for(5)
    assert {1: "a", 2: "a", 3: "b", 4: "b", 5: "b"} == workers(read_path)
    assert (None, None) == (slow.error, other.error)


class Held:
    """An event store whose next read is held back until the test lets it return.

    The page is read when asked for; only handing it over waits, as a worker would that
    stalled between reading a batch and handling it.
    """

    def __init__(self, store: object) -> None:
        self.store = store
        self.armed = True
        self.reading = threading.Event()
        self.go = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def _hold(self) -> bool:
        if not self.armed:
            return False
        self.armed = False
        self.reading.set()
        return self.go.wait(10)

    def read_all(self, **options: Any) -> Iterable[RecordedEvent] | AsyncIterator[RecordedEvent]:
        found = cast(Any, self.store).read_all(**options)
        if hasattr(found, "__aiter__"):
            return self._async(found)
        page = list(found)
        self._hold()
        return page

    async def _async(self, found: AsyncIterator[RecordedEvent]) -> AsyncIterator[RecordedEvent]:
        page = [r async for r in found]
        await asyncio.to_thread(self._hold)
        for recorded in page:
            yield recorded


def test_a_fenced_runners_late_commit_keeps_nothing(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    leases: SQLiteLeaseStore,
    read_path: Path,
) -> None:
    """A runner stalled past its lease between reading and handling a batch writes nothing.

    Its commit carries the old lease's fencing token, which the checkpoint refuses once the
    new holder has written: its handlers do not even run, and it stands by.
    """
    held = Held(store.target if isinstance(store, Blocking) else store)
    stalled_ledger = Ledger("a")
    options: dict[str, Any] = {"leases": leases, "lease": 0.3}
    stalled = make_runner(
        cast(EventStore, held), stalled_ledger, checkpoints=checkpoints(), owner="a", **options
    )
    other = make_runner(store, Ledger("b"), checkpoints=checkpoints(), owner="b", **options)
    append(store, 3)
    read: list[int] = []
    thread = threading.Thread(target=lambda: read.append(stalled.run_once()))
    thread.start()
    assert held.reading.wait(10)
    time.sleep(0.4)  # the stalled runner's lease runs out
    assert 3 == other.run_until_caught_up()
    held.go.set()
    thread.join(10)
    assert ([0], []) == (read, stalled_ledger.calls)
    assert {1: "b", 2: "b", 3: "b"} == workers(read_path)
    assert 0 == stalled.run_once()  # nothing is left for it


def test_a_runner_without_leases_refuses_checkpoints_that_leases_fenced(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    leases: SQLiteLeaseStore,
    read_path: Path,
) -> None:
    """Leaving leases= out after running with them is a mistake that is said, not a silent stop."""
    append(store, 2)
    make_runner(store, Ledger("a"), checkpoints=checkpoints(), leases=leases).run_until_caught_up()
    append(store, 1)
    bare = make_runner(store, Ledger("b"), checkpoints=checkpoints())
    with pytest.raises(SubscriptionError, match=r"token 1.*leases="):
        bare.run_once()
    assert [1, 2] == positions(read_path)


# -- partitions ------------------------------------------------------------------------------


def test_two_processes_share_four_partitions_and_handle_each_event_once(tmp_path: Path) -> None:
    """A sync and an async runner, each in a process, split four partitions between them.

    Every event is handled once, each stream's events in version order, by both processes.
    """
    paths = events, read, lease_path = tuple(
        str(tmp_path / f) for f in ("events.db", "read.db", "leases.db")
    )
    with SQLiteEventStore(events, types=TYPES), SQLiteCheckpointStore(read):
        pass  # the files and their tables, made before the workers race to
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    ready = {kind: spawn.Event() for kind in ("sync", "async")}
    processes = [
        spawn.Process(target=follow, args=(kind, paths, ready[kind], stop)) for kind in ready
    ]
    for process in processes:
        process.start()
    try:
        for flag in ready.values():
            assert flag.wait(60)
        with SQLiteLeaseStore(lease_path) as leases:

            def shared() -> bool:
                now = time.time()
                held = [
                    lease
                    for lease in leases.leases("ledger[")
                    if lease.name.endswith("/4]") and lease.expires_at.timestamp() > now
                ]
                return len(held) == 4 and 2 == len({lease.owner for lease in held})

            until(shared, timeout=20 * LEASE)
        with SQLiteEventStore(events, types=TYPES) as store:
            append(store, 120, streams=12)
        until(lambda: len(rows(Path(read))) >= 120, timeout=30)
    finally:
        stop.set()
        for process in processes:
            process.join(30)
    assert [0, 0] == [p.exitcode for p in processes]
    found = rows(Path(read))
    assert list(range(1, 121)) == sorted(p for p, _, _, _ in found)
    by_stream: dict[str, list[int]] = {}
    for _, stream, version, _ in found:
        by_stream.setdefault(stream, []).append(version)
    assert all(versions == list(range(1, 11)) for versions in by_stream.values())
    assert {"sync-worker", "async-worker"} == {w for _, _, _, w in found}


def test_changing_the_number_of_partitions_is_refused_until_a_rebuild(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    read_path: Path,
) -> None:
    """Checkpoints of another layout would replay every event: the runner refuses to go on.

    A rebuild with the new layout starts over and sets the old checkpoints back to 0, after
    which the old layout is the one refused.
    """
    append(store, 4)
    make_runner(store, Ledger("a"), checkpoints=checkpoints()).run_until_caught_up()
    split = make_runner(store, Ledger("a"), checkpoints=checkpoints(), partitions=2)
    with pytest.raises(SubscriptionError, match=r"'ledger'.*another number of partitions"):
        split.run_once()
    with pytest.raises(SubscriptionError, match="another number of partitions"):
        split.start()
    assert not split.is_running
    assert 8 == split.rebuild()  # each of the two partitions reads every event
    assert ([1, 2, 3, 4], 0) == (positions(read_path), checkpoints().load("ledger"))
    append(store, 1)
    assert 2 == split.run_until_caught_up()
    with pytest.raises(SubscriptionError, match=r"'ledger\[0/2\]'"):
        make_runner(store, Ledger("a"), checkpoints=checkpoints()).run_once()


def test_rebuild_refuses_while_another_worker_holds_a_partition(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    leases: SQLiteLeaseStore,
    read_path: Path,
) -> None:
    """With leases, a rebuild takes every partition first; one held elsewhere stops it."""
    append(store, 4)
    options: dict[str, Any] = {"leases": leases, "partitions": 2}
    make_runner(store, Ledger("b"), checkpoints=checkpoints(), owner="b", **options).run_once()
    mine = make_runner(store, Ledger("a"), checkpoints=checkpoints(), owner="a", **options)
    with pytest.raises(SubscriptionError, match=r"held by worker 'b': stop the other workers"):
        mine.rebuild()
    assert [1, 2, 3, 4] == positions(read_path)  # untouched


# -- failure policies ------------------------------------------------------------------------


def test_retry_waits_by_the_backoff_then_succeeds(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    read_path: Path,
) -> None:
    """Two failures, two waits of the backoff's length, then the event is handled once.

    The event before it in the first batch is handled twice, once in the attempt that the
    failure undid; the read model has each event once.
    """
    ledger = Ledger("a", failures={2: 2})
    retry = Retry(attempts=3, backoff=lambda n: 0.1 * n)
    runner = make_runner(store, ledger, checkpoints=checkpoints(), on_error=retry)
    append(store, 3)
    started = time.monotonic()
    assert 3 <= runner.run_until_caught_up()
    assert 0.3 <= time.monotonic() - started < 0.3 + AT_ONCE
    calls = [1, 2, 1, 2, 2, 3]
    assert (calls, [1, 2, 3], []) == (ledger.calls, positions(read_path), runner.parked())


def parked_rows(read_path: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(read_path)) as conn:
        return conn.execute(
            "SELECT subscription, position, stream_id, version, type, error, attempts "
            "FROM projection_checkpoints_parked ORDER BY position"
        ).fetchall()


def test_retry_then_park_sets_the_event_aside_in_the_checkpoint_database(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    read_path: Path,
) -> None:
    """After the last retry the event is parked with what failed, and the runner goes on."""
    ledger = Ledger("a", failures={2: -1})
    retry = Retry(attempts=2, backoff=lambda n: 0.01, then=Park())
    runner = make_runner(store, ledger, checkpoints=checkpoints(), on_error=retry)
    append(store, 4)
    runner.run_until_caught_up()
    assert ([1, 3, 4], 4, 0) == (positions(read_path), runner.position, runner.lag())
    assert [("ledger", 2, "s-2", 1, "Happened", "ValueError: cannot take 2", 3)] == parked_rows(
        read_path
    )
    (parked,) = runner.parked()
    recorded = next(iter(store.read_all(from_position=2, limit=1)))
    assert (recorded.event_id, 3) == (parked.event_id, parked.attempts)


def test_a_parked_event_is_replayed_and_survives_reopening(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    read_path: Path,
) -> None:
    """Park() sets the first failure aside; replays fail until fixed, then unpark it once."""
    ledger = Ledger("a", failures={2: -1})
    runner = make_runner(store, ledger, checkpoints=checkpoints(), on_error=Park())
    append(store, 3)
    runner.run_until_caught_up()
    assert [("ledger", 2, "s-2", 1, "Happened", "ValueError: cannot take 2", 1)] == parked_rows(
        read_path
    )
    assert 0 == runner.replay_parked()  # still failing: still parked
    assert 0 == runner.replay_parked(2)
    reopened = make_runner(store, Ledger("b"), checkpoints=checkpoints(), on_error=Park())
    assert [2] == [p.position for p in reopened.parked()]
    assert 1 == reopened.replay_parked(2)
    assert ([], [], {1: "a", 3: "a", 2: "b"}) == (
        reopened.parked(),
        parked_rows(read_path),
        workers(read_path),
    )


def test_a_rebuild_clears_parked_events_so_that_none_is_applied_twice(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    read_path: Path,
) -> None:
    """A rebuild handles every event again, parked ones too: nothing is left to replay."""
    ledger = Ledger("a", failures={2: 1})
    runner = make_runner(store, ledger, checkpoints=checkpoints(), on_error=Park())
    append(store, 3)
    runner.run_until_caught_up()
    assert [2] == [p.position for p in runner.parked()]
    assert 3 == runner.rebuild()  # the handler passes now
    assert ([], 0, [1, 2, 3]) == (runner.parked(), runner.replay_parked(), positions(read_path))


def test_stop_cuts_a_retry_backoff_short(
    make_runner: MakeRunner, store: EventStore, checkpoints: Callable[[], SQLiteCheckpointStore]
) -> None:
    """A runner waiting to try an event again stops at once, and keeps what came before."""
    ledger = Ledger("a", failures={2: -1})
    retry = Retry(attempts=5, backoff=lambda n: 30.0)
    runner = make_runner(store, ledger, checkpoints=checkpoints(), on_error=retry)
    append(store, 3)
    runner.start()
    until(lambda: 2 in ledger.calls)
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < AT_ONCE
    assert (False, None, 1) == (runner.is_running, runner.error, runner.position)


# -- status ----------------------------------------------------------------------------------


def test_status_shows_each_partitions_position_head_holder_and_parked_events(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    leases: SQLiteLeaseStore,
) -> None:
    """One entry per partition, from before the first batch to after a parking."""
    append(store, 6)
    runner = make_runner(
        store,
        Ledger("a", failures={4: -1}),
        checkpoints=checkpoints(),
        leases=leases,
        partitions=2,
        owner="a",
        on_error=Park(),
    )
    before = runner.status()
    assert [("ledger[0/2]", 0, 2), ("ledger[1/2]", 1, 2)] == [
        (s.key, s.partition, s.partitions) for s in before
    ]
    assert all((s.subscription, s.position, s.head, s.lag) == ("ledger", 0, 6, 6) for s in before)
    assert [None, None] == [s.holder for s in before]
    runner.run_until_caught_up()
    after = runner.status()
    assert all((s.position, s.head, s.lag) == (6, 6, 0) for s in after)
    assert all(s.holder is not None and (s.holder.owner, s.holder.token) == ("a", 1) for s in after)
    parked = [p for s in after for p in s.parked]
    assert [4] == [p.position for p in parked]
    (owning,) = (s for s in after if s.parked)
    assert parked[0].subscription == owning.key


# -- wake-ups --------------------------------------------------------------------------------


def test_a_running_runner_wakes_at_once_on_an_append_in_this_process(
    make_runner: MakeRunner,
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    events_path: Path,
) -> None:
    """Its poll interval is 30 s, yet an append here is handled at once, from any store object."""
    runner = make_runner(store, Ledger("a"), checkpoints=checkpoints(), poll_interval=30)
    with runner.running(), SQLiteEventStore(events_path, types=TYPES) as other:
        time.sleep(0.05)  # caught up on nothing: asleep
        for appender, position in ((store, 1), (other, 2)):
            started = time.monotonic()
            append(appender, 1)
            runner.wait_for(position)
            assert time.monotonic() - started < AT_ONCE


def test_wait_for_wakes_at_once_on_an_append_without_polling(
    make_runner: MakeRunner, store: EventStore, checkpoints: Callable[[], SQLiteCheckpointStore]
) -> None:
    """A runner that is not running catches up in wait_for, and sleeps until the append."""
    runner = make_runner(store, Ledger("a"), checkpoints=checkpoints(), poll_interval=30)
    timer = threading.Timer(0.2, append, (store, 1))
    started = time.monotonic()
    timer.start()
    runner.wait_for(1)
    timer.join()
    assert time.monotonic() - started < AT_ONCE


def test_wait_for_async_of_the_sync_runner_wakes_at_once_and_sees_the_holders_progress(
    store: EventStore,
    checkpoints: Callable[[], SQLiteCheckpointStore],
    leases: SQLiteLeaseStore,
) -> None:
    """A standby on a thread follows the lease holder's checkpoint in wait_for_async."""
    options: dict[str, Any] = {"leases": leases, "lease": 0.6, "poll_interval": 30}
    holder = ProjectionRunner(store, Ledger("a"), checkpoints=checkpoints(), owner="a", **options)
    standby = ProjectionRunner(store, Ledger("b"), checkpoints=checkpoints(), owner="b", **options)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, append, store, 1)
        started = time.monotonic()
        await standby.wait_for_async(1, timeout=10)
        return time.monotonic() - started

    with holder.running():
        until(lambda: leases.holder("ledger") is not None)
        with standby.running():
            assert asyncio.run(main()) < AT_ONCE
