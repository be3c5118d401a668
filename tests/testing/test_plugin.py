"""The pytest plugin, as a user's test files meet it: fixtures, recorder, and turning it off."""

from __future__ import annotations

import subprocess
import sys

import pytest

USER_TESTS = '''
import asyncio

import attrs
import pytest

from busway import Command, Event, Registry
from busway.eventstore import EventTypes
from busway.testing import Like


@attrs.frozen
class Greet(Command[str]):
    name: str


@attrs.frozen
class Greeted(Event):
    name: str


@attrs.frozen
class Thank(Command[None]):
    name: str


@pytest.fixture
def event_types():
    return EventTypes(Greeted)


def test_buses_record(command_bus, event_bus, query_bus, recorder, published, executed):
    """Commands and events dispatched on the fixture buses are recorded."""
    @command_bus.handler
    def greet(command: Greet) -> str:
        event_bus.publish(Greeted(command.name))
        return f"hi {command.name}"

    assert "hi ann" == command_bus.execute(Greet("ann"))
    recorder.assert_executed(Greet("ann"))
    published.assert_recorded(Like(Greeted, name="ann"))
    assert [Greet("ann")] == executed.messages


def test_sagas_work(command_bus, event_bus, executed):
    """The event bus is wired to the command bus, so reactive sagas run."""
    sagas = Registry()
    sagas.saga(Greeted)(lambda event: Thank(event.name))
    command_bus.register(Thank, lambda command: None)
    event_bus.include(sagas)
    event_bus.publish(Greeted("bob"))
    executed.assert_recorded(Thank("bob"), exact=True)


def test_async_buses(async_command_bus, async_event_bus, recorder):
    """The async twins record as well."""
    async_command_bus.register(Greet, lambda command: command.name)
    async def main():
        await async_event_bus.publish(Greeted("cy"))
        return await async_command_bus.execute(Greet("cy"))
    assert "cy" == asyncio.run(main())
    recorder.assert_published(Greeted("cy"))
    recorder.assert_executed(Greet("cy"))


def test_stores(event_store, sqlite_event_store, fake_clock):
    """Both stores use the overridden event_types; the clock starts in 2000."""
    for store in (event_store, sqlite_event_store):
        store.append("s-1", [Greeted("dee")])
        assert [Greeted("dee")] == [r.event for r in store.read_stream("s-1")]
    assert 2000 == fake_clock.now().year


def test_published_wrong(event_bus, recorder):
    """A failing assertion shows what was published and the closest difference."""
    event_bus.publish(Greeted("eve"))
    recorder.assert_published(Greeted("eva"))
'''


def test_fixtures_in_a_user_test_file(pytester: pytest.Pytester) -> None:
    """The plugin's fixtures work in a user's tests, and a failed assertion is readable."""
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*expected to be published (in this order):",
            "*-> Greeted(name='eva')",
            "*published (1):",
            "*1. Greeted(name='eve')",
            "*closest to Greeted(name='eva') is #1:",
            "*name: expected 'eva', got 'eve'",
        ]
    )


def test_the_default_event_types_accept_what_a_test_adds(pytester: pytest.Pytester) -> None:
    """Without a conftest override, the store knows nothing until a test adds a class."""
    pytester.makepyfile(
        """
        import attrs
        import pytest
        from busway.errors import UnknownEventTypeError

        @attrs.frozen
        class Pinged:
            n: int

        def test_unknown(event_store):
            with pytest.raises(UnknownEventTypeError, match="EventTypes"):
                event_store.append("s", [Pinged(1)])

        def test_added(event_store, event_types):
            event_types.add(Pinged)
            event_store.append("s", [Pinged(1)])
            assert 1 == event_store.stream_version("s")
        """
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=2)


def test_no_busway_turns_the_plugin_off(pytester: pytest.Pytester) -> None:
    """With -p no:busway, the fixtures are gone."""
    pytester.makepyfile("def test_uses(command_bus):\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:busway")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'command_bus' not found*"])


def test_the_plugin_imports_neither_hypothesis_nor_the_scenarios() -> None:
    """Loading the plugin costs busway's core and pytest, nothing optional."""
    code = (
        "import sys, busway.testing.plugin, busway.testing\n"
        "loaded = [m for m in sys.modules if m.startswith(('hypothesis', 'busway.sagas',"
        " 'busway.testing._scenarios', 'busway.aggregates'))]\n"
        "assert not loaded, loaded\n"
        "assert 'busway.testing._eventstore_contract' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
