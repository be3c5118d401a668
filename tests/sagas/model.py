"""Messages and sagas the saga tests run: a small booking, and a tracker for properties."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import attrs

from busway import Command, CommandBus, Event
from busway.sagas import Saga, compensates, handles, on_deadline, starts


@attrs.frozen
class OrderPlaced(Event):
    order_id: str
    amount: int = 10


@attrs.frozen
class StockReserved(Event):
    order_id: str


@attrs.frozen
class PaymentCharged(Event):
    payment_id: str


@attrs.frozen
class OrderCancelled(Event):
    order_id: str


@attrs.frozen
class ReserveStock(Command[None]):
    order_id: str


@attrs.frozen
class ReleaseStock(Command[None]):
    order_id: str


@attrs.frozen
class ChargePayment(Command[None]):
    payment_id: str
    amount: int


@attrs.frozen
class ShipOrder(Command[None]):
    order_id: str


@attrs.frozen
class RejectOrder(Command[None]):
    order_id: str
    reason: str


@attrs.frozen
class PaymentOverdue:
    payment_id: str


@attrs.define
class Booking(Saga):
    """Reserve, charge, ship; release and reject when the payment fails or is overdue."""

    order_id: str = ""
    amount: int = 0
    step: str = "new"

    @starts(OrderPlaced, key="order_id")
    def placed(self, event: OrderPlaced) -> None:
        self.order_id, self.amount, self.step = event.order_id, event.amount, "reserving"
        self.send(ReserveStock(event.order_id))

    @handles(StockReserved, key="order_id")
    def reserved(self, event: StockReserved) -> None:
        payment_id = f"pay-{self.order_id}"
        self.associate_with("payment_id", payment_id)
        self.step = "charging"
        self.schedule(timedelta(minutes=15), PaymentOverdue(payment_id))
        self.send(ChargePayment(payment_id, self.amount))

    @handles(PaymentCharged, key="payment_id")
    def charged(self, event: PaymentCharged) -> None:
        self.cancel_deadline(PaymentOverdue)
        self.step = "shipped"
        self.send(ShipOrder(self.order_id))
        self.end()

    @handles(OrderCancelled, key="order_id")
    def cancelled(self, event: OrderCancelled) -> None:
        self.reject("cancelled")

    @compensates(ChargePayment)
    def declined(self, command: ChargePayment, error: Exception) -> None:
        self.reject(f"declined: {error}")

    @on_deadline(PaymentOverdue)
    def overdue(self, deadline: PaymentOverdue) -> None:
        self.reject("overdue")

    def reject(self, reason: str) -> None:
        self.step = "rejected"
        self.send(ReleaseStock(self.order_id))
        self.send(RejectOrder(self.order_id, reason))
        self.end()


class Declined(Exception):
    """The payment service refused a charge."""


@attrs.define
class Services:
    """Command handlers that record what they are told; they publish nothing themselves."""

    commands: CommandBus = attrs.field(factory=CommandBus)
    executed: list[object] = attrs.field(factory=list)
    decline_over: int = 100
    before: Callable[[object], object] = lambda command: None
    """Called with each command before it is carried out; a test may make it raise."""

    def __attrs_post_init__(self) -> None:
        for command_type in (ReserveStock, ReleaseStock, ShipOrder, RejectOrder):
            self.commands.register(command_type, self.record)
        self.commands.register(ChargePayment, self.charge)

    def record(self, command: object) -> None:
        self.before(command)
        self.executed.append(command)

    def charge(self, command: ChargePayment) -> None:
        self.record(command)
        if command.amount > self.decline_over:
            raise Declined(f"{command.amount} is too much")


# -- for property tests: a saga per key that records every step it sees -------------------


@attrs.frozen
class Opened(Event):
    key: str


@attrs.frozen
class Stepped(Event):
    key: str
    n: int


@attrs.frozen
class Closed(Event):
    key: str


@attrs.frozen
class Record(Command[None]):
    key: str
    n: int


@attrs.frozen
class Tick:
    n: int


@attrs.define
class Tracker(Saga):
    """Records each step of its key in order, schedules ticks, and ends when closed."""

    key: str = ""
    seen: list[int] = attrs.field(factory=list)

    @starts(Opened, key="key")
    def opened(self, event: Opened) -> None:
        self.key = event.key

    @handles(Stepped, key="key")
    def stepped(self, event: Stepped) -> None:
        self.seen.append(event.n)
        self.send(Record(self.key, event.n))

    @handles(Closed, key="key")
    def closed(self, event: Closed) -> None:
        self.end()

    @on_deadline(Tick)
    def ticked(self, tick: Tick) -> None:
        self.send(Record(self.key, -tick.n))


def recorder() -> tuple[CommandBus, list[Record]]:
    """Return a command bus that records Record commands, and the list it records into."""
    recorded: list[Record] = []
    commands = CommandBus()
    commands.register(Record, recorded.append)
    return commands, recorded


def keys(n: int) -> Iterator[str]:
    return (f"k{i}" for i in range(n))
