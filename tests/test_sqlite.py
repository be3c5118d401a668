"""Every SQLite store on real files: many processes at once, locks, paths, read-only, full."""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from busway import InvalidArgumentError, StoreLockedError, StoreUnavailableError
from busway.eventstore import EventTypes, SQLiteEventStore
from busway.sagas import SQLiteSagaStore

from ._sqlite_worker import OPEN, READ, WRITE, Tick, hold, open_in_step

KINDS = sorted(OPEN)
BORROWING = [kind for kind in KINDS if kind != "sagas"]  # the saga store takes paths only
SPAWN = multiprocessing.get_context("spawn")
ROOT = Path(__file__).parents[1]


def open_in_step_everywhere(kinds: list[list[str]], paths: list[Path]) -> list[str]:
    """Open a store on each path in one process per entry of *kinds*, all at once."""
    start = SPAWN.Barrier(len(kinds))
    failures = SPAWN.Queue()
    names = [str(path) for path in paths]
    workers = [
        SPAWN.Process(target=open_in_step, args=(each, names, start, failures)) for each in kinds
    ]
    for worker in workers:
        worker.start()
    failed = [failure for _ in workers for failure in failures.get(timeout=120)]
    for worker in workers:
        worker.join(30)
        assert 0 == worker.exitcode
    return failed


