"""The installed ``busway`` command on saga subscriptions, in SQLite files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from busway import CommandBus
from busway.eventstore import SQLiteEventStore
from busway.sagas import SagaManager, SQLiteSagaStore
from busway.subscriptions import Park, SQLiteLeaseStore

from .app import LENIENT, NOTES, TYPES, Deposited, Notifier, Notify, commands
from .test_command import as_json, busway

SAGAS = ("--saga", "tests.cli.app:Notifier")
COMMANDS = "tests.cli.app:commands"


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the application's command handlers write each command they get to."""
    path = tmp_path / "notes.txt"
    path.touch()
    monkeypatch.setenv(NOTES, str(path))  # here and in the command's processes
    return path


@pytest.fixture
def saga_db(db: Path, notes: Path) -> Path:
    """The projection's store, a negative first deposit after, that a saga manager parked."""
    with SQLiteEventStore(db, types=TYPES) as store:
        store.append("acct-3", [Deposited("acct-3", -4)])  # position 4
    with (
        SQLiteEventStore(db, types=TYPES) as store,
        SQLiteSagaStore(db) as sagas,
        SQLiteLeaseStore(db) as leases,
    ):
        manager = SagaManager(Notifier, store=sagas, commands=commands(), types=TYPES)
        runner = manager.background(
            events=store, leases=leases, on_error=Park(), owner="worker-1", interval=0.05
        )
        with runner:
            while sagas.checkpoint("sagas") < 4:
                runner.tick()
        assert 1 == len(runner.parked())
    assert ["acct-1 5", "acct-2 7"] == notes.read_text().splitlines()
    return db


def files(directory: Path) -> dict[str, bytes]:
    """Every file in *directory*, by name, byte for byte."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def assert_unchanged(before: dict[str, bytes], directory: Path) -> None:
    """Every file is as it was; SQLite's readers may have made the empty log and its index."""
    after = files(directory)
    assert before == {name: after[name] for name in before}
    made = {name: data for name, data in after.items() if name not in before}
    assert set(made) <= {"events.db-wal", "events.db-shm"}
    assert b"" == made.get("events.db-wal", b"")


def test_subscriptions_and_parked_list_show_saga_subscriptions_beside_projections(
    saga_db: Path,
) -> None:
    """subscriptions and parked list show the sagas' checkpoint, holder and parked event."""
    before = files(saga_db.parent)
    found = as_json("subscriptions", str(saga_db))
    assert isinstance(found, dict)
    rows = {row["kind"]: row for row in found["subscriptions"]}
    assert {"projection", "saga"} == set(rows)
    saga = rows["saga"]
    assert ("sagas", 0, 1, 4, 4, 0, "worker-1", 1) == (
        saga["subscription"],
        saga["partition"],
        saga["partitions"],
        saga["position"],
        saga["head"],
        saga["lag"],
        saga["holder"],
        saga["parked"],
    )
    assert "saga" in busway("subscriptions", str(saga_db)).stdout
    parked = as_json("parked", "list", str(saga_db), "--subscription", "sagas")
    assert isinstance(parked, dict)
    [event] = parked["parked"]
    assert ("sagas", "saga", 4, "acct-3") == (
        event["subscription"],
        event["kind"],
        event["position"],
        event["stream_id"],
    )
    assert "negative deposit of -4" in event["error"]
    both = as_json("parked", "list", str(saga_db))
    assert isinstance(both, dict)
    assert [("totals", "projection"), ("sagas", "saga")] == [
        (p["subscription"], p["kind"]) for p in both["parked"]
    ]
    assert_unchanged(before, saga_db.parent)


def test_parked_replay_runs_the_named_sagas_and_their_commands(saga_db: Path, notes: Path) -> None:
    """replay hands the parked event to the sagas again; a failure keeps it parked (exit 1)."""
    still = busway("parked", "replay", str(saga_db), *SAGAS, "--commands", "tests.cli.app:commands")
    assert 1 == still.returncode, still.stderr
    again = busway("parked", "replay", str(saga_db), *SAGAS, "--commands", COMMANDS, "--json")
    assert {"subscription": "sagas", "replayed": 0, "still_parked": 1} == json.loads(again.stdout)
    env = {**os.environ, LENIENT: "1"}
    done = busway(
        "parked",
        "replay",
        str(saga_db),
        *SAGAS,
        "--commands",
        "tests.cli.app:async_commands",
        "--position",
        "4",
        "--json",
        env=env,
    )
    assert 0 == done.returncode, done.stderr
    assert {"subscription": "sagas", "replayed": 1, "still_parked": 0} == json.loads(done.stdout)
    assert ["acct-1 5", "acct-2 7", "acct-3 -4"] == notes.read_text().splitlines()
    assert {"parked": []} == as_json("parked", "list", str(saga_db), "--subscription", "sagas")
    with SQLiteLeaseStore(saga_db) as leases:  # given back: a worker takes over at once
        assert leases.acquire("sagas", "worker-2", ttl=5) is not None


def test_a_replay_takes_over_as_a_worker_would_and_sends_what_outboxes_hold(
    saga_db: Path, notes: Path
) -> None:
    """Commands a worker that died left in an outbox are sent by the replay that takes over."""
    with SQLiteEventStore(saga_db, types=TYPES) as store:
        store.append("acct-5", [Deposited("acct-5", 2)])
    with (
        SQLiteEventStore(saga_db, types=TYPES) as store,
        SQLiteSagaStore(saga_db) as sagas,
        SQLiteLeaseStore(saga_db) as leases,
    ):
        dying = SagaManager(Notifier, store=sagas, commands=_dying(), types=TYPES)
        runner = dying.background(events=store, leases=leases, owner="worker-1", on_error=Park())
        with pytest.raises(KeyboardInterrupt):
            runner.tick()  # committed the saga with its command, and died sending it
        holder = leases.holder("sagas")
        assert holder is not None
        leases.release(holder)
        assert 1 == len(sagas.pending())
    env = {**os.environ, LENIENT: "1"}
    done = busway("parked", "replay", str(saga_db), *SAGAS, "--commands", COMMANDS, env=env)
    assert 0 == done.returncode, done.stderr
    assert ["acct-1 5", "acct-2 7", "acct-5 2", "acct-3 -4"] == notes.read_text().splitlines()
    with SQLiteSagaStore(saga_db) as sagas:
        assert [] == sagas.pending()


def _dying() -> CommandBus:
    def die(command: Notify) -> None:
        raise KeyboardInterrupt

    bus = CommandBus()
    bus.register(Notify, die)
    return bus


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--commands", "tests.cli.app:commands"], 2, "PROJECTION"),
        ([*SAGAS], 2, "--commands"),
        (["tests.cli.app:Totals", *SAGAS, "--commands", "tests.cli.app:commands"], 2, "not both"),
        (["tests.cli.app:Totals", "--subscription", "sagas"], 2, "go with --saga"),
        (["--saga", "tests.cli.app:Totals", "--commands", "tests.cli.app:commands"], 2, "Saga"),
        ([*SAGAS, "--commands", "tests.cli.app:TYPES"], 2, "CommandBus"),
        ([*SAGAS, "--commands", "tests.cli.app:commands", "--sagas-table", "other"], 3, "saga"),
    ],
)
def test_a_saga_replay_is_refused_what_it_cannot_run(
    saga_db: Path, args: list[str], code: int, message: str
) -> None:
    """A wrong saga command line exits with 2, a missing saga store with 3, each saying why."""
    done = busway("parked", "replay", str(saga_db), *args)
    assert code == done.returncode, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
