"""A tour of the order service, which ``python -m busway.demo [PATH | DSN]`` runs.

Without *PATH* it works in a new file in a temporary directory, removed at the end, so every
run starts empty and leaves nothing behind. Given a *PATH*, the file is kept, and a rerun
adds to what is there. Given a PostgreSQL *DSN* (``postgresql://...``), it works in tables
of the schema ``--schema`` names (made on first use, and kept), in that database.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TextIO

from busway.errors import InvalidArgumentError, StoreFormatError, StoreUnavailableError

from .app import OrdersApp, is_dsn
from .domain import OrderError
from .messages import (
    CancelOrder,
    GetOrder,
    LineItem,
    ListOrders,
    OrderPlaced,
    OrderStatus,
    OrderView,
    PlaceOrder,
    ShipOrder,
)

__all__ = ["main", "tour"]

_CATALOGUE = {
    "beans": Decimal("12.50"),
    "grinder": Decimal("89.00"),
    "filter": Decimal("4.25"),
    "kettle": Decimal("39.90"),
    "mug": Decimal("8.00"),
}

_BASKETS: Sequence[tuple[str, dict[str, int]]] = [
    ("alice", {"beans": 2, "grinder": 1}),
    ("bob", {"kettle": 1}),
    ("alice", {"filter": 3}),
    ("carol", {"mug": 4, "beans": 1}),
    ("alice", {"mug": 2}),
    ("bob", {"beans": 1, "filter": 1}),
    ("alice", {"kettle": 1, "mug": 1}),
]


def _items(basket: dict[str, int]) -> tuple[LineItem, ...]:
    return tuple(LineItem(sku, qty, _CATALOGUE[sku]) for sku, qty in basket.items())


def _describe(view: OrderView) -> str:
    extra = ""
    if view.status is OrderStatus.SHIPPED:
        extra = f" via {view.carrier}"
    elif view.status is OrderStatus.CANCELLED:
        extra = f" ({view.cancel_reason})"
    items = ", ".join(f"{i.quantity} x {i.sku}" for i in view.items)
    return f"{view.order_id}  {view.status.value}{extra}  {items}  total {view.total}"


def _progress_printer(out: TextIO) -> Callable[[int, int], None]:
    live = out.isatty()

    def progress(position: int, head: int) -> None:
        share = 100 if head == 0 else position * 100 // head
        line = f"   rebuilding 'orders': position {position} of {head} ({share}%)"
        if live:
            out.write("\r" + line + ("\n" if position >= head else ""))
            out.flush()
        else:
            out.write(line + "\n")

    return progress


Say = Callable[[str], None]


def tour(app: OrdersApp, out: TextIO) -> None:
    """Place, cancel and ship orders, query the read model, rebuild it, and say what happened."""

    def say(line: str = "") -> None:
        out.write(line + "\n")

    placed = _write(app, say)
    _catch_up(app, say)
    _query(app, say, placed)
    _read_your_write(app, say)
    _rebuild(app, say, out)


def _write(app: OrdersApp, say: Say) -> list[str]:
    published: list[object] = []
    app.events.subscribe(OrderPlaced, published.append)
    say("1. Commands change Order aggregates, which the repository saves as events")
    placed: list[str] = []
    for customer, basket in _BASKETS:
        order_id = app.commands.execute(PlaceOrder(customer, _items(basket)))
        placed.append(order_id)
        items = ", ".join(f"{qty} x {sku}" for sku, qty in basket.items())
        say(f"   PlaceOrder {customer:<5}  {items:<22} -> {order_id}")
    app.commands.execute(CancelOrder(placed[2], "ordered twice"))
    say(f"   CancelOrder {placed[2]} (ordered twice)")
    for order_id, carrier in ((placed[0], "DHL"), (placed[1], "UPS"), (placed[3], "DHL")):
        app.commands.execute(ShipOrder(order_id, carrier))
        say(f"   ShipOrder {order_id} via {carrier}")
    for command in (CancelOrder(placed[0], "too late"), ShipOrder(placed[0], "UPS")):
        try:
            app.commands.execute(command)
        except OrderError as exc:
            say(f"   {type(command).__name__} {placed[0]} refused: {exc}")
    say(f"   the event bus got {len(published)} OrderPlaced events as they were saved")
    say("")
    return placed


def _catch_up(app: OrdersApp, say: Say) -> None:
    say("2. The projection keeps the read model up to date, from a checkpoint")
    say(f"   lag before it runs: {app.runner.lag()} positions behind the store")
    handled = app.runner.run_until_caught_up()
    say(f"   caught up: {handled} events handled, lag now {app.runner.lag()}")
    say("")


def _query(app: OrdersApp, say: Say, placed: list[str]) -> None:
    say("3. Queries read the read model")
    view = app.queries.execute(GetOrder(placed[0]))
    assert view is not None
    say(f"   GetOrder: {_describe(view)}")
    page = app.queries.execute(ListOrders("alice", limit=2))
    number = 1
    while True:
        say(f"   ListOrders(alice, limit=2), page {number}:")
        for order in page.orders:
            say(f"     {_describe(order)}")
        if page.next_cursor is None:
            break
        page = app.queries.execute(ListOrders("alice", limit=2, cursor=page.next_cursor))
        number += 1
    cancelled = app.queries.execute(ListOrders("alice", status=OrderStatus.CANCELLED))
    say(f"   ListOrders(alice, status=cancelled): {[o.order_id for o in cancelled.orders]}")
    say("")


def _read_your_write(app: OrdersApp, say: Say) -> None:
    say("4. With the projection on a thread, wait_for() reads your own write")
    with app.runner.running():
        order_id = app.commands.execute(PlaceOrder("dave", _items({"beans": 1})))
        head = app.store.head_position()
        app.runner.wait_for(head, timeout=10)
        view = app.queries.execute(GetOrder(order_id))
        assert view is not None
        say(f"   PlaceOrder dave -> {order_id}; wait_for({head}) returned")
        say(f"   GetOrder: {_describe(view)}")
    say("")


def _rebuild(app: OrdersApp, say: Say, out: TextIO) -> None:
    say("5. Rebuild the read model from the first event")
    before = app.read_model.rows()
    app.runner.rebuild(progress=_progress_printer(out))
    after = app.read_model.rows()
    same = "yes" if before == after else "NO"
    say(f"   identical to the read model before the rebuild: {same} ({len(after)} orders)")


def _database(value: str) -> Path | str:
    if is_dsn(value):
        return value
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{value} is a folder; give a file in it, such as {path / 'orders.db'}"
        )
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(
            f"the folder of {value} does not exist; create it or give another path"
        )
    return path


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the tour on a temporary database, or on the file given, which is kept."""
    parser = argparse.ArgumentParser(
        prog="python -m busway.demo",
        description="Place, cancel and ship orders; query and rebuild the read model.",
    )
    parser.add_argument(
        "path",
        nargs="?",
        type=_database,
        metavar="PATH | DSN",
        help="the SQLite file to use, created if missing and kept afterwards (default: a new "
        "file in a temporary directory, removed at the end); or a PostgreSQL DSN, "
        "postgresql://user@host/database",
    )
    parser.add_argument(
        "--schema",
        default="busway_demo",
        help="with a DSN, the schema to keep the tables in, made on first use and kept "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)
    stream = sys.stdout if out is None else out
    with contextlib.ExitStack() as stack:
        if args.path is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="busway-demo-"))
            path: Path | str = Path(folder) / "orders.db"
        else:
            path = args.path
        try:
            app = stack.enter_context(OrdersApp(path, schema=args.schema, batch_size=4))
            where = "PostgreSQL" if is_dsn(app.path) else "one SQLite file"
            stream.write(f"busway orders demo, on {where}: {app.location}\n\n")
            tour(app, stream)
        except (InvalidArgumentError, StoreFormatError, StoreUnavailableError) as exc:
            parser.error(str(exc))
    if args.path is None:
        stream.write(
            "\ndone. The file was temporary and is removed; to keep one, give its path:\n"
            f"    {parser.prog} orders.db\n"
        )
    else:
        stream.write(
            f"\ndone. The events, snapshots and read model are in {app.location}; "
            "run again to add to them.\n"
        )
    return 0
