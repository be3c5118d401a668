"""The query side: an ``orders`` table kept current by a projection, and the queries on it.

Each row is one order, denormalized for reading: status, items, total, times. Lists are
paged by keyset: a cursor holds the position of the last order shown, and the next page
starts below it, so a page costs the same however deep it is and never repeats or skips
an order when new ones arrive meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

from busway.eventstore import RecordedEvent
from busway.projections import SQLiteProjection, when

from .messages import (
    GetOrder,
    LineItem,
    ListOrders,
    OrderCancelled,
    OrderPage,
    OrderPlaced,
    OrderShipped,
    OrderStatus,
    OrderView,
)

__all__ = [
    "COLUMNS",
    "Fetch",
    "InvalidCursorError",
    "OrderQueries",
    "OrdersProjection",
    "OrdersTable",
    "postgres_sql",
]

COLUMNS = (
    "order_id, customer_id, status, items, total, placed_at, updated_at, carrier, "
    "cancel_reason, placed_position, version"
)


class InvalidCursorError(ValueError):
    def __init__(self, cursor: str) -> None:
        self.cursor = cursor
        super().__init__(
            f"{cursor!r} is not a cursor of ListOrders; pass the next_cursor of a page, or None"
        )


class _Writer(Protocol):
    """What the handlers write through: an sqlite3 or a psycopg connection."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> _Changed: ...


class _Changed(Protocol):
    @property
    def rowcount(self) -> int: ...


W = TypeVar("W", bound=_Writer)


def postgres_sql(sql: str) -> str:
    """Return *sql*, written with SQLite's ``?`` placeholders, with psycopg's ``%s`` instead."""
    return sql.replace("?", "%s")


class OrdersTable(Generic[W]):
    """The ``orders`` table and how each order event changes it, in SQL both databases run.

    Handlers write through a connection of type *W*, sqlite3's or psycopg's. *table* names
    the table (schema-qualified on PostgreSQL); *sql* turns a statement written with ``?``
    placeholders into the connection's own.
    """

    def __init__(self, table: str = "orders", sql: Callable[[str], str] = str) -> None:
        self._table = table
        self._sql = sql

    def _execute(self, conn: W, sql: str, params: Sequence[Any] = ()) -> int:
        return conn.execute(self._sql(sql), params).rowcount

    def setup(self, conn: W) -> None:
        t = self._table
        self._execute(
            conn,
            f"""CREATE TABLE IF NOT EXISTS {t} (
                order_id TEXT PRIMARY KEY,
                customer_id TEXT NOT NULL,
                status TEXT NOT NULL,
                items TEXT NOT NULL,
                total TEXT NOT NULL,
                placed_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                carrier TEXT,
                cancel_reason TEXT,
                placed_position BIGINT NOT NULL UNIQUE,
                version BIGINT NOT NULL
            )""",
        )
        # The two ways orders are listed: by customer, and by customer and status.
        self._execute(
            conn,
            f"CREATE INDEX IF NOT EXISTS orders_by_customer ON {t} (customer_id, placed_position)",
        )
        self._execute(
            conn,
            "CREATE INDEX IF NOT EXISTS orders_by_customer_status "
            f"ON {t} (customer_id, status, placed_position)",
        )

    def reset(self, conn: W) -> None:
        self._execute(conn, f"DELETE FROM {self._table}")

    @when(OrderPlaced)
    def _placed(self, event: OrderPlaced, recorded: RecordedEvent, conn: W) -> None:
        at = recorded.recorded_at.isoformat()
        items = [
            {"sku": i.sku, "quantity": i.quantity, "unit_price": str(i.unit_price)}
            for i in event.items
        ]
        self._execute(
            conn,
            f"INSERT INTO {self._table} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
            (
                event.order_id,
                event.customer_id,
                OrderStatus.PENDING.value,
                json.dumps(items),
                str(event.total),
                at,
                at,
                recorded.position,
                recorded.version,
            ),
        )

    @when(OrderCancelled)
    def _cancelled(self, event: OrderCancelled, recorded: RecordedEvent, conn: W) -> None:
        self._update(
            conn, event.order_id, recorded, OrderStatus.CANCELLED, cancel_reason=event.reason
        )

    @when(OrderShipped)
    def _shipped(self, event: OrderShipped, recorded: RecordedEvent, conn: W) -> None:
        self._update(conn, event.order_id, recorded, OrderStatus.SHIPPED, carrier=event.carrier)

    def _update(
        self,
        conn: W,
        order_id: str,
        recorded: RecordedEvent,
        status: OrderStatus,
        *,
        carrier: str | None = None,
        cancel_reason: str | None = None,
    ) -> None:
        # The version check makes a replayed or skipped event fail loudly, never slip in.
        updated = self._execute(
            conn,
            f"UPDATE {self._table} SET status = ?, carrier = coalesce(?, carrier), "
            "cancel_reason = coalesce(?, cancel_reason), updated_at = ?, version = ? "
            "WHERE order_id = ? AND version = ?",
            (
                status.value,
                carrier,
                cancel_reason,
                recorded.recorded_at.isoformat(),
                recorded.version,
                order_id,
                recorded.version - 1,
            ),
        )
        if updated != 1:
            raise LookupError(
                f"the orders table has no row for {recorded.stream_id!r} at version "
                f"{recorded.version - 1}; rebuild the read model"
            )


