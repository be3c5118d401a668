"""What the order tests compare: aggregate state, read-model rows, fresh rebuilds."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from busway.aggregates import Aggregate
from busway.demo import LineItem, OrdersApp, OrdersProjection
from busway.demo.read_model import COLUMNS
from busway.eventstore import EventStore, RecordedEvent
from busway.projections import ProjectionRunner, SQLiteCheckpointStore


def state(aggregate: Aggregate) -> dict[str, Any]:
    """Return what an aggregate is (id, version, state), leaving out its pending events."""
    return {k: v for k, v in vars(aggregate).items() if k != "_pending"}


def items(*specs: tuple[str, int, str]) -> tuple[LineItem, ...]:
    return tuple(LineItem(sku, qty, Decimal(price)) for sku, qty, price in specs)


def rows(path: str) -> list[tuple[Any, ...]]:
    """Return the whole ``orders`` table, in a stable order."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"SELECT {COLUMNS} FROM orders ORDER BY order_id").fetchall()


class StoreUpTo:
    """A view of a store that ends at *last*: to build a read model up to a checkpoint."""

    def __init__(self, store: EventStore, last: int) -> None:
        self.store = store
        self.last = last

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> Iterator[RecordedEvent]:
        for recorded in self.store.read_all(from_position=from_position, limit=limit, types=types):
            if recorded.position > self.last:
                return
            yield recorded

    def head_position(self) -> int:
        return min(self.last, self.store.head_position())


def rebuilt_rows(app: OrdersApp, up_to: int) -> list[tuple[Any, ...]]:
    """Return the ``orders`` table as a new projection builds it from zero, up to *up_to*."""
    with contextlib.closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        with SQLiteCheckpointStore(conn) as checkpoints:
            runner = ProjectionRunner(
                StoreUpTo(app.store, up_to), OrdersProjection(), checkpoints=checkpoints
            )
            runner.run_until_caught_up()
        return conn.execute(f"SELECT {COLUMNS} FROM orders ORDER BY order_id").fetchall()
