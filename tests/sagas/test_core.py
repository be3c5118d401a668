"""The I/O-free core, driven by hand: each effect it yields, answered by the test."""

from __future__ import annotations

import attrs
import pytest

from busway import CommandBus
from busway.clock import FakeClock
from busway.errors import SagaConcurrencyError
from busway.eventstore import EventTypes
from busway.sagas._core import Commit, Core, Find, Load, Send

from .model import Booking, ChargePayment, OrderPlaced, ReserveStock, StockReserved


def core() -> Core:
    return Core(
        [Booking],
        types=EventTypes(),
        clock=FakeClock(),
        command_types=lambda: CommandBus().registered(),
    )


def test_handling_yields_find_commit_then_send() -> None:
    """State is committed with the command in the outbox before the command is sent."""
    flow = core().handle(OrderPlaced("o-1"))
    assert Find("Booking", "order_id", "o-1") == next(flow)
    commit = flow.send([])
    assert isinstance(commit, Commit)
    [write] = commit.writes
    assert (0, ("order_id", "o-1"), 1, ["ReserveStock"]) == (
        write.expected_version,
        write.starts,
        write.record.version,
        [m.type for m in write.record.outbox],
    )
    assert Send(ReserveStock("o-1")) == flow.send(None)
    settle = flow.send(None)
    assert isinstance(settle, Commit)
    assert () == settle.writes[0].record.outbox
    with pytest.raises(StopIteration) as stop:
        flow.send(None)
    assert stop.value.value is True


def test_a_command_settled_meanwhile_is_not_settled_again() -> None:
    """On a conflict while settling, the reloaded record decides: already settled, done."""
    c = core()
    flow = c.handle(OrderPlaced("o-1"))
    next(flow)
    commit = flow.send([])
    assert isinstance(commit, Commit)
    record = commit.writes[0].record
    flow.send(None)  # the commit succeeded; now the Send
    assert isinstance(flow.send(None), Commit)  # sent; settling
    assert Load(record.saga_id) == flow.throw(SagaConcurrencyError(record.saga_id, 1, 2))
    settled_elsewhere = attrs.evolve(record, version=3, outbox=())
    with pytest.raises(StopIteration):
        flow.send(settled_elsewhere)


def test_a_saga_deleted_meanwhile_ends_the_delivery() -> None:
    """If the saga is gone when the settle is retried, nothing more is sent."""
    c = core()
    flow = c.handle(OrderPlaced("o-1", amount=500))
    next(flow)
    record = flow.send([]).writes[0].record  # type: ignore[union-attr]
    flow.send(None)
    flow.send(None)
    assert isinstance(flow.throw(SagaConcurrencyError(record.saga_id, 1, 2)), Load)
    with pytest.raises(StopIteration):
        flow.send(None)


def test_a_failed_command_is_compensated_in_the_settling_commit() -> None:
    """The compensation's state and commands are committed as the failed command leaves."""
    c = core()
    flow = c.handle(OrderPlaced("o-1", amount=500))
    next(flow)
    record = flow.send([]).writes[0].record  # type: ignore[union-attr]
    charge = attrs.evolve(record, outbox=(c.encode(ChargePayment("pay-o-1", 500)),))
    delivery = c.deliver(charge)
    assert Send(ChargePayment("pay-o-1", 500)) == next(delivery)
    settle = delivery.throw(ValueError("declined"))
    assert isinstance(settle, Commit)
    new = settle.writes[0].record
    assert (True, ["ReleaseStock", "RejectOrder"]) == (new.ended, [m.type for m in new.outbox])


def test_a_step_sends_only_the_commands_it_issued() -> None:
    """A command already in the outbox is left to the worker sending it, or to recover()."""
    c = core()
    placing = c.handle(OrderPlaced("o-1"))
    next(placing)
    placed = placing.send([]).writes[0].record  # type: ignore[union-attr]
    flow = c.handle(StockReserved("o-1"))
    assert Find("Booking", "order_id", "o-1") == next(flow)
    commit = flow.send([placed])
    assert isinstance(commit, Commit)
    assert (None, ["ReserveStock", "ChargePayment"]) == (
        commit.writes[0].starts,
        [m.type for m in commit.writes[0].record.outbox],
    )
    assert Send(ChargePayment("pay-o-1", 10)) == flow.send(None)
    settle = flow.send(None)
    assert isinstance(settle, Commit)
    assert ["ReserveStock"] == [m.type for m in settle.writes[0].record.outbox]
    with pytest.raises(StopIteration):
        flow.send(None)
