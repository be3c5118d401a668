"""The installed ``busway`` command, run in a subprocess against real SQLite files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from busway.eventstore import SQLiteEventStore

from .app import TYPES, Deposited

_ROOT = Path(__file__).parent.parent.parent  # where tests.cli.app imports from
_COMMAND = shutil.which("busway", path=os.path.dirname(sys.executable)) or "busway"


def busway(
    *args: str, cwd: Path = _ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed command as a script would, its output piped; return what it printed.

    The terminal size pytest exports is left out, as a pipe has none.
    """
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "COLUMNS"}
    return subprocess.run(
        [_COMMAND, *args], check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def as_json(*args: str) -> object:
    """Run the command with --json and return what it printed, parsed."""
    done = busway(*args, "--json")
    assert 0 == done.returncode, done.stderr
    return json.loads(done.stdout)


def test_info_counts_events_and_streams(db: Path) -> None:
    """info gives the schema version, the number of events and streams, and the head."""
    found = as_json("info", str(db))
    assert isinstance(found, dict)
    assert (3, 2, 3, 1) == (
        found["events"],
        found["streams"],
        found["head_position"],
        found["schema_version"],
    )
    assert found["size_bytes"] > 0
    table = busway("info", str(db))
    assert "head position" in table.stdout


def test_streams_come_a_page_at_a_time(db: Path) -> None:
    """streams --limit pages by stream id and says where the next page starts."""
    first = as_json("streams", str(db), "--limit", "1")
    assert {"streams": [{"stream_id": "acct-1", "version": 1}], "next_after": "acct-1"} == first
    rest = as_json("streams", str(db), "--after", "acct-1")
    assert {"streams": [{"stream_id": "acct-2", "version": 2}], "next_after": None} == rest
    shown = busway("streams", str(db), "--limit", "1")
    assert "acct-1" in shown.stdout
    assert "--after 'acct-1'" in shown.stderr


def test_show_prints_raw_payloads_and_metadata_without_the_classes(db: Path) -> None:
    """show reads events whose classes it does not know, with payload and metadata as JSON."""
    found = as_json("show", str(db), "acct-1")
    assert isinstance(found, dict)
    [event] = found["events"]
    assert {"account": "acct-1", "amount": 5} == event["data"]
    assert "ann" == event["metadata"]["user"]
    assert ("Deposited", 1, 1) == (event["type"], event["version"], event["position"])
    typed = as_json("show", str(db), "acct-2", "--types", "tests.cli.app:TYPES", "--limit", "1")
    assert isinstance(typed, dict)
    assert [7] == [e["data"]["amount"] for e in typed["events"]]
    shown = busway("show", str(db), "acct-1")
    assert '"amount": 5' in shown.stdout
    assert "no events" in busway("show", str(db), "nobody").stderr


def test_subscriptions_show_position_lag_holder_and_parked(db: Path) -> None:
    """subscriptions lists each checkpoint with its lag, lease holder and parked count."""
    with SQLiteEventStore(db, types=TYPES) as store:
        store.append("acct-3", [Deposited("acct-3", 1)])
    found = as_json("subscriptions", str(db))
    assert isinstance(found, dict)
    [row] = found["subscriptions"]
    assert ("totals", 3, 4, 1, 1) == (
        row["subscription"],
        row["position"],
        row["head"],
        row["lag"],
        row["parked"],
    )
    assert row["holder"] is not None
    assert "totals" in busway("subscriptions", str(db)).stdout


def test_parked_list_and_replay(db: Path) -> None:
    """parked list names the event set aside; replay with fixed handlers clears it."""
    found = as_json("parked", "list", str(db))
    assert isinstance(found, dict)
    [parked] = found["parked"]
    assert ("totals", 3, "acct-2") == (
        parked["subscription"],
        parked["position"],
        parked["stream_id"],
    )
    assert "ValueError" in parked["error"]
    assert {"parked": []} == as_json("parked", "list", str(db), "--subscription", "other")
    still = busway("parked", "replay", str(db), "tests.cli.app:Totals", "--json")
    assert (1, 0) == (still.returncode, json.loads(still.stdout)["replayed"])
    done = as_json("parked", "replay", str(db), "tests.cli.app:forgiving")
    assert {"projection": "totals", "replayed": 1, "still_parked": 0} == done
    assert "no parked" in busway("parked", "list", str(db)).stderr


def test_rebuild_replays_every_event_with_a_progress_bar(db: Path) -> None:
    """rebuild resets the projection and reads every event again, showing its progress."""
    done = busway("rebuild", str(db), "tests.cli.app:forgiving")
    assert 0 == done.returncode, done.stderr
    assert "rebuilding totals" in done.stderr
    assert as_json("rebuild", str(db), "tests.cli.app:forgiving") == {
        "projection": "totals",
        "read": 3,
        "position": 3,
    }


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_tail_follows_new_events_of_a_type_and_stops_on_ctrl_c(db: Path, stop: int) -> None:
    """tail prints events appended after it started, filtered by type; Ctrl-C ends it with 0."""
    with subprocess.Popen(
        [_COMMAND, "tail", str(db), "--json", "--type", "Deposited", "--from-position", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=_ROOT,
    ) as tail:
        assert tail.stdout is not None
        assert tail.stderr is not None
        try:
            with SQLiteEventStore(db, types=TYPES) as store:
                store.append("acct-9", [Deposited("acct-9", 42)])  # position 4
            event = json.loads(tail.stdout.readline())  # waits until tail prints it
            assert ("acct-9", 42) == (event["stream_id"], event["data"]["amount"])
            tail.send_signal(stop)
            assert 0 == tail.wait(timeout=30)
            assert "Traceback" not in tail.stderr.read()
        finally:
            if tail.poll() is None:
                tail.kill()


def test_tail_stops_after_a_limit(db: Path) -> None:
    """tail --from-position --limit prints that many events and exits, as a script wants."""
    done = busway("tail", str(db), "--from-position", "1", "--limit", "2")
    assert 0 == done.returncode, done.stderr
    assert ["#1", "#2"] == [
        line.split()[0] for line in done.stdout.splitlines() if line.startswith("#")
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello, not a database", "not an SQLite database"),
        (None, "holds no busway event store"),
    ],
)
def test_a_file_that_is_not_a_store_is_refused_and_left_alone(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    """A file without a busway store gets exit code 3 and a message, and stays byte for byte."""
    path = tmp_path / "other.db"
    if content is None:
        import sqlite3

        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE notes (x)")
        conn.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    for command in ("info", "streams", "rebuild"):
        args = [command, str(path)] + (["tests.cli.app:Totals"] if command == "rebuild" else [])
        done = busway(*args)
        assert 3 == done.returncode
        assert message in done.stderr
    assert before == path.read_bytes()
    assert [path.name] == [p.name for p in tmp_path.iterdir()]


def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    """A path with nothing there gets exit code 3, and no file appears."""
    done = busway("info", str(tmp_path / "nothing.db"))
    assert 3 == done.returncode
    assert "does not exist" in done.stderr
    assert [] == list(tmp_path.iterdir())
    assert "is not a file" in busway("info", str(tmp_path)).stderr


def test_a_file_without_subscriptions_has_none(tmp_path: Path) -> None:
    """subscriptions and parked list on a store nothing follows list nothing, and add no table."""
    path = tmp_path / "events.db"
    with SQLiteEventStore(path, types=TYPES) as store:
        store.append("a", [Deposited("a", 1)])
    assert {"subscriptions": []} == as_json("subscriptions", str(path))
    assert "no subscriptions" in busway("subscriptions", str(path)).stderr
    assert {"parked": []} == as_json("parked", "list", str(path))
    rebuilt = as_json("rebuild", str(path), "tests.cli.app:forgiving")
    assert {"projection": "totals", "read": 1, "position": 1} == rebuilt


def test_a_projection_is_imported_from_the_working_directory(db: Path, tmp_path: Path) -> None:
    """A module in the directory the command runs in can be named, as with python -m."""
    (tmp_path / "my_view.py").write_text("from tests.cli.app import forgiving as make\n")
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    done = busway("rebuild", str(db), "my_view:make", "--json", cwd=tmp_path, env=env)
    assert 0 == done.returncode, done.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["info"], 2, "target"),
        (["show", "x.db", "s", "--limit", "0"], 2, "1 or more"),
        (["streams", "x.db", "--limit", "ten"], 2, "1 or more"),
        (["rebuild", "{db}", "tests.cli.app:Interrupted"], 130, "interrupted"),
        (["rebuild", "{db}", "no_colon"], 2, "MODULE:NAME"),
        (["rebuild", "{db}", "tests.cli.nowhere:X"], 2, "cannot load"),
        (["rebuild", "{db}", "tests.cli.app:TYPES"], 2, "not a Projection"),
        (["show", "{db}", "s", "--types", "tests.cli.app:Totals"], 2, "not an EventTypes"),
        (
            ["parked", "replay", "{db}", "tests.cli.app:Totals", "--partitions", "2"],
            1,
            "partitions",
        ),
        (["rebuild", "{db}", "tests.cli.app:Totals"], 1, "negative deposit"),
    ],
)
def test_usage_errors_and_refusals_have_their_exit_codes(
    db: Path, args: list[str], code: int, message: str
) -> None:
    """A wrong command line exits with 2, a refusal by busway with 1, each with a message."""
    done = busway(*(a.format(db=db) for a in args))
    assert code == done.returncode
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_without_the_extra_the_command_names_it(tmp_path: Path) -> None:
    """Without rich installed, the command says which extra to install and exits with 4."""
    (tmp_path / "rich").mkdir()
    (tmp_path / "rich" / "__init__.py").write_text("raise ImportError('no rich here')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = busway("info", "x.db", env=env)
    assert 4 == done.returncode
    assert 'pip install "busway[cli]"' in done.stderr


def test_python_dash_m_busway_runs_the_command(db: Path) -> None:
    """``python -m busway`` is the same command."""
    done = subprocess.run(
        [sys.executable, "-m", "busway", "info", str(db), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert 3 == json.loads(done.stdout)["events"]
