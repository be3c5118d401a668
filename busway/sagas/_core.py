"""The saga manager's logic, free of I/O: flows that yield effects for a driver to perform.

Every operation of a manager (handle an event, catch up with an event store, fire due
deadlines, send what a crash left in the outboxes) is a generator. It yields an effect —
take the manager's lock, find, load, commit, read a page of events, send a command — and
gets the result back, or has the failure thrown in. The sync manager runs these flows with
:func:`busway._effects.run`, the async one with :func:`~busway._effects.arun`; neither
repeats any of the logic here.

The delivery guarantee comes from the order of effects. A saga's new state, and the
commands it issued, are committed together (the commands wait in the saga's outbox); only
then is each command sent, and once it is settled (sent, or failed and compensated) it
leaves the outbox in a second commit. A crash between the two leaves it there, and
:meth:`Core.recover` sends it again: commands are issued at least once. After a step, a
worker sends only the commands that step issued: older ones in the outbox are on their way
from the worker whose step issued them (or were left by a crash, for ``recover``).

A manager runs one operation at a time (:meth:`Core.exclusive`). An event that arrives
while it works — published, say, by the handler of a command the manager is sending —
waits in a queue and is handled once the current operation is done, so a saga never sees
an event in the middle of its own step. That holds for events from any thread or task:
the one doing the work handles them before it lets go of the lock, and the publisher does
not wait, so a command handler may wait for a thread that publishes the reply. Other
operations (firing deadlines, catching up) wait their turn on the lock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Final, TypeAlias, TypeVar, final

import attrs

from ..clock import Clock
from ..errors import (
    InvalidArgumentError,
    RegistrationError,
    SagaConcurrencyError,
    SagaDefinitionError,
    SagaError,
    SerializationError,
    UnknownEventTypeError,
)
from ..eventstore import EventTypes
from ..subscriptions import Advance
from ._saga import Route, Run, Saga, SagaSpec, association_key, association_value
from ._store import Deadline, SagaRecord, SagaStore, StoredMessage, Write

__all__ = ["Acquire", "Commit", "Core", "Effect", "Find", "Flow", "Load", "Send", "group"]

logger = logging.getLogger("busway.sagas")

T = TypeVar("T")
S = TypeVar("S", bound=Saga)

#: How often a flow reloads and retries after another writer changed a saga under it.
ATTEMPTS: Final = 5

#: How many stored events a catch-up reads at a time.
PAGE: Final = 500


# -- effects ---------------------------------------------------------------------------------


@attrs.frozen
class Find:
    saga_type: str
    key: str
    value: str

    def perform(self, store: SagaStore) -> list[SagaRecord]:
        return store.find(self.saga_type, self.key, self.value)


@attrs.frozen
class Load:
    saga_id: str

    def perform(self, store: SagaStore) -> SagaRecord | None:
        return store.load(self.saga_id)


@attrs.frozen
class Commit:
    writes: tuple[Write, ...]
    checkpoint: Advance | None = None

    def perform(self, store: SagaStore) -> None:
        store.commit(self.writes, checkpoint=self.checkpoint)


@attrs.frozen
class Pending:
    def perform(self, store: SagaStore) -> list[SagaRecord]:
        return store.pending()


@attrs.frozen
class Due:
    now: datetime

    def perform(self, store: SagaStore) -> list[SagaRecord]:
        return store.due(self.now)


@attrs.frozen
class Checkpoint:
    name: str

    def perform(self, store: SagaStore) -> int:
        return store.checkpoint(self.name)


@attrs.frozen
class Send:
    """Execute a command on the manager's command bus."""

    command: object


@attrs.frozen
class Acquire:
    """Take the manager's lock; the result is the function that releases it."""


StoreEffect: TypeAlias = Find | Load | Commit | Pending | Due | Checkpoint
Effect: TypeAlias = StoreEffect | Send | Acquire
Flow: TypeAlias = Generator[Effect, Any, T]


def group(errors: Sequence[Exception], what: str) -> Exception:
    """Return the one error, or an ExceptionGroup of several."""
    if len(errors) == 1:
        return errors[0]
    return ExceptionGroup(f"{len(errors)} failures while {what}", list(errors))


def _raise_all(errors: Sequence[Exception], what: str) -> None:
    """Raise the one error, or an ExceptionGroup of several, or nothing."""
    if errors:
        raise group(errors, what)


_working: ContextVar[tuple[object, ...]] = ContextVar("busway_saga_working", default=())


