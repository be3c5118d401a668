"""The order service wired up: buses, repository, projection, on one SQLite file or PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any, Protocol, Self, TypeVar

from busway import CommandBus, ConcurrencyError, EventBus, QueryBus, Registry
from busway.aggregates import Repository, SnapshotStore, SQLiteSnapshotStore
from busway.eventstore import EventStore, SQLiteEventStore
from busway.middleware import retry
from busway.projections import (
    CheckpointStore,
    Projection,
    ProjectionRunner,
    SQLiteCheckpointStore,
    WritingProjection,
)

from .domain import Order
from .messages import EVENT_TYPES, CancelOrder, PlaceOrder, ShipOrder
from .read_model import OrderQueries, OrdersProjection

__all__ = ["OrdersApp", "is_dsn"]


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


def _new_order_id() -> str:
    return uuid.uuid4().hex[:12]


def is_dsn(value: str) -> bool:
    """Tell whether *value* names a PostgreSQL database rather than an SQLite file."""
    return value.startswith(("postgresql://", "postgres://"))


class OrdersApp:
    """Commands go through Order aggregates into the event store; queries read the ``orders``
    table, which :attr:`runner` keeps current.

    Everything lives in the SQLite file at *path*, or, given a PostgreSQL DSN
    (``postgresql://...``), in tables of *schema* in that database.
    """

    path: str
    """The SQLite file, or the PostgreSQL DSN."""
    location: str
    """Where it all lives, for people: the file, or the server, database and schema."""
    store: EventStore
    snapshots: SnapshotStore
    checkpoints: CheckpointStore
    events: EventBus
    orders: Repository[Order]
    runner: ProjectionRunner
    read_model: OrderQueries
    commands: CommandBus
    queries: QueryBus

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        schema: str = "busway_demo",
        new_id: Callable[[], str] = _new_order_id,
        snapshot_every: int | None = 2,
        batch_size: int = 100,
    ) -> None:
        self.path = os.fspath(path)
        self._new_id = new_id
        self._closers: list[Callable[[], None]] = []
        try:
            projection = self._open(schema)
            self.events = EventBus()
            self.orders = Repository(
                self.store,
                Order,
                snapshot_every=snapshot_every,
                snapshots=self.snapshots if snapshot_every is not None else None,
                event_bus=self.events,
            )
            self.runner = ProjectionRunner(
                self.store, projection, checkpoints=self.checkpoints, batch_size=batch_size
            )
            self._closers.append(self.runner.stop)
        except BaseException:
            self.close()
            raise
        handlers = Registry()
        handlers.command(self.place_order)
        handlers.command(self.cancel_order)
        handlers.command(self.ship_order)
        handlers.query(self.read_model.get_order)
        handlers.query(self.read_model.list_orders)
        self.commands = CommandBus(handlers)
        # Two clerks changing one order at once: the loser loads it again and re-decides.
        self.commands.use(retry(on=(ConcurrencyError,), attempts=5, backoff=0.001))
        self.queries = QueryBus(handlers)

    def _closing(self, resource: C) -> C:
        self._closers.append(resource.close)
        return resource

    def _open(self, schema: str) -> Projection | WritingProjection[Any]:
        """Open the stores and the read model where :attr:`path` says; return the projection."""
        if is_dsn(self.path):
            from . import postgres  # psycopg is needed only here

            self.location = postgres.describe(self.path, schema)
            self.store = self._closing(postgres.event_store(self.path, schema))
            self.snapshots = self._closing(postgres.snapshot_store(self.path, schema))
            self.checkpoints = self._closing(postgres.checkpoint_store(self.path, schema))
            self.read_model = self._closing(postgres.queries(self.path, schema))
            return postgres.projection(schema)
        self.location = self.path
        self.store = self._closing(SQLiteEventStore(self.path, types=EVENT_TYPES))
        self.snapshots = self._closing(SQLiteSnapshotStore(self.path))
        self.checkpoints = self._closing(SQLiteCheckpointStore(self.path))
        self.read_model = self._closing(OrderQueries.sqlite(self.path))
        return OrdersProjection()

    # -- command handlers ------------------------------------------------------------------

    def place_order(self, command: PlaceOrder) -> str:
        order = Order.place(self._new_id(), command.customer_id, command.items)
        self.orders.save(order)
        return order.id

    def cancel_order(self, command: CancelOrder) -> None:
        order = self.orders.get(command.order_id)
        order.cancel(command.reason)
        self.orders.save(order)

    def ship_order(self, command: ShipOrder) -> None:
        order = self.orders.get(command.order_id)
        order.ship(command.carrier)
        self.orders.save(order)

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the projection and close every connection, newest first."""
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