@contextmanager
def held(path: Path, *statements: str) -> Iterator[Event]:
    """Hold *path* in another process as *statements* left it, until the event is set."""
    ready, release = SPAWN.Event(), SPAWN.Event()
    holder = SPAWN.Process(target=hold, args=(str(path), list(statements), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        yield release
    finally:
        release.set()
        holder.join(30)
    assert 0 == holder.exitcode


def journal_mode(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


# -- many processes opening one file -------------------------------------------------------


def test_many_processes_open_new_files_at_once(tmp_path: Path) -> None:
    """Eight processes opening event stores on the same new files at once all succeed."""
    paths = [tmp_path / f"{n}.db" for n in range(30)]
    assert [] == open_in_step_everywhere([["events"]] * 8, paths)
    assert {"wal"} == {journal_mode(path) for path in paths}


def test_many_processes_add_a_store_to_an_existing_file_at_once(tmp_path: Path) -> None:
    """Eight processes adding an event store beside a saga store all open it, made once."""
    paths = [tmp_path / f"{n}.db" for n in range(30)]
    for path in paths:
        SQLiteSagaStore(path, synchronous="off").close()
    assert [] == open_in_step_everywhere([["events"]] * 8, paths)
    for path in paths:
        with closing(sqlite3.connect(path)) as conn:
            registered = conn.execute("SELECT table_name FROM busway_schema ORDER BY 1")
            assert [("events",), ("sagas",)] == registered.fetchall()


def test_opening_sees_a_store_made_meanwhile_whole(tmp_path: Path) -> None:
    """An event store made by another connection while one opens is seen whole, not broken."""
    path = tmp_path / "app.db"
    SQLiteSagaStore(path).close()
    made: list[str] = []

    def make_the_store_meanwhile(statement: str) -> None:
        # Between the opening's look at the tables and its look at their registrations.
        if not made and statement.startswith("SELECT component, version FROM busway_schema"):
            SQLiteEventStore(path, types=EventTypes(Tick)).close()
            made.append(statement)

    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.set_trace_callback(make_the_store_meanwhile)
        with SQLiteEventStore(conn, types=EventTypes(Tick)) as store:
            assert 1 == len(made)
            store.append("s-1", [Tick("w", 1)])
            assert 1 == store.stream_version("s-1")


# -- waiting for other connections ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("new", [True, False], ids=["new file", "existing database"])
def test_opening_waits_for_a_writer_of_a_rollback_journal_file(
    tmp_path: Path, kind: str, new: bool
) -> None:
    """A store opens a file that another process is writing (before it is WAL) once it ends.

    A new file is in that state while another process switches it to WAL.
    """
    path = tmp_path / "app.db"
    writes = ["BEGIN IMMEDIATE"]
    if not new:
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE visits (n INTEGER)")
        writes.append("INSERT INTO visits VALUES (1)")
    with held(path, *writes) as release:
        ending = threading.Timer(0.3, release.set)
        ending.start()
        with OPEN[kind](path, timeout=10):
            pass
        ending.join()
    assert "wal" == journal_mode(path)


@pytest.mark.parametrize("kind", KINDS)
def test_opening_gives_up_at_the_timeout(tmp_path: Path, kind: str) -> None:
    """Opening a file another process keeps locked waits the timeout, then names both."""
    path = tmp_path / "app.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE visits (n INTEGER)")
    with held(path, "BEGIN IMMEDIATE", "INSERT INTO visits VALUES (1)"):
        started = time.monotonic()
        with pytest.raises(StoreLockedError) as caught:
            OPEN[kind](path, timeout=0.3)
        waited = time.monotonic() - started
    assert 0.3 <= waited
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert str(path) in str(caught.value)
    assert "timeout of 0.3 s" in str(caught.value)
    assert 0.3 == caught.value.timeout


@pytest.mark.parametrize("kind", KINDS)
def test_a_write_waits_the_timeout_for_another_writer(tmp_path: Path, kind: str) -> None:
    """A write blocked by another process's transaction raises StoreLockedError, then works."""
    path = tmp_path / "app.db"
    with OPEN[kind](path, timeout=0.3) as store:
        with held(path, "BEGIN IMMEDIATE"), pytest.raises(StoreLockedError) as caught:
            WRITE[kind](store, "w")
        assert "timeout of 0.3 s" in str(caught.value)
        assert "database is locked" == str(caught.value.__cause__)
        WRITE[kind](store, "w")
        assert READ[kind](store)


@pytest.mark.parametrize("kind", BORROWING)
def test_a_write_on_a_given_connection_waits_its_busy_timeout(tmp_path: Path, kind: str) -> None:
    """On a connection given, a blocked write waits that connection's busy timeout."""
    path = tmp_path / "app.db"
    OPEN[kind](path).close()
    with closing(sqlite3.connect(path, timeout=0.2, isolation_level=None)) as conn:
        store = OPEN[kind](conn, timeout=30)
        with held(path, "BEGIN IMMEDIATE"), pytest.raises(StoreLockedError) as caught:
            WRITE[kind](store, "w")
        assert caught.value.timeout is None
        assert "busy timeout of the connection given" in str(caught.value)
        WRITE[kind](store, "w")


@pytest.mark.parametrize("kind", BORROWING)
def test_a_store_made_in_the_callers_transaction_goes_with_it(tmp_path: Path, kind: str) -> None:
    """A store opened inside the caller's transaction makes its tables there, undone with it."""
    with closing(sqlite3.connect(tmp_path / "app.db", isolation_level=None)) as conn:
        conn.execute("BEGIN")
        OPEN[kind](conn).close()
        assert conn.in_transaction
        conn.execute("ROLLBACK")
        assert [] == conn.execute("SELECT name FROM sqlite_master").fetchall()


def test_a_borrowed_transaction_that_cannot_wait_says_so(tmp_path: Path) -> None:
    """An append in a caller's read transaction that another process wrote past says why."""
    path = tmp_path / "app.db"
    SQLiteEventStore(path, types=EventTypes(Tick)).close()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        store = OPEN["events"](conn)
        conn.execute("BEGIN")
        assert 0 == READ["events"](store)
        with (
            held(path, "BEGIN IMMEDIATE", "PRAGMA user_version = 1", "COMMIT"),
            pytest.raises(StoreLockedError, match="BEGIN IMMEDIATE"),
        ):
            WRITE["events"](store, "w")
        assert conn.in_transaction  # still the caller's to end
        conn.execute("ROLLBACK")
        WRITE["events"](store, "w")
        assert 1 == READ["events"](store)


# -- paths that are not database files ----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_folder_is_not_a_database_file(tmp_path: Path, kind: str) -> None:
    """A path that is a folder is refused with an error that says so."""
    with pytest.raises(StoreUnavailableError, match="the path is a folder") as caught:
        OPEN[kind](tmp_path)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert str(tmp_path) == caught.value.location.split(" (")[0]


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_in_a_missing_folder(tmp_path: Path, kind: str) -> None:
    """A file in a folder that does not exist is refused, naming the folder."""
    missing = tmp_path / "nowhere"
    with pytest.raises(StoreUnavailableError, match=f"folder {missing} does not exist"):
        OPEN[kind](missing / "app.db")
    assert not missing.exists()


# -- read-only files -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", BORROWING)
def test_a_read_only_connection_reads_but_cannot_write(tmp_path: Path, kind: str) -> None:
    """A store on a read-only connection reads what is there and says it cannot write."""
    path = tmp_path / "app.db"
    with OPEN[kind](path) as store:
        WRITE[kind](store, "w")
    with (
        closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn,
        OPEN[kind](conn) as store,
    ):
        assert READ[kind](store)
        with pytest.raises(StoreUnavailableError, match="busway cannot write to it") as caught:
            WRITE[kind](store, "w")
        assert READ[kind](store)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert "readonly database" in str(caught.value)


@pytest.mark.parametrize("kind", BORROWING)
def test_a_new_store_on_a_read_only_connection(tmp_path: Path, kind: str) -> None:
    """A store that would have to make its tables through a read-only connection says so."""
    path = tmp_path / "app.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE visits (n INTEGER)")
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        with pytest.raises(StoreUnavailableError, match="busway cannot write to it"):
            OPEN[kind](conn)
        assert not conn.in_transaction


def _as_a_user() -> None:
    """Drop root's power to write what file modes forbid from the program about to run."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for capability in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def attempt_as_a_user(kind: str, path: Path) -> dict[str, object]:
    """Open, read and write a store in a process that file modes bind, as a user's do."""
    as_root = os.geteuid() == 0
    if as_root and sys.platform != "linux":
        pytest.skip("only Linux lets root give up overriding file modes")
    done = subprocess.run(
        [sys.executable, "-m", "tests._sqlite_worker", kind, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=_as_a_user if as_root else None,
    )
    assert 0 == done.returncode, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder whose modes are put back after the test, so that it can be removed."""
    folder = tmp_path / "shelf"
    folder.mkdir()
    yield folder
    for path in (folder, *folder.iterdir()):
        path.chmod(0o755)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("kind", KINDS)
def test_a_read_only_file_reads_but_cannot_be_written(read_only: Path, kind: str) -> None:
    """A store file its user may only read (mode 0444) opens, reads, and refuses writes."""
    path = read_only / "app.db"
    with OPEN[kind](path) as store:
        WRITE[kind](store, "w")
    path.chmod(0o444)
    done = attempt_as_a_user(kind, path)
    assert "StoreUnavailableError" == done["error"]
    assert done["read"]
    assert "wrote" not in done
    assert "busway cannot write to it: the file, or its folder" in str(done["message"])


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_store_in_a_read_only_folder_names_the_folder(read_only: Path) -> None:
    """A WAL store in a folder its user may not write says SQLite cannot write beside it."""
    path = read_only / "app.db"
    SQLiteEventStore(path, types=EventTypes(Tick)).close()
    read_only.chmod(0o555)
    done = attempt_as_a_user("events", path)
    assert "StoreUnavailableError" == done["error"]
    assert "its folder is read-only" in str(done["message"])
    assert "not an SQLite database" not in str(done["message"])


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_new_file_in_a_read_only_folder(read_only: Path) -> None:
    """A store cannot make its file in a folder its user may not write, and says so."""
    read_only.chmod(0o555)
    done = attempt_as_a_user("events", read_only / "app.db")
    assert "StoreUnavailableError" == done["error"]
    assert "cannot open or create the file" in str(done["message"])
    assert [] == list(read_only.iterdir())


# -- a full disk, a damaged file -----------------------------------------------------------


@pytest.mark.parametrize("kind", BORROWING)
def test_a_full_disk_in_the_callers_transaction(tmp_path: Path, kind: str) -> None:
    """A write that fills the disk in the caller's transaction says so; SQLite ended it."""
    with closing(sqlite3.connect(tmp_path / "app.db", isolation_level=None)) as conn:
        conn.execute("CREATE TABLE visits (n INTEGER)")
        conn.execute("INSERT INTO visits VALUES (0)")
        store = OPEN[kind](conn)
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's disk is full from here
        conn.execute("BEGIN")
        conn.execute("UPDATE visits SET n = 1")
        with pytest.raises(StoreUnavailableError, match="database or disk is full") as caught:
            WRITE[kind](store, "w" * 100_000)
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert "database or disk is full" == str(caught.value.__cause__)
        assert "conn.in_transaction" in str(caught.value)
        assert not conn.in_transaction  # SQLite rolled back all of it, the update too
        assert [(0,)] == conn.execute("SELECT n FROM visits").fetchall()
        conn.execute(f"PRAGMA max_page_count = {2 * pages + 100}")
        WRITE[kind](store, "w" * 100_000)
        assert READ[kind](store) is not None


@pytest.mark.parametrize("kind", BORROWING)
def test_a_connection_closed_under_the_store(tmp_path: Path, kind: str) -> None:
    """A store whose given connection was closed by its owner says so, naming the cause."""
    conn = sqlite3.connect(tmp_path / "app.db")
    store = OPEN[kind](conn)
    conn.close()
    with pytest.raises(StoreUnavailableError, match="closed database") as caught:
        READ[kind](store)
    assert isinstance(caught.value.__cause__, sqlite3.ProgrammingError)
    assert "the connection given" in caught.value.location


def _damage_tables(path: Path) -> None:
    """Overwrite every page but the schema's with noise, as a failing disk might."""
    with closing(sqlite3.connect(path)) as conn:
        (size,) = conn.execute("PRAGMA page_size").fetchone()
        (count,) = conn.execute("PRAGMA page_count").fetchone()
        kept = {1} | {
            page
            for (page,) in conn.execute(
                "SELECT rootpage FROM sqlite_master WHERE tbl_name = 'busway_schema'"
            )
        }
    with path.open("r+b") as file:
        for page in sorted(set(range(1, count + 1)) - kept):
            file.seek((page - 1) * size)
            file.write(b"\xee" * size)


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_file_says_so(tmp_path: Path, kind: str) -> None:
    """Reading a store whose pages are damaged raises StoreUnavailableError naming the file."""
    path = tmp_path / "app.db"
    with OPEN[kind](path) as store:
        WRITE[kind](store, "w")
    _damage_tables(path)
    with (
        OPEN[kind](path) as store,
        pytest.raises(StoreUnavailableError, match="restore it from a backup") as caught,
    ):
        READ[kind](store)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("timeout", [-1, float("nan"), float("inf"), 3e6, "10", True])
def test_a_timeout_that_cannot_be_waited_is_refused(
    tmp_path: Path, kind: str, timeout: object
) -> None:
    """A timeout SQLite cannot wait is refused before the file is touched."""
    with pytest.raises(InvalidArgumentError, match="timeout must be a number of seconds"):
        OPEN[kind](tmp_path / "app.db", timeout=timeout)
    assert not (tmp_path / "app.db").exists()
