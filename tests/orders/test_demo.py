"""``python -m examples.orders`` runs the whole tour and exits 0."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from examples.orders.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    """Run the demo once, from the repository root, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "examples.orders"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_demo_exits_cleanly(demo: subprocess.CompletedProcess[str]) -> None:
    """It exits 0, writes nothing to stderr and ends with done."""
    assert (0, "") == (demo.returncode, demo.stderr)
    assert demo.stdout.endswith("\ndone.\n")


def test_the_demo_shows_each_step(demo: subprocess.CompletedProcess[str]) -> None:
    """Commands, refusals, lag, queries, wait_for and an identical rebuild are all shown."""
    out = demo.stdout
    for expected in (
        "1. Commands change Order aggregates",
        "refused: order ",
        "the event bus got 7 OrderPlaced events",
        "lag before it runs: 11 positions behind the store",
        "caught up: 11 events handled, lag now 0",
        "ListOrders(alice, limit=2), page 2:",
        "wait_for(12) returned",
        "rebuilding 'orders': position 12 of 12 (100%)",
        "identical to the read model before the rebuild: yes (8 orders)",
    ):
        assert expected in out


def test_a_kept_database_can_be_run_again(tmp_path: Path) -> None:
    """With --db the file stays, and a second run adds to it and still rebuilds identically."""
    path = tmp_path / "orders.db"
    for run in (1, 2):
        out = io.StringIO()
        assert 0 == main(["--db", str(path)], out=out)
        assert f"yes ({8 * run} orders)" in out.getvalue()
    assert path.exists()


def test_the_progress_line_rewrites_itself_on_a_terminal() -> None:
    """On a terminal the rebuild's progress is one line, redrawn with carriage returns."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    assert 0 == main([], out=out)
    assert "\r   rebuilding 'orders': position 12 of 12 (100%)\n" in out.getvalue()
