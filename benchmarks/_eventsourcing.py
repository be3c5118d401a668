"""The eventsourcing library's contenders in the subscriptions suite.

eventsourcing finds an event's class again by its topic (``module:qualname``), so its
classes live at module level here; the suite imports this module only when the library is
installed. Both contenders catch up from an ``Orders`` application's SQLite database into
a read model in a database of its own, where each event's row commits with its tracking
record, one transaction an event, as the library does.

- :func:`process_catch_up` runs ``Lines``, a ``ProcessApplication`` following ``Orders``
  in a ``System`` under ``SingleThreadedRunner``: its policy records one event an
  ``ItemAdded``, which its process recorder stores with the tracking record.
- :func:`view_catch_up` runs ``LinesProjection``, a ``Projection`` whose materialised view
  (an ``SQLiteTrackingRecorder``) inserts a row with the tracking record. The library's
  ``ProjectionRunner`` cannot run it: it follows an application through recorder
  subscriptions, which its SQLite module does not offer. So the loop that runner would run
  is written out here: a ``NotificationLogReader`` over the application's notification
  log, its mapper, and ``process_event`` for each event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from eventsourcing.system import (
    NotificationLogReader,
    ProcessApplication,
    SingleThreadedRunner,
    System,
)
from eventsourcing.utils import Environment

#: Notifications read a query, as busway's runner reads a batch.
SECTION = 100


class ItemAdded(DomainEvent):
    order_id: str
    sku: str
    quantity: int
    price: Decimal


class LineRecorded(DomainEvent):
    position: int
    order_id: str
    sku: str
    quantity: int
    price: Decimal


class Orders(Application[uuid.UUID]):
    """The write side: its database holds the events to catch up."""

    log_section_size = SECTION


class Lines(ProcessApplication[uuid.UUID]):
    """Follows Orders: one LineRecorded event for each ItemAdded, stored with its tracking."""

    pull_section_size = SECTION

    @singledispatchmethod
    def policy(self, domain_event: Any, processing_event: ProcessingEvent[uuid.UUID]) -> None:
        """Other events: only the tracking record is stored."""

    @policy.register(ItemAdded)
    def _(self, domain_event: ItemAdded, processing_event: ProcessingEvent[uuid.UUID]) -> None:
        tracking = processing_event.tracking
        assert tracking is not None
        processing_event.collect_events(
            LineRecorded(
                originator_id=uuid.uuid4(),
                originator_version=1,
                timestamp=LineRecorded.create_timestamp(),
                position=tracking.notification_id,
                order_id=domain_event.order_id,
                sku=domain_event.sku,
                quantity=domain_event.quantity,
                price=domain_event.price,
            )
        )


class LinesView(SQLiteTrackingRecorder):
    """A materialised view: a table of lines, each inserted with its tracking record."""

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.create_table_statements.append(
            "CREATE TABLE IF NOT EXISTS lines (position INTEGER PRIMARY KEY, order_id TEXT "
            "NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL, price TEXT NOT NULL)"
        )

    def add_line(self, event: ItemAdded, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO lines VALUES (?, ?, ?, ?, ?)",
                (
                    tracking.notification_id,
                    event.order_id,
                    event.sku,
                    event.quantity,
                    str(event.price),
                ),
            )
            self._insert_tracking(c, tracking)

    def count(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT count(*) FROM lines")
            return int(c.fetchone()[0])

    def synchronous(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute("PRAGMA synchronous")
            return int(c.fetchone()[0])


class LinesProjection(Projection[LinesView]):
    name = "lines_view"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Other events: nothing to record."""

    @process_event.register(ItemAdded)
    def _(self, domain_event: ItemAdded, tracking: Tracking) -> None:
        self.view.add_line(domain_event, tracking)


def environment(events: Path, model: Path) -> dict[str, str]:
    """Orders in *events*; Lines and the view in *model*; SQLite for all."""
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "ORDERS_SQLITE_DBNAME": str(events),
        "LINES_SQLITE_DBNAME": str(model),
        "LINES_VIEW_SQLITE_DBNAME": str(model),
    }


def fill(path: Path, events: int, streams: int) -> None:
    """Store *events* ItemAdded events over *streams* originators, in one transaction."""
    app = Orders(env=environment(path, path))
    ids = [uuid.uuid4() for _ in range(streams)]
    app.save(
        *(
            ItemAdded(
                originator_id=ids[n % streams],
                originator_version=n // streams + 1,
                timestamp=ItemAdded.create_timestamp(),
                order_id=f"order-{n % streams}",
                sku=f"SKU-{n}",
                quantity=2,
                price=Decimal("9.99"),
            )
            for n in range(events)
        )
    )
    app.close()


def process_catch_up(
    events: Path, model: Path, timed: Callable[[Callable[[], object]], float]
) -> tuple[float, int]:
    """Return the seconds Lines takes to catch up, and how many events it tracked."""
    runner: Any = SingleThreadedRunner(
        System(pipes=[[Orders, Lines]]), env=environment(events, model)
    )
    runner.start()
    try:
        lines = runner.get(Lines)
        seconds = timed(lambda: lines.pull_and_process("Orders"))
        return seconds, int(lines.recorder.max_tracking_id("Orders") or 0)
    finally:
        runner.stop()


def view_catch_up(
    events: Path, model: Path, timed: Callable[[Callable[[], object]], float]
) -> tuple[float, int, int]:
    """Return the seconds the view takes to catch up, its rows, and its `synchronous`."""
    env = environment(events, model)
    app = Orders(env=env)
    # As the library's ProjectionRunner builds a view: a factory configured by the
    # projection's name (LINES_VIEW_SQLITE_DBNAME), asked for a tracking recorder.
    factory: Any = InfrastructureFactory.construct(env=Environment(LinesProjection.name, env))
    view = factory.tracking_recorder(LinesView)
    projection = LinesProjection(view=view)
    reader = NotificationLogReader(app.notification_log, section_size=SECTION)

    def catch_up() -> None:
        start = view.max_tracking_id(app.name)
        for notifications in reader.select(start=start, inclusive_of_start=False):
            for notification in notifications:
                projection.process_event(
                    app.mapper.to_domain_event(notification),
                    Tracking(app.name, notification.id),
                )

    try:
        return timed(catch_up), view.count(), view.synchronous()
    finally:
        factory.close()
        app.close()
