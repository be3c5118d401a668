"""Book four orders through the booking saga: ``python -m examples.booking``.

The sagas live in an SQLite file in a temporary directory; the clock is a FakeClock, so
the payment deadline can pass without waiting a quarter of an hour. A real worker would
use the default system clock and ``manager.background()`` to fire deadlines.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from busway import CommandBus, EventBus
from busway.clock import FakeClock
from busway.sagas import SagaManager, SQLiteSagaStore

from .messages import OrderPlaced
from .saga import PAYMENT_TIMEOUT, Booking
from .services import Services

__all__ = ["main"]


def run(directory: Path, say: Callable[[str], object] = print) -> dict[str, str]:
    """Book the four orders with sagas stored under *directory*; return each order's fate."""
    commands = CommandBus()
    events = EventBus()
    clock = FakeClock()
    services = Services(
        commands, events, say, stock={"kettle": 5, "mug": 2}, card_limit=Decimal("100.00")
    )
    services.unanswered.add("pay-order-3")
    path = directory / "sagas.db"

    manager = SagaManager(Booking, store=SQLiteSagaStore(path), commands=commands, clock=clock)
    attachment = manager.attach(events)

    say("order-1: a kettle, paid and shipped")
    events.publish(OrderPlaced("order-1", "kettle", 1, Decimal("39.90")))
    say("order-2: four kettles, over the card's limit")
    events.publish(OrderPlaced("order-2", "kettle", 4, Decimal("159.60")))
    say("order-3: a mug, whose payment never comes")
    events.publish(OrderPlaced("order-3", "mug", 1, Decimal("8.00")))
    say("order-4: two mugs, when one is left")
    events.publish(OrderPlaced("order-4", "mug", 2, Decimal("16.00")))
    [waiting] = manager.find(Booking, "order_id", "order-3")
    say(f"order-3 is at step {waiting.step!r}; the worker stops")
    attachment.detach()
    manager.store.close()

    minutes = PAYMENT_TIMEOUT // timedelta(minutes=1)
    say(f"{minutes} minutes later, a new worker opens the same saga store")
    clock.advance(PAYMENT_TIMEOUT)
    manager = SagaManager(Booking, store=SQLiteSagaStore(path), commands=commands, clock=clock)
    with manager.attach(events):
        manager.recover()
        fired = manager.fire_due()
        left = manager.find(Booking, "order_id", "order-3")
        say(f"{fired} deadline fired; bookings left for order-3: {len(left)}")
    manager.store.close()
    say(f"stock left: {services.stock}")
    return services.orders


def main() -> int:
    """Run the example in a fresh temporary directory and print what happens."""
    with tempfile.TemporaryDirectory(prefix="busway-booking-") as directory:
        orders = run(Path(directory))
    for order_id, fate in sorted(orders.items()):
        print(f"{order_id}: {fate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
