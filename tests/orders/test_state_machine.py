"""Random command sequences through the bus keep the store, snapshots and read model in step."""

from __future__ import annotations

import itertools
import tempfile
from decimal import Decimal
from pathlib import Path
from sqlite3 import Connection
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from busway.aggregates import Repository
from busway.demo import (
    CancelOrder,
    LineItem,
    Order,
    OrderCancelled,
    OrderError,
    OrderPlaced,
    OrdersApp,
    OrderShipped,
    OrdersProjection,
    PlaceOrder,
    ShipOrder,
)
from busway.eventstore import RecordedEvent
from busway.projections import ProjectionRunner

from .helpers import rebuilt_rows, rows, state

line_items = st.builds(
    LineItem,
    sku=st.sampled_from(["beans", "mug", "kettle"]),
    quantity=st.integers(0, 3),
    unit_price=st.decimals(min_value=Decimal(0), max_value=Decimal(100), places=2),
)


class Crash(BaseException):
    """The process dying between the projection's writes and its checkpoint commit."""


class CrashingProjection(OrdersProjection):
    """The orders projection, made to die right after the writes of its n-th next event."""

    countdown: int | None = None

    def _tick(self) -> None:
        if self.countdown is not None:
            self.countdown -= 1
            if self.countdown == 0:
                self.countdown = None
                raise Crash

    def _placed(self, event: OrderPlaced, recorded: RecordedEvent, conn: Connection) -> None:
        super()._placed(event, recorded, conn)
        self._tick()

    def _cancelled(self, event: OrderCancelled, recorded: RecordedEvent, conn: Connection) -> None:
        super()._cancelled(event, recorded, conn)
        self._tick()

    def _shipped(self, event: OrderShipped, recorded: RecordedEvent, conn: Connection) -> None:
        super()._shipped(event, recorded, conn)
        self._tick()


class OrdersMachine(RuleBasedStateMachine):
    """Drives the order service and an in-memory model of each order side by side."""

    orders = Bundle("orders")

    @initialize()
    def open_app(self) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="busway-orders-test-")
        ids = itertools.count(1)
        self.app = OrdersApp(
            Path(self.folder.name) / "orders.db",
            new_id=lambda: f"o{next(ids)}",
            snapshot_every=2,
            batch_size=3,
        )
        self.full_replay = Repository(self.app.store, Order)
        self.live: dict[str, Order] = {}
        self.projection = CrashingProjection()
        self.app.runner = self._new_runner()

    def _new_runner(self) -> ProjectionRunner:
        return ProjectionRunner(
            self.app.store, self.projection, checkpoints=self.app.checkpoints, batch_size=3
        )

    def teardown(self) -> None:
        if hasattr(self, "app"):
            self.app.close()
            self.folder.cleanup()

    def _same_outcome(self, local: Any, command: Any) -> None:
        """Run *local* on the model and *command* on the bus; both refuse, or both succeed."""
        try:
            local()
        except OrderError as exc:
            with pytest.raises(type(exc)):
                self.app.commands.execute(command)
        else:
            self.app.commands.execute(command)

    @rule(
        target=orders,
        customer=st.sampled_from(["ann", "bob"]),
        lines=st.lists(line_items, max_size=3).map(tuple),
    )
    def place(self, customer: str, lines: tuple[LineItem, ...]) -> Any:
        try:
            Order.place("model", customer, lines)
        except OrderError as exc:
            with pytest.raises(type(exc)):
                self.app.commands.execute(PlaceOrder(customer, lines))
            return multiple()
        order_id = self.app.commands.execute(PlaceOrder(customer, lines))
        self.live[order_id] = Order.place(order_id, customer, lines)
        return order_id

    @rule(order_id=orders, reason=st.sampled_from(["no", "late"]))
    def cancel(self, order_id: str, reason: str) -> None:
        order = self.live[order_id]
        self._same_outcome(lambda: order.cancel(reason), CancelOrder(order_id, reason))

    @rule(order_id=orders, carrier=st.sampled_from(["DHL", "UPS"]))
    def ship(self, order_id: str, carrier: str) -> None:
        order = self.live[order_id]
        self._same_outcome(lambda: order.ship(carrier), ShipOrder(order_id, carrier))

    @rule()
    def project_one_batch(self) -> None:
        self.app.runner.run_once()

    @precondition(lambda self: self.app.runner.lag() > 0)
    @rule(after=st.integers(1, 3))
    def crash_before_the_checkpoint_commits(self, after: int) -> None:
        """The process dies after the writes of the *after*-th event of a batch."""
        before = (self.app.runner.position, rows(self.app.path))
        self.projection.countdown = after
        try:
            self.app.runner.run_once()
        except Crash:
            assert before == (self.app.checkpoints.load("orders"), rows(self.app.path))
            # What the process had in memory is gone; a new runner starts from the database.
            self.app.runner = self._new_runner()
        else:  # the batch was shorter than that: it committed, checkpoint and all
            self.projection.countdown = None

    @rule()
    def rebuild(self) -> None:
        self.app.runner.rebuild()

    @invariant()
    def the_store_holds_the_live_orders(self) -> None:
        """Loading (from a snapshot, or by full replay) gives each order as the model has it."""
        for order_id, live in self.live.items():
            expected = state(live)
            assert expected == state(self.app.orders.get(order_id))
            assert expected == state(self.full_replay.get(order_id))

    @invariant()
    def the_read_model_is_what_a_rebuild_gives(self) -> None:
        """At its checkpoint, the read model equals one built from zero to the same point."""
        position = self.app.runner.position
        assert position == self.app.checkpoints.load("orders")
        assert rebuilt_rows(self.app, position) == rows(self.app.path)


OrdersMachine.TestCase.settings = settings(
    OrdersMachine.TestCase.settings, max_examples=40, stateful_step_count=25
)
test_orders_state_machine = OrdersMachine.TestCase
