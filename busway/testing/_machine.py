"""A hypothesis state machine that checks an aggregate against its own event history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from hypothesis.stateful import RuleBasedStateMachine, invariant

from ..aggregates import Aggregate, InMemorySnapshotStore, Repository
from ..eventstore import EventTypes, InMemoryEventStore
from ._diff import ScenarioError, field_diff, short

__all__ = ["AggregateMachine"]

A = TypeVar("A", bound=Aggregate)


def _state(aggregate: Aggregate) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending"}


def _same_state(expected: Aggregate, actual: Aggregate, what: str) -> None:
    mine, theirs = _state(expected), _state(actual)
    if mine != theirs:
        lines = "\n".join(f"  {line}" for line in field_diff(mine, theirs))
        raise AssertionError(f"{what}:\n{lines}")


class AggregateMachine(RuleBasedStateMachine, Generic[A]):
    """A ``RuleBasedStateMachine`` for one aggregate, with busway's checks after every step.

    Subclass it with the store's ``types`` and the errors by which the domain refuses a
    command (``refused``); create the aggregate in an ``@initialize`` rule with
    :meth:`create`, and call commands in ``@rule`` methods with :meth:`attempt`. Each saved
    event must survive the serializer; the aggregate reloaded from the store, from a
    snapshot, and by a full replay must all equal the live one; a refused command must
    change nothing; and :meth:`check_aggregate`, which you may override, must pass. Run it with
    ``TestOrder = OrderMachine.TestCase``.
    """

    types: ClassVar[EventTypes]
    """The registry of the aggregate's event classes, as the application's store has it."""

    refused: ClassVar[tuple[type[BaseException], ...]] = ()
    """The errors by which the aggregate refuses a command; any other error fails the test."""

    store: InMemoryEventStore
    snapshots: InMemorySnapshotStore

    def __init__(self) -> None:
        super().__init__()
        types = getattr(type(self), "types", None)
        if not isinstance(types, EventTypes):
            raise ScenarioError(
                f"{type(self).__qualname__} needs the aggregate's event classes: set "
                "types = EventTypes(...) in the class body"
            )
        self.store = InMemoryEventStore(types=types)
        self.snapshots = InMemorySnapshotStore()
        self._aggregate: A | None = None
        self._unchecked: list[object] = []
        self._with_snapshots: Repository[A] | None = None
        self._replayed: Repository[A] | None = None

    @property
    def aggregate(self) -> A:
        """The live aggregate, as the commands left it."""
        if self._aggregate is None:
            raise ScenarioError(
                f"{type(self).__qualname__} has no aggregate yet: create one with "
                "self.create(...) in an @initialize rule"
            )
        return self._aggregate

    @property
    def created(self) -> bool:
        """Whether :meth:`create` made an aggregate (the domain may have refused)."""
        return self._aggregate is not None

    def create(self, make: Callable[[], A]) -> A | None:
        """Create the aggregate with *make* and save its first events; ``None`` if refused."""
        if self._aggregate is not None:
            raise ScenarioError(
                f"{type(self).__qualname__} already has an aggregate; call create() once, "
                "in an @initialize rule"
            )
        try:
            aggregate = make()
        except self.refused:
            return None
        if not isinstance(aggregate, Aggregate):
            raise ScenarioError(
                f"create() takes a function that returns an Aggregate, not {aggregate!r}"
            )
        cls = type(aggregate)
        self._with_snapshots = Repository(
            self.store, cls, snapshot_every=1, snapshots=self.snapshots
        )
        self._replayed = Repository(self.store, cls)
        self._aggregate = aggregate
        self._save()
        return aggregate

    def attempt(self, command: Callable[[A], object]) -> bool:
        """Run *command* on the aggregate and save what it records; ``False`` if refused.

        Without an aggregate (its creation was refused) it does nothing and returns False.
        """
        aggregate = self._aggregate
        if aggregate is None:
            return False
        before = _state(aggregate)
        try:
            command(aggregate)
        except self.refused as exc:
            if aggregate.pending_events:
                raise AssertionError(
                    f"the command was refused ({type(exc).__qualname__}: {exc}), but the "
                    f"aggregate recorded {short(list(aggregate.pending_events))} first"
                ) from exc
            if before != _state(aggregate):
                lines = "\n".join(f"  {line}" for line in field_diff(before, _state(aggregate)))
                raise AssertionError(
                    f"the command was refused ({type(exc).__qualname__}: {exc}), but it changed "
                    f"the aggregate's state outside @when methods:\n{lines}"
                ) from exc
            return False
        self._save()
        return True

    def _save(self) -> None:
        aggregate = self.aggregate
        assert self._with_snapshots is not None
        self._unchecked.extend(aggregate.pending_events)
        self._with_snapshots.save(aggregate)

    def check_aggregate(self, aggregate: A) -> None:
        """Check the domain's own rules on the live aggregate; override it (assert freely)."""

    @invariant()
    def busway_checks(self) -> None:
        """Events round-trip; store, snapshot and replay agree with the live aggregate."""
        aggregate = self._aggregate
        if aggregate is None:
            return
        assert self._with_snapshots is not None
        assert self._replayed is not None
        for event in self._unchecked:
            name, version, payload = self.types.encode(event)
            back = self.types.decode(name, version, payload, position=0)
            if back != event:
                raise AssertionError(
                    f"{type(event).__qualname__} does not survive serialization: stored as "
                    f"{payload}, it reads back as {short(back)}, not {short(event)}"
                )
        self._unchecked.clear()
        replayed = self._replayed.get(aggregate.id)
        _same_state(aggregate, replayed, "replaying the stored events gives another state")
        _same_state(
            replayed,
            self._with_snapshots.get(aggregate.id),
            "loading from the latest snapshot gives another state than a full replay",
        )
        self.check_aggregate(aggregate)

    def teardown(self) -> None:
        """Close the stores the run used."""
        self.store.close()
        self.snapshots.close()
