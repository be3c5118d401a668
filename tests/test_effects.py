"""The one driver of I/O-free flows: run, its async twin arun, and async-generator flows."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busway._effects import arun, arun_async_gen, run

Driver = Literal["run", "arun"]
DRIVERS: tuple[Driver, ...] = ("run", "arun")


class Boom(Exception):
    """What a failing effect raises."""


class Replaced(Exception):
    """What a flow raises instead of the failure thrown into it."""


def drive(driver: Driver, flow: Generator[Any, Any, Any], perform: Callable[[Any], Any]) -> Any:
    """Run *flow* with the sync driver, or with the async one over an async *perform*."""
    if driver == "run":
        return run(flow, perform)

    async def aperform(effect: Any) -> Any:
        return perform(effect)

    return asyncio.run(arun(flow, aperform))


# -- a flow that reacts to each effect as a script says ---------------------------------------

Step = tuple[Literal["ok"], int] | tuple[Literal["fail"], Literal["catch", "reraise", "replace"]]

steps: st.SearchStrategy[Step] = st.one_of(
    st.tuples(st.just("ok"), st.integers()),
    st.tuples(st.just("fail"), st.sampled_from(["catch", "reraise", "replace"])),
)


def scripted(script: list[Step], log: list[object]) -> Generator[int, Any, int]:
    """Yield effect i for each step; log what came back; react to failures as scripted."""
    try:
        for i, step in enumerate(script):
            try:
                log.append(("got", i, (yield i)))
            except Boom as exc:
                reaction = step[1]
                log.append((reaction, i, exc.args))
                if reaction == "reraise":
                    raise
                if reaction == "replace":
                    raise Replaced(i) from exc
        return len(script)
    finally:
        log.append("finally")


def performer(script: list[Step], performed: list[int]) -> Callable[[int], int]:
    def perform(i: int) -> int:
        performed.append(i)
        step = script[i]
        if step[0] == "fail":
            raise Boom(i)
        return step[1]

    return perform


def expected_of(script: list[Step]) -> tuple[list[int], list[object], object]:
    """What a direct call of each effect, in order, would have led to."""
    log: list[object] = []
    for i, step in enumerate(script):
        if step[0] == "ok":
            log.append(("got", i, step[1]))
            continue
        log.append((step[1], i, (i,)))
        if step[1] == "reraise":
            return list(range(i + 1)), [*log, "finally"], Boom(i)
        if step[1] == "replace":
            return list(range(i + 1)), [*log, "finally"], Replaced(i)
    return list(range(len(script))), [*log, "finally"], len(script)


@pytest.mark.parametrize("driver", DRIVERS)
@given(script=st.lists(steps, max_size=8))
def test_a_flow_runs_as_direct_calls_would(driver: Driver, script: list[Step]) -> None:
    """Effects are performed in yield order; results and failures come back at the yield."""
    performed: list[int] = []
    log: list[object] = []
    flow = scripted(script, log)
    try:
        outcome: object = drive(driver, flow, performer(script, performed))
    except (Boom, Replaced) as exc:
        outcome = exc
    want_performed, want_log, want_outcome = expected_of(script)
    assert want_performed == performed
    assert want_log == log
    assert (type(want_outcome), repr(want_outcome)) == (type(outcome), repr(outcome))
    assert inspect.GEN_CLOSED == inspect.getgeneratorstate(flow)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_reraised_failure_is_the_same_object_with_its_traceback(driver: Driver) -> None:
    """The failure a flow lets through is the one perform raised, raised where it was."""
    raised = Boom("at the source")

    def perform(effect: object) -> None:
        raise raised

    def flow() -> Generator[str, Any, None]:
        yield "effect"

    with pytest.raises(Boom) as info:
        drive(driver, flow(), perform)
    assert raised is info.value
    assert "perform" in [frame.name for frame in info.traceback]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_replaced_failure_keeps_the_original_as_context(driver: Driver) -> None:
    """A flow that raises another error while handling a failure chains the two."""

    def perform(effect: object) -> None:
        raise Boom("original")

    def flow() -> Generator[str, Any, None]:
        try:
            yield "effect"
        except Boom:
            raise Replaced("instead") from None

    with pytest.raises(Replaced) as info:
        drive(driver, flow(), perform)
    assert isinstance(info.value.__context__, Boom)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_flow_may_retry_a_failed_effect(driver: Driver) -> None:
    """After catching a failure the flow yields again, and its later result is returned."""
    answers = iter([Boom("first"), Boom("second"), "third"])

    def perform(effect: object) -> object:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def flow() -> Generator[str, Any, tuple[int, object]]:
        for attempt in range(1, 4):
            try:
                return attempt, (yield "try")
            except Boom:
                continue
        raise AssertionError("not reached")

    assert (3, "third") == drive(driver, flow(), perform)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_flow_that_yields_nothing_returns_at_once(driver: Driver) -> None:
    """A flow that returns before its first yield performs nothing."""
    performed: list[object] = []

    def flow() -> Generator[object, Any, str]:
        if performed:
            yield "never"
        return "done"

    assert "done" == drive(driver, flow(), performed.append)
    assert [] == performed


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_error_before_the_first_yield_propagates(driver: Driver) -> None:
    """A flow that fails before yielding raises its error, performing nothing."""

    def flow(fail: bool) -> Generator[object, Any, None]:
        if fail:
            raise Replaced("early")
        yield "never"  # pragma: no cover

    with pytest.raises(Replaced, match="early"):
        drive(driver, flow(True), lambda effect: None)


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_a_base_exception_is_thrown_in_and_passes_an_except_exception(
    driver: Driver, interrupt: type[BaseException]
) -> None:
    """KeyboardInterrupt and the like reach the flow: ``finally`` runs, ``except Exception``
    does not catch them, and they propagate."""
    log: list[str] = []

    def perform(effect: object) -> None:
        raise interrupt()

    def flow() -> Generator[str, Any, None]:
        try:
            yield "effect"
        except Exception:  # pragma: no cover - the point: it is not taken
            log.append("except Exception")
        finally:
            log.append("finally")

    with pytest.raises(interrupt):
        drive(driver, flow(), perform)
    assert ["finally"] == log


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_flow_may_handle_a_keyboard_interrupt(driver: Driver) -> None:
    """Like any failure, an interrupt may be caught by the flow, whose return then stands."""

    def perform(effect: object) -> None:
        raise KeyboardInterrupt

    def flow() -> Generator[str, Any, str]:
        try:
            yield "effect"
        except KeyboardInterrupt:
            return "interrupted, cleaned up"
        return "not interrupted"  # pragma: no cover

    assert "interrupted, cleaned up" == drive(driver, flow(), perform)


def test_cancelling_the_task_throws_cancelled_error_into_the_flow() -> None:
    """A task cancelled while an effect is awaited cancels the flow at that yield."""
    log: list[str] = []

    async def perform(effect: object) -> None:
        log.append(f"performing {effect}")
        await asyncio.Event().wait()

    def flow() -> Generator[str, Any, None]:
        try:
            yield "wait"
        finally:
            log.append("flow cleaned up")

    async def main() -> None:
        task = asyncio.create_task(arun(flow(), perform))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert ["performing wait", "flow cleaned up"] == log


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_sub_flow_gets_its_failures_through_yield_from(driver: Driver) -> None:
    """Flows compose: a failure reaches the innermost ``yield`` of a ``yield from`` chain."""

    def perform(effect: str) -> str:
        if effect == "bad":
            raise Boom(effect)
        return effect.upper()

    def inner() -> Generator[str, Any, str]:
        try:
            yield "bad"
        except Boom:
            return "inner compensated"
        return "not reached"  # pragma: no cover

    def outer() -> Generator[str, Any, tuple[str, str]]:
        first = yield "good"
        return first, (yield from inner())

    assert ("GOOD", "inner compensated") == drive(driver, outer(), perform)


# -- async-generator flows ------------------------------------------------------------------


def run_async_gen(flow: AsyncGenerator[Any, Any], perform: Callable[[Any], Any]) -> list[str]:
    """Drive *flow* by arun_async_gen; return what the awaiting perform saw."""
    seen: list[str] = []

    async def aperform(effect: Any) -> Any:
        seen.append(f"perform {effect}")
        await asyncio.sleep(0)
        return perform(effect)

    asyncio.run(arun_async_gen(flow, aperform))
    return seen


@given(results=st.lists(st.integers(), max_size=6))
def test_an_async_generator_gets_each_result_in_order(results: list[int]) -> None:
    """An async-generator flow receives each effect's result at its yield, in order."""
    received: list[int] = []

    async def flow() -> AsyncGenerator[int, int]:
        for i in range(len(results)):
            await asyncio.sleep(0)
            received.append((yield i))

    assert [f"perform {i}" for i in range(len(results))] == run_async_gen(
        flow(), lambda i: results[i]
    )
    assert results == received


