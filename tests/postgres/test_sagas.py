"""The PostgreSQL saga store: the shipped contract, and what it keeps across workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from busway.postgres import PostgresSagaStore
from busway.sagas import SagaStore
from busway.testing import SagaStoreContract


class TestPostgresSagaStore(SagaStoreContract):
    @pytest.fixture
    def store(self, postgres_dsn: str, pg_schema: str) -> Iterator[SagaStore]:
        with PostgresSagaStore(postgres_dsn, schema=pg_schema) as store:
            yield store

    def open_another(self, store: SagaStore) -> SagaStore:
        assert isinstance(store, PostgresSagaStore)
        return PostgresSagaStore(store._db.pool.conninfo, schema=store.schema)
