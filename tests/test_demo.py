"""The demo runs as ``python -m busway.demo`` and shows each step."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from busway import demo as demo_module


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    """Run the demo once, in a fresh interpreter, for every test here."""
    return subprocess.run(
        [sys.executable, "-m", "busway.demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_exits_cleanly(demo: subprocess.CompletedProcess[str]) -> None:
    """The demo exits 0 and writes nothing to stderr."""
    assert (demo.returncode, demo.stderr) == (0, "")


def test_commands_queries_and_events(demo: subprocess.CompletedProcess[str]) -> None:
    """Placing an order returns its id, publishes OrderPlaced, and the query finds it."""
    lines = demo.stdout.splitlines()
    assert "   -> order-1" in lines
    assert "   [email] to alice: order-1 is confirmed" in lines
    assert "   [audit] OrderPlaced(order_id='order-1', customer='alice')" in lines
    assert "   -> status: cancelled" in lines


def test_failure_reaches_the_caller(demo: subprocess.CompletedProcess[str]) -> None:
    """Cancelling twice raises the handler's own error, logged at WARNING."""
    assert "   -> OrderError: order-1 cannot be cancelled (status: cancelled)" in demo.stdout
    assert "   [log] WARNING CancelOrder failed after" in demo.stdout


def test_middleware_output(demo: subprocess.CompletedProcess[str]) -> None:
    """The log middleware prints each dispatch and the timing middleware counts them."""
    out = demo.stdout
    assert "   [log] INFO handling PlaceOrder: PlaceOrder(customer='alice'" in out
    assert "   [log] INFO handled PlaceOrder in " in out
    assert "   GetOrder: 2 calls, " in out
    assert "   CancelOrder: 2 calls, " in out


def test_event_is_published_inside_the_command(
    demo: subprocess.CompletedProcess[str],
) -> None:
    """OrderPlaced is handled while PlaceOrder is still being handled."""
    lines = [line.strip() for line in demo.stdout.splitlines()]
    start = next(i for i, line in enumerate(lines) if "handling PlaceOrder" in line)
    event = next(i for i, line in enumerate(lines) if "handling OrderPlaced" in line)
    end = next(i for i, line in enumerate(lines) if "handled PlaceOrder" in line)
    assert start < event < end


def test_main_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """main() prints the same tour in-process and leaves no log handler behind."""
    demo_module.main()
    out = capsys.readouterr().out
    assert "   -> order-1" in out
    assert "   [log] INFO handled PlaceOrder in " in out
    assert logging.getLogger("busway.demo").handlers == []