class OrdersProjection(OrdersTable[sqlite3.Connection], SQLiteProjection):
    """Keeps the ``orders`` table of the SQLite file in step with the order events."""

    name = "orders"


def _view(row: tuple[Any, ...]) -> OrderView:
    items = tuple(
        LineItem(i["sku"], i["quantity"], Decimal(i["unit_price"])) for i in json.loads(row[3])
    )
    return OrderView(
        order_id=row[0],
        customer_id=row[1],
        status=OrderStatus(row[2]),
        items=items,
        total=Decimal(row[4]),
        placed_at=datetime.fromisoformat(row[5]),
        updated_at=datetime.fromisoformat(row[6]),
        carrier=row[7],
        cancel_reason=row[8],
    )


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"orders:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, position = text.partition(":")
        if prefix != "orders" or not position.isdigit():
            raise ValueError(cursor)
        return int(position)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursorError(cursor) from None


Fetch = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""Runs one query (``?`` placeholders) and returns its rows."""


class OrderQueries:
    """Answers GetOrder and ListOrders from the read model, through *fetch*.

    *fetch* runs on a connection of the read model's own, which *close* closes.
    """

    def __init__(self, fetch: Fetch, close: Callable[[], object], table: str = "orders") -> None:
        self._fetch = fetch
        self._close = close
        self._table = table
        self._lock = threading.Lock()

    @classmethod
    def sqlite(cls, path: str) -> OrderQueries:
        """Return the queries of the read model in the SQLite file at *path*."""
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        return cls(lambda sql, params: conn.execute(sql, params).fetchall(), conn.close)

    def close(self) -> None:
        self._close()

    def rows(self) -> list[tuple[Any, ...]]:
        """Return the whole table, by order id: what a rebuild must give back."""
        with self._lock:
            return self._fetch(f"SELECT {COLUMNS} FROM {self._table} ORDER BY order_id", ())

    def get_order(self, query: GetOrder) -> OrderView | None:
        with self._lock:
            rows = self._fetch(
                f"SELECT {COLUMNS} FROM {self._table} WHERE order_id = ?", (query.order_id,)
            )
        return _view(rows[0]) if rows else None

    def list_orders(self, query: ListOrders) -> OrderPage:
        sql = f"SELECT {COLUMNS} FROM {self._table} WHERE customer_id = ?"
        params: list[object] = [query.customer_id]
        if query.status is not None:
            sql += " AND status = ?"
            params.append(query.status.value)
        if query.cursor is not None:
            sql += " AND placed_position < ?"
            params.append(decode_cursor(query.cursor))
        sql += " ORDER BY placed_position DESC LIMIT ?"
        params.append(query.limit + 1)  # one more tells whether there is a next page
        with self._lock:
            rows = self._fetch(sql, params)
        page = rows[: query.limit]
        more = len(rows) > query.limit
        return OrderPage(
            orders=tuple(_view(row) for row in page),
            next_cursor=encode_cursor(page[-1][9]) if more else None,
        )