@contextlib.contextmanager
def _turn_of(core: object) -> Iterator[None]:
    token = _working.set((*_working.get(), core))
    try:
        yield
    finally:
        _working.reset(token)


_NOTHING: Final = object()


@final
class _Inbox:
    """Whether a manager runs an operation now, and the events that came meanwhile.

    Its lock guards only these two, for a few instructions and never across I/O, so any
    thread or task may take it: deciding to queue an event and deciding that nothing is left
    to handle are one step each, and no event is left behind between them.
    """

    __slots__ = ("_busy", "_events", "_guard")

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._events: deque[object] = deque()
        self._busy = False

    def offer(self, event: object) -> bool:
        """Queue *event* for the operation that runs, if one does; return whether it did."""
        with self._guard:
            if self._busy:
                self._events.append(event)
            return self._busy

    def open(self) -> None:
        with self._guard:
            self._busy = True

    def next(self) -> object:
        """Return the next queued event, or ``_NOTHING`` and mark the operation done."""
        with self._guard:
            if self._events:
                return self._events.popleft()
            self._busy = False
            return _NOTHING

    def close(self) -> None:
        with self._guard:
            self._busy = False


@attrs.frozen
class _Step:
    """What one call of a saga method produced: the write, and the commands it issued."""

    write: Write
    issued: frozenset[str]


@attrs.frozen
class _Settled:
    record: SagaRecord | None
    errors: tuple[Exception, ...] = ()
    issued: frozenset[str] = frozenset()  # by the compensation that settled it


# -- the core --------------------------------------------------------------------------------


