"""The booking's messages: what the services are told (commands) and what they report."""

from __future__ import annotations

from decimal import Decimal

import attrs

from busway import Command, Event


@attrs.frozen
class OrderPlaced(Event):
    order_id: str
    item: str
    quantity: int
    amount: Decimal


@attrs.frozen
class ReserveStock(Command[None]):
    order_id: str
    item: str
    quantity: int


@attrs.frozen
class StockReserved(Event):
    order_id: str


@attrs.frozen
class ReleaseStock(Command[None]):
    order_id: str


@attrs.frozen
class ChargePayment(Command[None]):
    payment_id: str
    amount: Decimal


@attrs.frozen
class PaymentCharged(Event):
    payment_id: str


@attrs.frozen
class ShipOrder(Command[None]):
    order_id: str


@attrs.frozen
class OrderShipped(Event):
    order_id: str


@attrs.frozen
class ConfirmOrder(Command[None]):
    order_id: str


@attrs.frozen
class RejectOrder(Command[None]):
    order_id: str
    reason: str


@attrs.frozen
class PaymentOverdue:
    """The deadline a booking sets itself when it asks for a payment."""

    payment_id: str
