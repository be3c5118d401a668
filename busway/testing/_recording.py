"""Recording what buses dispatch, and asserting on it with reports that show the difference."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, final

from ._diff import (
    closest,
    diff_sequences,
    field_diff,
    find_subsequence,
    listing,
    match_any_order,
    short,
)

__all__ = ["BusRecorder", "Recorder"]


@final
class Recorder:
    """A middleware that keeps every message its bus dispatches, in dispatch order.

    Add it to any bus, sync or async: ``bus.use(recorder)``. A message is kept when its
    dispatch starts, so one whose handler fails is kept too, and a command is kept before
    the events its handler publishes. *verb* names what the bus does in reports.
    """

    __slots__ = ("messages", "verb")

    verb: str

    def __init__(self, verb: str = "dispatched") -> None:
        self.verb = verb
        self.messages: list[Any] = []

    def __repr__(self) -> str:
        return f"<Recorder {len(self.messages)} {self.verb}>"

    def __call__(self, message: Any, next: Callable[[Any], Any]) -> Any:
        self.messages.append(message)
        return next(message)

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.messages.clear()

    def of_type(self, cls: type[Any]) -> list[Any]:
        """Return the recorded messages that are instances of *cls*, in order."""
        return [m for m in self.messages if isinstance(m, cls)]

    def assert_recorded(
        self, *expected: object, any_order: bool = False, exact: bool = False
    ) -> None:
        """Check that the *expected* messages were recorded; raise AssertionError if not.

        By default they must appear in this order, with any other messages between them.
        With ``any_order=True`` the order does not matter; with ``exact=True`` nothing else
        may have been recorded. Expected messages may be :class:`Like` matchers.
        """
        if not expected and not exact:
            raise TypeError(
                "assert_recorded() needs at least one expected message; to check that none "
                "was recorded, use assert_nothing_recorded()"
            )
        actual = list(self.messages)
        if exact and not any_order:
            if len(expected) != len(actual) or find_subsequence(expected, actual) is None:
                raise AssertionError(
                    f"other messages were {self.verb} than exactly the expected ones\n"
                    + diff_sequences(expected, actual, what="messages")
                )
            return
        if any_order:
            pairs = match_any_order(expected, actual)
            spare = sorted(set(range(len(actual))) - set(pairs.values()))
            if len(pairs) == len(expected) and not (exact and spare):
                return
            order = "exactly these, in any order" if exact else "in any order"
            raise AssertionError(
                self._report(expected, actual, pairs, order, spare if exact else [])
            )
        if find_subsequence(expected, actual) is not None:
            return
        pairs = match_any_order(expected, actual)
        if len(pairs) == len(expected):
            raise AssertionError(
                f"each expected message was {self.verb}, but not in the expected order\n"
                f"expected, in this order:\n{listing(expected)}\n"
                f"{self.verb} ({len(actual)}):\n{listing(actual)}"
            )
        raise AssertionError(self._report(expected, actual, pairs, "in this order", []))

    def assert_nothing_recorded(self) -> None:
        """Check that no message was recorded; raise AssertionError listing them if some were."""
        if self.messages:
            raise AssertionError(
                f"expected nothing to be {self.verb}, but {len(self.messages)} "
                f"{'was' if len(self.messages) == 1 else 'were'}:\n{listing(self.messages)}"
            )

    def _report(
        self,
        expected: Sequence[object],
        actual: Sequence[object],
        pairs: dict[int, int],
        order: str,
        spare: list[int],
    ) -> str:
        missing = [e for i, e in enumerate(expected) if i not in pairs]
        lines = [f"expected to be {self.verb} ({order}):"]
        for i, e in enumerate(expected):
            lines.append(f"  {'   ' if i in pairs else '-> '}{short(e)}")
        lines.append(f"{self.verb} ({len(actual)}):")
        lines.append(listing(actual))
        for e in missing:
            at = closest(e, actual)
            if at is None:
                lines.append(f"nothing like {short(e)} was {self.verb}")
                continue
            lines.append(f"closest to {short(e)} is #{at + 1}:")
            lines.extend(f"    {line}" for line in field_diff(e, actual[at]))
        if spare:
            lines.append("also " + self.verb + ", but not expected:")
            lines.extend(f"  {a + 1}. {short(actual[a])}" for a in spare)
        return "\n".join(lines)


@final
class BusRecorder:
    """What the buses it is attached to executed, answered and published.

    The pytest plugin's bus fixtures all report to the test's ``recorder``. Attach it to
    buses of your own with :meth:`attach`.
    """

    __slots__ = ("executed", "published", "queried")

    executed: Recorder
    queried: Recorder
    published: Recorder

    def __init__(self) -> None:
        self.executed = Recorder("executed")
        self.queried = Recorder("queried")
        self.published = Recorder("published")

    def __repr__(self) -> str:
        return (
            f"<BusRecorder {len(self.executed.messages)} executed, "
            f"{len(self.queried.messages)} queried, {len(self.published.messages)} published>"
        )

    def attach(self, *buses: Any) -> None:
        """Record what each of *buses* dispatches, by the kind of bus it is."""
        from .. import (
            AsyncCommandBus,
            AsyncEventBus,
            AsyncQueryBus,
            CommandBus,
            EventBus,
            QueryBus,
        )
        from ..errors import RegistrationError

        for bus in buses:
            if isinstance(bus, EventBus | AsyncEventBus):
                bus.use(self.published)
            elif isinstance(bus, CommandBus | AsyncCommandBus):
                bus.use(self.executed)
            elif isinstance(bus, QueryBus | AsyncQueryBus):
                bus.use(self.queried)
            else:
                raise RegistrationError(f"attach() takes busway buses, not {bus!r}")

    def clear(self) -> None:
        """Forget everything recorded so far."""
        for recorder in (self.executed, self.queried, self.published):
            recorder.clear()

    def assert_executed(
        self, *expected: object, any_order: bool = False, exact: bool = False
    ) -> None:
        """Check that these commands were executed (see :meth:`Recorder.assert_recorded`)."""
        self.executed.assert_recorded(*expected, any_order=any_order, exact=exact)

    def assert_published(
        self, *expected: object, any_order: bool = False, exact: bool = False
    ) -> None:
        """Check that these events were published (see :meth:`Recorder.assert_recorded`)."""
        self.published.assert_recorded(*expected, any_order=any_order, exact=exact)

    def assert_queried(
        self, *expected: object, any_order: bool = False, exact: bool = False
    ) -> None:
        """Check that these queries were asked (see :meth:`Recorder.assert_recorded`)."""
        self.queried.assert_recorded(*expected, any_order=any_order, exact=exact)

    def assert_nothing_executed(self) -> None:
        """Check that no command was executed."""
        self.executed.assert_nothing_recorded()

    def assert_nothing_published(self) -> None:
        """Check that no event was published."""
        self.published.assert_nothing_recorded()