class Core:
    """Everything a saga manager decides, for the sagas it runs."""

    def __init__(
        self,
        sagas: Iterable[type[Saga]],
        *,
        types: EventTypes,
        clock: Clock,
        command_types: Callable[[], Iterable[type]],
    ) -> None:
        self.types = types
        self.clock = clock
        self._command_types = command_types
        self._inbox = _Inbox()
        self.specs: tuple[SagaSpec, ...] = tuple(SagaSpec.of(cls) for cls in sagas)
        if not self.specs:
            raise SagaDefinitionError(
                None, "list is empty: give the manager at least one saga class"
            )
        self._by_class: dict[type, SagaSpec] = {}
        for spec in self.specs:
            if spec.cls in self._by_class:
                raise SagaDefinitionError(spec.cls, "is given to the manager twice")
            self._by_class[spec.cls] = spec
            for cls in (spec.cls, *spec.deadlines, *spec.compensations):
                self._learn(cls)
        self._by_name = {self.types.name_of(spec.cls): spec for spec in self.specs}

    def event_types(self) -> tuple[type, ...]:
        """Every event class some saga starts on or handles, each once, in saga order."""
        return tuple(dict.fromkeys(t for spec in self.specs for t in spec.event_types()))

    # -- serialization -------------------------------------------------------------------

    def _learn(self, cls: type) -> None:
        if cls not in self.types:
            self.types.add(cls)

    def encode(self, message: object) -> StoredMessage:
        """Return *message* stored under a fresh id; register its class on first sight."""
        try:
            self._learn(type(message))
        except RegistrationError as exc:
            raise SagaError(
                f"cannot store {type(message).__qualname__}: {exc}. Register it in the "
                "manager's types under a name of its own: types.add(cls, name=...)"
            ) from exc
        name, version, data = self.types.encode(message)
        return StoredMessage(uuid.uuid4().hex, name, version, data)

    def decode(self, stored: StoredMessage, saga_id: str, where: str) -> object:
        """Return the command (*where* is "outbox") or deadline message saga *saga_id* stored."""
        if stored.type not in self.types:
            # Commands are registered when first sent; after a restart, the command bus
            # knows which classes it can execute, and only those are looked up by name.
            for cls in self._command_types():
                if cls not in self.types and cls.__name__ not in self.types:
                    self.types.add(cls)
        return self._decode(stored.type, stored.schema_version, stored.data, saga_id, where)

    def _decode(self, name: str, version: int, data: str, saga_id: str, where: str) -> object:
        """Decode what saga *saga_id* stored in its *where* (state, outbox, deadlines)."""
        try:
            return self.types.decode(name, version, data, position=0)
        except UnknownEventTypeError as exc:
            exc.args = (
                f"saga {saga_id!r} holds a {name!r}, which is not registered in the saga "
                f"manager's types (registered: {', '.join(exc.known) or 'none'}); register "
                f"the class with types.add(cls, name={name!r}), or give the command bus a "
                "handler for it",
            )
            raise
        except SerializationError as exc:
            raise SerializationError(
                f"saga {saga_id!r} holds a {name!r} (schema version {version}) in its {where} "
                f"that cannot be decoded: {str(exc).partition(': ')[2] or exc}. If its class "
                "changed since, register an upcaster for it (@types.upcaster); if the stored "
                "data was damaged, restore it from a backup",
                type_name=name,
                field=where,
            ) from exc

    def spec_of(self, record: SagaRecord) -> SagaSpec | None:
        return self._by_name.get(record.saga_type)

    def state_of(self, spec: SagaSpec, record: SagaRecord) -> Saga:
        saga = self._decode(
            record.saga_type, record.schema_version, record.state, record.saga_id, "state"
        )
        if not isinstance(saga, spec.cls):
            raise SagaError(
                f"saga {record.saga_id!r} decodes to a {type(saga).__qualname__}, not a "
                f"{spec.cls.__qualname__}; two classes share the name {record.saga_type!r}"
            )
        return saga

    def name_of(self, saga_class: type) -> str:
        if saga_class not in self._by_class:
            known = ", ".join(s.cls.__qualname__ for s in self.specs)
            raise SagaError(
                f"{saga_class.__qualname__} is not run by this manager (it runs: {known}); "
                "give it to the manager"
            )
        return self.types.name_of(saga_class)

    # -- one call of a saga method -------------------------------------------------------

    def apply(
        self,
        spec: SagaSpec,
        record: SagaRecord | None,
        method: Callable[..., Any],
        args: tuple[object, ...],
        *,
        associate: tuple[str, str] | None = None,
        settle: str | None = None,
        fire: str | None = None,
    ) -> _Step:
        """Call *method* on the saga of *record* (a new one if None); return its new record.

        *associate* is the association a new saga starts on, which its write claims.
        *settle* names an outbox entry and *fire* a deadline that this call consumes, so
        that their removal is stored with the state the method produced.
        """
        if record is None:
            saga: Saga = spec.cls()
            saga_id, version, ended = uuid.uuid4().hex, 0, False
            associations: frozenset[tuple[str, str]] = frozenset()
            deadlines: tuple[Deadline, ...] = ()
            outbox: tuple[StoredMessage, ...] = ()
        else:
            saga = self.state_of(spec, record)
            saga_id, version, ended = record.saga_id, record.version, record.ended
            associations, deadlines, outbox = (
                record.associations,
                tuple(d for d in record.deadlines if d.id != fire),
                tuple(m for m in record.outbox if m.id != settle),
            )
        if associate is not None:
            associations = associations | {associate}
        run = Run(
            saga_id,
            now=self.clock.now(),
            associations=associations,
            deadlines=deadlines,
            outbox=outbox,
            ended=ended,
            encode=self.encode,
            deadline_name=lambda tp: (
                self.types.name_of(tp) if spec.deadline(tp) is not None else None
            ),
        )
        run.call(saga, method, args)
        name, schema_version, state = self.types.encode(saga)
        write = Write(
            SagaRecord(
                saga_id=saga_id,
                saga_type=name,
                version=version + 1,
                schema_version=schema_version,
                state=state,
                associations=frozenset() if run.ended else frozenset(run.associations),
                deadlines=() if run.ended else tuple(run.deadlines),
                outbox=tuple(run.outbox),
                ended=run.ended,
            ),
            version,
            starts=associate,
        )
        issued = frozenset(m.id for m in run.outbox) - {m.id for m in outbox}
        return _Step(write, issued)

    # -- one operation at a time ---------------------------------------------------------

    def exclusive(self, work: Flow[T]) -> Flow[T]:
        """Run *work* as the manager's one operation, then the events that came meanwhile.

        Inside an operation this context already runs, *work* simply runs. The failures of
        *work* and of the queued events are raised together, once all have run. Events that
        a ``BaseException`` (an interrupt, a cancellation) left in the queue are handled by
        the next operation.
        """
        if self in _working.get():
            return (yield from work)
        release: Callable[[], object] = yield Acquire()
        results: list[T] = []
        errors: list[Exception] = []
        try:
            with _turn_of(self):
                self._inbox.open()
                try:
                    results.append((yield from work))
                except Exception as exc:
                    errors.append(exc)
                while (event := self._inbox.next()) is not _NOTHING:
                    try:
                        yield from self.handle(event)
                    except Exception as exc:
                        errors.append(exc)
        finally:
            self._inbox.close()
            release()
        _raise_all(errors, "running sagas")
        return results[0]

    def receive(self, event: object) -> Flow[bool]:
        """Handle *event* as an operation and return True, or queue it and return False.

        While an operation runs, in this context or any other thread or task, *event* waits
        for it: the worker running it handles it before that operation returns (and raises
        its failures), and this returns at once. So a command handler may wait for a thread
        or task that publishes an event the sagas take.
        """
        if self._inbox.offer(event):
            return False
        yield from self.exclusive(self.handle(event))
        return True

    # -- flows ---------------------------------------------------------------------------

    def handle(self, event: object, checkpoint: Advance | None = None) -> Flow[bool]:
        """Run every saga method *event* routes to, store the results, then send commands.

        Return whether anything was committed: nothing is for an event no saga takes, not
        even the *checkpoint* move, which the caller then stores later. The commands'
        failures are raised once all are sent.
        """
        kept, errors = yield from self.step(event, checkpoint)
        _raise_all(errors, f"sending the commands of sagas for {type(event).__qualname__}")
        return kept

    def step(
        self, event: object, checkpoint: Advance | None = None
    ) -> Flow[tuple[bool, list[Exception]]]:
        """Do what :meth:`handle` does; return whether it committed, and the send failures."""
        steps: list[_Step] = []
        for attempt in range(1, ATTEMPTS + 1):
            steps = []
            for spec in self.specs:
                routed = spec.route(type(event))
                if routed is not None:
                    steps.extend((yield from self._route(spec, *routed, event)))
            if not steps:
                logger.debug(
                    "%s matches no live saga and starts none; ignored", type(event).__qualname__
                )
                return False, []
            try:
                yield Commit(tuple(step.write for step in steps), checkpoint)
            except SagaConcurrencyError:
                # Another worker changed a saga, or started one on this event: route again.
                if attempt == ATTEMPTS:
                    raise
                continue
            break
        errors: list[Exception] = []
        for step in steps:
            errors.extend((yield from self.deliver(step.write.record, step.issued)))
        return True, errors

    def _route(
        self, spec: SagaSpec, route: Route, method: Callable[..., Any], event: object
    ) -> Flow[list[_Step]]:
        assert route.key is not None
        try:
            raw = getattr(event, route.key)
        except AttributeError:
            raise SagaError(
                f"{type(event).__qualname__} has no attribute {route.key!r}, which "
                f"{spec.cls.__qualname__} routes it by; fix the key in @{route.role}"
            ) from None
        if raw is None and route.role == "handles":
            return []
        if raw is None:
            raise SagaError(
                f"{type(event).__qualname__}.{route.key} is None, so it cannot start a "
                f"{spec.cls.__qualname__}: a saga's key needs a value"
            )
        try:
            value = association_value(raw, f"{type(event).__qualname__}.{route.key}")
        except InvalidArgumentError as exc:
            raise SagaError(
                f"{exc.argument} is {raw!r}, of type {type(raw).__qualname__}, so it cannot "
                f"route to a {spec.cls.__qualname__}: a saga's key must be a str, an int or a "
                "UUID; give the event the id of the object instead"
            ) from exc
        name = self.types.name_of(spec.cls)
        records: list[SagaRecord] = yield Find(name, route.key, value)
        if route.role == "starts":
            if records:
                logger.debug(
                    "%s with %s=%r: a %s is already running; duplicate start ignored",
                    type(event).__qualname__,
                    route.key,
                    value,
                    spec.cls.__qualname__,
                )
                return []
            return [self.apply(spec, None, method, (event,), associate=(route.key, value))]
        return [self.apply(spec, record, method, (event,)) for record in records]

    def deliver(
        self, record: SagaRecord, issued: frozenset[str] | None = None
    ) -> Flow[list[Exception]]:
        """Send the commands in *record*'s outbox in order, settling each; return failures.

        Only those whose ids are in *issued*, if given: the commands of the step that
        stored *record*. The others are being sent by the workers whose steps issued them,
        and are left to them (or, if one crashed, to :meth:`recover`), so that no two
        workers send one command. A command that fails goes to the saga's @compensates
        method for its class, if any, which may issue more commands (sent here too);
        otherwise its error is returned.
        """
        mine = None if issued is None else set(issued)
        errors: list[Exception] = []
        current: SagaRecord | None = record
        while current is not None:
            pending = next((m for m in current.outbox if mine is None or m.id in mine), None)
            if pending is None:
                break
            command = self.decode(pending, current.saga_id, "outbox")
            try:
                yield Send(command)
            except Exception as exc:
                settled = yield from self._settle(current, pending, command, exc)
            else:
                settled = yield from self._settle(current, pending, command, None)
            if mine is not None:
                mine.discard(pending.id)
                mine |= settled.issued
            current = settled.record
            errors.extend(settled.errors)
        return errors

    def _settle(
        self,
        record: SagaRecord,
        pending: StoredMessage,
        command: object,
        failure: Exception | None,
    ) -> Flow[_Settled]:
        """Take *pending* out of the outbox, after the compensation its failure calls for."""
        for attempt in range(1, ATTEMPTS + 1):
            if all(m.id != pending.id for m in record.outbox):
                return _Settled(record)  # another worker settled it meanwhile
            spec = self.spec_of(record)
            hook = spec.compensation(type(command)) if spec and failure else None
            errors: tuple[Exception, ...] = () if failure is None or hook else (failure,)
            step = None
            if hook is not None and spec is not None:
                try:
                    step = self.apply(spec, record, hook, (command, failure), settle=pending.id)
                except Exception as exc:
                    errors = (exc,)
            if step is None:
                outbox = tuple(m for m in record.outbox if m.id != pending.id)
                write = Write(
                    attrs.evolve(record, version=record.version + 1, outbox=outbox),
                    record.version,
                )
                step = _Step(write, frozenset())
            try:
                yield Commit((step.write,))
            except SagaConcurrencyError:
                reloaded: SagaRecord | None = yield Load(record.saga_id)
                if reloaded is None or attempt == ATTEMPTS:
                    return _Settled(None, errors)
                record = reloaded
                continue
            return _Settled(step.write.record, errors, step.issued)
        raise AssertionError("unreachable")  # pragma: no cover

    def fire_due(self) -> Flow[int]:
        """Deliver every deadline due now to its saga, once; return how many fired.

        Deadlines that come due while this runs (scheduled by a deadline method with no
        delay, say) wait for the next call, so a call always ends.
        """
        now = self.clock.now()
        records: list[SagaRecord] = yield Due(now)
        due = sorted(
            (deadline.due, r, d, spec, record.saga_id, deadline.id)
            for r, record in enumerate(records)
            if (spec := self.spec_of(record)) is not None  # else another manager's saga
            for d, deadline in enumerate(record.deadlines)
            if deadline.due <= now
        )
        fired = 0
        errors: list[Exception] = []
        for *_, spec, saga_id, deadline_id in due:
            try:
                done, failures = yield from self._fire(spec, saga_id, deadline_id)
            except Exception as exc:
                errors.append(exc)
                continue
            fired += done
            errors.extend(failures)
        _raise_all(errors, "firing deadlines")
        return fired

    def _fire(
        self, spec: SagaSpec, saga_id: str, deadline_id: str
    ) -> Flow[tuple[int, list[Exception]]]:
        for attempt in range(1, ATTEMPTS + 1):
            record: SagaRecord | None = yield Load(saga_id)
            deadline = (
                next((d for d in record.deadlines if d.id == deadline_id), None)
                if record is not None
                else None
            )
            if record is None or deadline is None:
                return 0, []  # fired or cancelled meanwhile
            message = self.decode(deadline.message, saga_id, "deadlines")
            method = spec.deadline(type(message))
            if method is None:
                raise SagaError(
                    f"saga {saga_id!r} has a deadline with a {type(message).__qualname__}, but "
                    f"{spec.cls.__qualname__} has no @on_deadline method for it; add one"
                )
            step = self.apply(spec, record, method, (message,), fire=deadline_id)
            try:
                yield Commit((step.write,))
            except SagaConcurrencyError:
                if attempt == ATTEMPTS:
                    raise
                continue
            return 1, (yield from self.deliver(step.write.record, step.issued))
        raise AssertionError("unreachable")  # pragma: no cover

    def recover(self) -> Flow[int]:
        """Send the commands a stop left in outboxes; return how many sagas had some."""
        records: list[SagaRecord] = yield Pending()
        errors: list[Exception] = []
        count = 0
        for record in records:
            if self.spec_of(record) is None:
                continue
            count += 1
            errors.extend((yield from self.deliver(record)))
        _raise_all(errors, "sending pending saga commands")
        return count

    def find(self, saga_class: type[S], key: str, value: object) -> Flow[list[S]]:
        """Return the state of the live sagas of *saga_class* associated with ``(key, value)``."""
        name = self.name_of(saga_class)
        spec = self._by_class[saga_class]
        records: list[SagaRecord] = yield Find(name, association_key(key), association_value(value))
        found: list[S] = []
        for record in records:
            saga = self.state_of(spec, record)
            assert isinstance(saga, saga_class)
            found.append(saga)
        return found
