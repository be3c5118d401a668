"""Leases in PostgreSQL: which worker, on whichever machine, runs each subscription."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any, Final, final

from psycopg_pool import ConnectionPool

from ..clock import Clock
from ..subscriptions._leases import Decision, Lease, Leases, check_clock
from ._db import Database, Flow, Layout, Statement, check_identifier, quoted
from ._store import PostgresStore
from ._tables import check_key

__all__ = ["PostgresLeaseStore"]

_COLUMNS: Final = ("name", "owner", "token", "expires_at")
_SELECT: Final = "SELECT name, owner, token, expires_at AT TIME ZONE 'UTC' FROM {t}"


@final
class PostgresLeaseStore(Leases, PostgresStore):
    """A :class:`~busway.subscriptions.LeaseStore` in a table of a PostgreSQL database.

    Each acquire, renew and release is one transaction that locks the name's row
    (``SELECT ... FOR UPDATE``) and reads the store's clock under that lock, so no two
    workers, on any machines, hold a name at once. No session state is kept between calls,
    so it works behind a connection pooler too. Rows are never deleted, so each name's
    token only grows. Expiry is judged by *clock* (the system's by default), so the
    machines' clocks should agree to well within a lease time.
    """

    _holds = "leases"
    table: str
    schema: str

    def __init__(
        self,
        dsn_or_pool: str | ConnectionPool[Any],
        *,
        schema: str = "public",
        table: str = "subscription_leases",
        clock: Clock | None = None,
    ) -> None:
        self.table = t = check_identifier(table, "table")
        self.schema = check_identifier(schema, "schema")
        self._clock = check_clock(clock)
        q = quoted(schema, t)
        layout = Layout(
            kind="a lease store",
            tables=(t,),
            create=(
                f"CREATE TABLE {q} (name TEXT PRIMARY KEY, "
                "owner TEXT NOT NULL CHECK (owner <> ''), "
                "token BIGINT NOT NULL CHECK (token >= 1), expires_at TIMESTAMPTZ NOT NULL)",
            ),
            columns=_COLUMNS,
            component="leases",
        )
        super().__init__(Database(dsn_or_pool, layout, schema=schema))
        self._sql_one = _SELECT.format(t=q) + " WHERE name = %s"
        self._sql_all = _SELECT.format(t=q)
        self._sql_insert = (
            f"INSERT INTO {q} ({', '.join(_COLUMNS)}) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name) DO NOTHING RETURNING name"
        )
        self._sql_update = f"UPDATE {q} SET owner = %s, token = %s, expires_at = %s WHERE name = %s"

    def _change(self, name: str, decide: Decision) -> Lease | None:
        lease: Lease | None = self._run(self._changing(check_key(name), decide))
        return lease

    def _changing(self, name: str, decide: Decision) -> Flow[Lease | None]:
        while True:
            rows = yield Statement(self._sql_one + " FOR UPDATE", (name,))
            last = _lease(rows[0]) if rows else None
            # The clock is read under the row's lock: a taker that waited for it sees the
            # time after the last holder's commit, never an earlier one.
            lease = decide(last, self._now())
            if lease is None:
                return None
            values = (lease.owner, lease.token, lease.expires_at)
            if last is not None:
                yield Statement(self._sql_update, (*values, name))
                return lease
            if (yield Statement(self._sql_insert, (name, *values))):
                return lease
            # Another worker made the row first; its commit is in: lock it, decide again.

    def _last(self, name: str) -> Lease | None:
        rows = self._run(_rows(self._sql_one, (check_key(name),)))
        return _lease(rows[0]) if rows else None

    def _every(self) -> Iterable[Lease]:
        return [_lease(row) for row in self._run(_rows(self._sql_all, ()))]


def _rows(sql: str, params: tuple[object, ...]) -> Flow[list[tuple[Any, ...]]]:
    return (yield Statement(sql, params))


def _lease(row: tuple[Any, ...]) -> Lease:
    name, owner, token, expires_at = row
    return Lease(name, owner, token, expires_at.replace(tzinfo=UTC))
