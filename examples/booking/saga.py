"""The booking saga: one instance per order, from the order to its shipment or rejection."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs

from busway.sagas import Saga, compensates, handles, on_deadline, starts

from .messages import (
    ChargePayment,
    ConfirmOrder,
    OrderPlaced,
    OrderShipped,
    PaymentCharged,
    PaymentOverdue,
    RejectOrder,
    ReleaseStock,
    ReserveStock,
    ShipOrder,
    StockReserved,
)

PAYMENT_TIMEOUT = timedelta(minutes=15)


@attrs.define
class Booking(Saga):
    """Reserve the stock, charge the payment, ship; undo the reservation if payment fails."""

    order_id: str = ""
    amount: Decimal = Decimal(0)
    step: str = "reserving"

    @starts(OrderPlaced, key="order_id")
    def placed(self, event: OrderPlaced) -> None:
        self.order_id, self.amount = event.order_id, event.amount
        self.send(ReserveStock(event.order_id, event.item, event.quantity))

    @handles(StockReserved, key="order_id")
    def reserved(self, event: StockReserved) -> None:
        payment_id = f"pay-{self.order_id}"
        self.associate_with("payment_id", payment_id)  # PaymentCharged carries only this id
        self.step = "charging"
        self.schedule(PAYMENT_TIMEOUT, PaymentOverdue(payment_id))
        self.send(ChargePayment(payment_id, self.amount))

    @handles(PaymentCharged, key="payment_id")
    def charged(self, event: PaymentCharged) -> None:
        self.cancel_deadline(PaymentOverdue)
        self.step = "shipping"
        self.send(ShipOrder(self.order_id))

    @handles(OrderShipped, key="order_id")
    def shipped(self, event: OrderShipped) -> None:
        self.step = "shipped"
        self.send(ConfirmOrder(self.order_id))
        self.end()

    @compensates(ReserveStock)
    def out_of_stock(self, command: ReserveStock, error: Exception) -> None:
        self.step = "rejected"
        self.send(RejectOrder(self.order_id, str(error)))
        self.end()

    @compensates(ChargePayment)
    def payment_failed(self, command: ChargePayment, error: Exception) -> None:
        self._undo(f"payment failed: {error}")

    @on_deadline(PaymentOverdue)
    def payment_overdue(self, deadline: PaymentOverdue) -> None:
        self._undo(f"no payment within {PAYMENT_TIMEOUT // timedelta(minutes=1)} minutes")

    def _undo(self, reason: str) -> None:
        self.step = "rejected"
        self.send(ReleaseStock(self.order_id))
        self.send(RejectOrder(self.order_id, reason))
        self.end()
