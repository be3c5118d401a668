"""The installed ``busway`` command against a PostgreSQL schema."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from busway.postgres import (
    PostgresCheckpointStore,
    PostgresEventStore,
    PostgresLeaseStore,
    PostgresSagaStore,
)
from busway.projections import ProjectionRunner
from busway.sagas import SagaManager
from busway.subscriptions import Park

from .app import LENIENT, NOTES, TYPES, Deposited, Notifier, Totals, commands
from .test_command import as_json, busway


@pytest.fixture
def filled(postgres_dsn: str, pg_schema: str) -> str:
    """A schema with two streams and a projection split in two partitions, one event parked."""
    with (
        PostgresEventStore(postgres_dsn, types=TYPES, schema=pg_schema) as store,
        PostgresCheckpointStore(postgres_dsn, schema=pg_schema) as checkpoints,
        PostgresLeaseStore(postgres_dsn, schema=pg_schema) as leases,
    ):
        store.append("acct-1", [Deposited("acct-1", 5)], metadata={"user": "ann"})
        store.append("acct-2", [Deposited("acct-2", 7), Deposited("acct-2", -1)])
        runner = ProjectionRunner(
            store, Totals(), checkpoints=checkpoints, leases=leases, on_error=Park(), partitions=2
        )
        with runner.running():
            runner.wait_for(3, timeout=30)
    return pg_schema


def test_reading_a_postgres_store(postgres_dsn: str, filled: str) -> None:
    """info, streams, show and subscriptions read a schema's stores as they read a file."""
    where = (postgres_dsn, "--schema", filled)
    info = as_json("info", *where)
    assert isinstance(info, dict)
    assert (3, 2, 3) == (info["events"], info["streams"], info["head_position"])
    assert info["size_bytes"] > 0
    streams = as_json("streams", *where)
    assert isinstance(streams, dict)
    assert ["acct-1", "acct-2"] == [s["stream_id"] for s in streams["streams"]]
    shown = as_json("show", *where[:1], "acct-1", *where[1:])
    assert isinstance(shown, dict)
    assert [("ann", 5)] == [(e["metadata"]["user"], e["data"]["amount"]) for e in shown["events"]]
    subscriptions = as_json("subscriptions", *where)
    assert isinstance(subscriptions, dict)
    assert [(0, 2), (1, 2)] == [
        (s["partition"], s["partitions"]) for s in subscriptions["subscriptions"]
    ]
    assert 1 == sum(s["parked"] for s in subscriptions["subscriptions"])
    tail = busway("tail", *where, "--from-position", "1", "--limit", "3", "--json")
    assert [1, 2, 3] == [json.loads(line)["position"] for line in tail.stdout.splitlines()]


def test_rebuild_and_replay_on_postgres(postgres_dsn: str, filled: str) -> None:
    """rebuild and parked replay run the named projection on the schema's checkpoints."""
    where = (postgres_dsn, "--schema", filled, "--partitions", "2")
    done = as_json("parked", "replay", postgres_dsn, "tests.cli.app:forgiving", *where[1:])
    assert {"projection": "totals", "replayed": 1, "still_parked": 0} == done
    rebuilt = as_json("rebuild", postgres_dsn, "tests.cli.app:forgiving", *where[1:])
    # Each partition reads the whole log and keeps its own streams.
    assert {"projection": "totals", "read": 6, "position": 3} == rebuilt


def test_a_schema_without_a_store_is_refused_and_left_empty(
    postgres_dsn: str, pg_schema: str
) -> None:
    """A schema with no event store gets exit code 3, and no table is made in it."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{pg_schema}"')
    for args in (["info"], ["subscriptions"], ["rebuild", "tests.cli.app:Totals"]):
        command, *rest = args
        done = busway(command, postgres_dsn, *rest, "--schema", pg_schema)
        assert 3 == done.returncode
        assert "holds no busway event store" in done.stderr
    with psycopg.connect(postgres_dsn) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (pg_schema,)
        ).fetchone()
    assert (0,) == tables


def test_a_postgres_store_nothing_follows_has_no_subscriptions(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Without checkpoint and lease tables, subscriptions lists nothing and makes no table."""
    with PostgresEventStore(postgres_dsn, types=TYPES, schema=pg_schema) as store:
        store.append("a", [Deposited("a", 1)])
    assert {"subscriptions": []} == as_json("subscriptions", postgres_dsn, "--schema", pg_schema)
    with psycopg.connect(postgres_dsn) as conn:
        found = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s",
            (pg_schema, "%checkpoints%"),
        ).fetchall()
    assert [] == found


def test_a_server_that_does_not_answer_is_a_refusal() -> None:
    """A DSN no server answers at exits with 1 and says so."""
    done = busway("info", "postgresql://postgres@127.0.0.1:1/none")
    assert 1 == done.returncode
    assert "PostgreSQL" in done.stderr


def test_saga_subscriptions_on_postgres(
    postgres_dsn: str, pg_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """subscriptions, parked list and parked replay read and run a schema's saga store."""
    notes = tmp_path / "notes.txt"
    notes.touch()
    monkeypatch.setenv(NOTES, str(notes))
    with (
        PostgresEventStore(postgres_dsn, types=TYPES, schema=pg_schema) as store,
        PostgresSagaStore(postgres_dsn, schema=pg_schema) as sagas,
        PostgresLeaseStore(postgres_dsn, schema=pg_schema) as leases,
    ):
        store.append("acct-1", [Deposited("acct-1", 5)])
        store.append("acct-2", [Deposited("acct-2", -1)])
        manager = SagaManager(Notifier, store=sagas, commands=commands(), types=TYPES)
        runner = manager.background(events=store, leases=leases, on_error=Park(), owner="w-1")
        while sagas.checkpoint("sagas") < 2:
            runner.tick()
        holder = leases.holder("sagas")
        assert holder is not None
        leases.release(holder)
    where = ("--schema", pg_schema)
    found = as_json("subscriptions", postgres_dsn, *where)
    assert isinstance(found, dict)
    assert [("sagas", "saga", 2, 1)] == [
        (s["subscription"], s["kind"], s["position"], s["parked"]) for s in found["subscriptions"]
    ]
    parked = as_json("parked", "list", postgres_dsn, *where)
    assert isinstance(parked, dict)
    assert [(2, "acct-2")] == [(p["position"], p["stream_id"]) for p in parked["parked"]]
    saga = ("--saga", "tests.cli.app:Notifier", "--commands", "tests.cli.app:commands")
    assert 1 == busway("parked", "replay", postgres_dsn, *saga, *where).returncode
    monkeypatch.setenv(LENIENT, "1")
    done = as_json("parked", "replay", postgres_dsn, *saga, *where)
    assert {"subscription": "sagas", "replayed": 1, "still_parked": 0} == done
    assert ["acct-1 5", "acct-2 -1"] == notes.read_text().splitlines()
