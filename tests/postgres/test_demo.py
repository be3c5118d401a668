"""``python -m busway.demo DSN`` runs the whole tour on PostgreSQL, and keeps what it wrote."""

from __future__ import annotations

import io

import psycopg
import pytest

from busway.demo import GetOrder, OrdersApp
from busway.demo.tour import main
from busway.errors import StoreUnavailableError


def test_the_demo_runs_on_postgresql_and_a_rerun_adds_to_it(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Given a DSN, the tour runs in the schema named, and a second run adds eight orders."""
    for run in (1, 2):
        out = io.StringIO()
        assert 0 == main([postgres_dsn, "--schema", pg_schema], out=out)
        text = out.getvalue()
        assert text.startswith(
            f"busway orders demo, on PostgreSQL: PostgreSQL at 127.0.0.1:5432, database test, "
            f"schema {pg_schema}\n"
        )
        assert f"identical to the read model before the rebuild: yes ({8 * run} orders)" in text
        assert text.endswith(f"schema {pg_schema}; run again to add to them.\n")
    with psycopg.connect(postgres_dsn) as conn:
        [(orders,)] = conn.execute(f'SELECT count(*) FROM "{pg_schema}".orders').fetchall()
    assert 16 == orders


def test_a_schema_it_cannot_use_is_refused_with_the_reason(
    postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A schema name that is no plain identifier exits 2, saying what a name must be."""
    with pytest.raises(SystemExit) as exited:
        main([postgres_dsn, "--schema", "no such; schema"], out=io.StringIO())
    assert 2 == exited.value.code
    assert "an SQL identifier" in capsys.readouterr().err


def test_a_read_model_gone_cannot_be_queried(postgres_dsn: str, pg_schema: str) -> None:
    """A read model whose table was dropped says so, as StoreUnavailableError, when queried."""
    with OrdersApp(postgres_dsn, schema=pg_schema):
        pass  # closed without a query: its connection was never opened
    with OrdersApp(postgres_dsn, schema=pg_schema) as app:
        app.runner.run_until_caught_up()
        assert app.queries.execute(GetOrder("o-1")) is None
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP TABLE "{pg_schema}".orders')
        with pytest.raises(StoreUnavailableError, match="the read model cannot be queried"):
            app.queries.execute(GetOrder("o-1"))
