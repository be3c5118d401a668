"""The shop the workers run: orders placed, a saga that ships each, a read model of orders.

An order's stream holds ``OrderPlaced``, then ``OrderShipped``. The ``Shipping`` saga
starts on the first and sends ``ShipOrder``; the command's handler appends the second,
which ends the saga. ``Orders`` keeps one row an order, written in the runner's
transaction with its checkpoint: partitions split the work by stream, and keep each
stream's order, so no two partitions ever write one row. Every store lives in one
PostgreSQL schema.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import attrs
import psycopg

from busway import Command, CommandBus, ConcurrencyError, Event
from busway.eventstore import EventTypes, RecordedEvent
from busway.postgres import (
    PostgresCheckpointStore,
    PostgresEventStore,
    PostgresLeaseStore,
    PostgresProjection,
    PostgresSagaStore,
)
from busway.projections import when
from busway.sagas import Saga, handles, starts

__all__ = [
    "LEASE",
    "PARTITIONS",
    "TYPES",
    "OrderPlaced",
    "OrderShipped",
    "Orders",
    "ShipOrder",
    "Shipping",
    "Stores",
    "shipping_commands",
    "stores",
]

LEASE = 1.0  # seconds: how soon a standby takes a dead worker's partitions over
PARTITIONS = 4  # of the projection; the saga subscription has as many


@attrs.frozen
class OrderPlaced(Event):
    order_id: str
    customer: str
    amount: Decimal


@attrs.frozen
class OrderShipped(Event):
    order_id: str


@attrs.frozen
class ShipOrder(Command[None]):
    order_id: str


TYPES = EventTypes(OrderPlaced, OrderShipped)


class Orders(PostgresProjection):
    """One row an order: who placed it, for how much, whether it was shipped."""

    def __init__(self, schema: str, table: str = "orders") -> None:
        self.name = table
        self.schema = schema
        self.table = f'"{schema}"."{table}"'

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (order_id TEXT PRIMARY KEY, "
            "customer TEXT NOT NULL, amount NUMERIC NOT NULL, shipped BOOLEAN NOT NULL)"
        )

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"DELETE FROM {self.table}")

    @when(OrderPlaced)
    def _placed(
        self, event: OrderPlaced, recorded: RecordedEvent, conn: psycopg.Connection[Any]
    ) -> None:
        conn.execute(
            f"INSERT INTO {self.table} VALUES (%s, %s, %s, false)",
            (event.order_id, event.customer, event.amount),
        )

    @when(OrderShipped)
    def _shipped(
        self, event: OrderShipped, recorded: RecordedEvent, conn: psycopg.Connection[Any]
    ) -> None:
        conn.execute(
            f"UPDATE {self.table} SET shipped = true WHERE order_id = %s", (event.order_id,)
        )

    def rows(self, conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
        """Return the read model, by order id."""
        return conn.execute(f"SELECT * FROM {self.table} ORDER BY order_id").fetchall()


@attrs.define
class Shipping(Saga):
    """Ships an order once it is placed; ends when it is shipped."""

    order_id: str = ""

    @starts(OrderPlaced, key="order_id")
    def placed(self, event: OrderPlaced) -> None:
        self.order_id = event.order_id
        self.send(ShipOrder(event.order_id))

    @handles(OrderShipped, key="order_id")
    def shipped(self, event: OrderShipped) -> None:
        self.end()


def stream(order_id: str) -> str:
    return f"order-{order_id}"


def shipping_commands(events: PostgresEventStore) -> CommandBus:
    """Return the command bus of a worker: ``ShipOrder`` appends ``OrderShipped``.

    A saga's commands are sent at least once (again by the worker that takes over, if the
    sender died before it recorded the send), so shipping twice must do nothing: the
    append expects the order's stream to hold only ``OrderPlaced``.
    """

    def ship(command: ShipOrder) -> None:
        with contextlib.suppress(ConcurrencyError):  # shipped already
            events.append(
                stream(command.order_id), [OrderShipped(command.order_id)], expected_version=1
            )

    commands = CommandBus()
    commands.register(ShipOrder, ship)
    return commands


@attrs.frozen
class Stores:
    """Every store of the shop, in one schema."""

    events: PostgresEventStore
    checkpoints: PostgresCheckpointStore
    leases: PostgresLeaseStore
    sagas: PostgresSagaStore


@contextlib.contextmanager
def stores(dsn: str, schema: str) -> Iterator[Stores]:
    """Open every store of the shop in *schema* (its tables are made on first use)."""
    with (
        PostgresEventStore(dsn, types=TYPES, schema=schema) as events,
        PostgresCheckpointStore(dsn, schema=schema) as checkpoints,
        PostgresLeaseStore(dsn, schema=schema) as leases,
        PostgresSagaStore(dsn, schema=schema) as sagas,
    ):
        yield Stores(events, checkpoints, leases, sagas)
