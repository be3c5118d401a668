"""Stand-ins for the warehouse, the payment provider, shipping and the order desk.

Each handles its commands on the command bus and reports what happened on the event bus,
as real services would through their own APIs.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from busway import CommandBus, EventBus

from .messages import (
    ChargePayment,
    ConfirmOrder,
    OrderShipped,
    PaymentCharged,
    RejectOrder,
    ReleaseStock,
    ReserveStock,
    ShipOrder,
    StockReserved,
)


class OutOfStock(Exception):
    """The warehouse has fewer items than asked for."""


class PaymentDeclined(Exception):
    """The payment provider refused the charge."""


class Services:
    """The four services, wired to a command bus and reporting to an event bus."""

    def __init__(
        self,
        commands: CommandBus,
        events: EventBus,
        say: Callable[[str], object],
        *,
        stock: dict[str, int],
        card_limit: Decimal,
    ) -> None:
        self.events = events
        self.say = say
        self.stock = dict(stock)
        self.reserved: dict[str, tuple[str, int]] = {}
        self.card_limit = card_limit
        self.unanswered: set[str] = set()  # payments the provider never confirms
        self.orders: dict[str, str] = {}
        commands.register(ReserveStock, self.reserve)
        commands.register(ReleaseStock, self.release)
        commands.register(ChargePayment, self.charge)
        commands.register(ShipOrder, self.ship)
        commands.register(ConfirmOrder, self.confirm)
        commands.register(RejectOrder, self.reject)

    def reserve(self, command: ReserveStock) -> None:
        if command.order_id in self.reserved:  # commands may come twice: be idempotent
            return
        left = self.stock.get(command.item, 0)
        if left < command.quantity:
            raise OutOfStock(f"only {left} x {command.item} left")
        self.stock[command.item] = left - command.quantity
        self.reserved[command.order_id] = (command.item, command.quantity)
        self.say(f"  [warehouse] reserved {command.quantity} x {command.item}")
        self.events.publish(StockReserved(command.order_id))

    def release(self, command: ReleaseStock) -> None:
        item, quantity = self.reserved.pop(command.order_id, ("", 0))
        if quantity:
            self.stock[item] += quantity
            self.say(f"  [warehouse] released {quantity} x {item}")

    def charge(self, command: ChargePayment) -> None:
        if command.amount > self.card_limit:
            self.say(f"  [payments] declined {command.amount}")
            raise PaymentDeclined(f"{command.amount} is over the card's limit")
        if command.payment_id in self.unanswered:
            self.say(f"  [payments] {command.payment_id} is pending at the provider")
            return
        self.say(f"  [payments] charged {command.amount}")
        self.events.publish(PaymentCharged(command.payment_id))

    def ship(self, command: ShipOrder) -> None:
        self.say(f"  [shipping] shipped {command.order_id}")
        self.events.publish(OrderShipped(command.order_id))

    def confirm(self, command: ConfirmOrder) -> None:
        self.orders[command.order_id] = "confirmed"
        self.say(f"  [orders] {command.order_id} confirmed")

    def reject(self, command: RejectOrder) -> None:
        self.orders[command.order_id] = "rejected"
        self.say(f"  [orders] {command.order_id} rejected: {command.reason}")