def test_an_async_generator_may_compensate_a_failure() -> None:
    """A failure is thrown into the async generator, which may catch it and go on."""
    log: list[object] = []

    def perform(effect: str) -> str:
        if effect == "reserve":
            raise Boom("sold out")
        return f"{effect} done"

    async def flow() -> AsyncGenerator[str, str]:
        try:
            yield "reserve"
        except Boom as exc:
            log.append(f"caught {exc}")
            log.append((yield "release"))

    assert ["perform reserve", "perform release"] == run_async_gen(flow(), perform)
    assert ["caught sold out", "release done"] == log


@pytest.mark.parametrize("interrupt", [Boom, KeyboardInterrupt])
def test_an_async_generator_that_lets_a_failure_through_raises_it(
    interrupt: type[BaseException],
) -> None:
    """An uncaught failure propagates from the driver after the generator's cleanup."""
    log: list[str] = []

    def perform(effect: object) -> None:
        raise interrupt("no")

    async def flow() -> AsyncGenerator[str, Any]:
        try:
            yield "effect"
            log.append("not reached")  # pragma: no cover
        finally:
            await asyncio.sleep(0)
            log.append("cleaned up")

    with pytest.raises(interrupt):
        run_async_gen(flow(), perform)
    assert ["cleaned up"] == log


def test_an_async_generator_failing_on_its_own_raises_its_error() -> None:
    """An error the async generator raises itself leaves the driver unchanged."""

    async def flow() -> AsyncGenerator[str, Any]:
        yield "effect"
        raise Replaced("own")

    with pytest.raises(Replaced, match="own"):
        run_async_gen(flow(), lambda effect: None)


def test_a_cancelled_async_generator_flow_is_cleaned_up() -> None:
    """Cancelling the task reaches the async generator at its yield; its finally runs."""
    log: list[str] = []

    async def perform(effect: object) -> None:
        await asyncio.Event().wait()

    async def flow() -> AsyncGenerator[str, Any]:
        try:
            yield "wait"
        finally:
            log.append("cleaned up")

    async def main() -> None:
        task = asyncio.create_task(arun_async_gen(flow(), perform))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert ["cleaned up"] == log
