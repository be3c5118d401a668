"""The booking example runs as ``python -m examples.booking`` from the repository root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_booking_example_runs_and_tells_each_order_s_fate() -> None:
    """It exits 0, compensates the declined payment and the overdue one, and ships order-1."""
    done = subprocess.run(
        [sys.executable, "-m", "examples.booking"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (0, "") == (done.returncode, done.stderr)
    lines = done.stdout.splitlines()
    for expected in [
        "  [shipping] shipped order-1",
        "  [warehouse] released 4 x kettle",
        "  [orders] order-2 rejected: payment failed: 159.60 is over the card's limit",
        "  [orders] order-3 rejected: no payment within 15 minutes",
        "  [orders] order-4 rejected: only 1 x mug left",
        "1 deadline fired; bookings left for order-3: 0",
    ]:
        assert expected in lines
    assert ["order-1: confirmed", "order-2: rejected", "order-3: rejected"] == lines[-4:-1]


def test_the_booking_example_in_process(tmp_path: Path) -> None:
    """run() returns each order's fate, and keeps the stock it did not ship."""
    from examples.booking.__main__ import run

    said: list[str] = []
    assert {
        "order-1": "confirmed",
        "order-2": "rejected",
        "order-3": "rejected",
        "order-4": "rejected",
    } == run(tmp_path, said.append)
    assert "stock left: {'kettle': 4, 'mug': 2}" == said[-1]
