"""The PostgreSQL checkpoint and lease stores keep the promises of the shipped contracts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from busway.clock import FakeClock
from busway.postgres import PostgresCheckpointStore, PostgresLeaseStore
from busway.projections import CheckpointStore
from busway.subscriptions import LeaseStore
from busway.testing import CheckpointStoreContract, LeaseStoreContract


class TestPostgresCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    def store(self, postgres_dsn: str, pg_schema: str) -> Iterator[CheckpointStore]:
        with PostgresCheckpointStore(postgres_dsn, schema=pg_schema) as store:
            self.dsn, self.schema = postgres_dsn, pg_schema
            yield store

    def open_another(self, store: CheckpointStore) -> CheckpointStore:
        return PostgresCheckpointStore(self.dsn, schema=self.schema)


class TestPostgresLeaseStore(LeaseStoreContract):
    @pytest.fixture
    def store(self, postgres_dsn: str, pg_schema: str, clock: FakeClock) -> Iterator[LeaseStore]:
        with PostgresLeaseStore(postgres_dsn, schema=pg_schema, clock=clock) as store:
            self.dsn, self.schema = postgres_dsn, pg_schema
            yield store

    def open_another(self, store: LeaseStore, clock: FakeClock) -> LeaseStore:
        return PostgresLeaseStore(self.dsn, schema=self.schema, clock=clock)
