"""``python -m busway.demo`` runs the whole tour from any directory and exits 0."""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import busway.demo
from busway.demo.tour import main


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory outside the checkout to run the demo from."""
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(scope="module")
def demo(workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run the demo once, in a fresh interpreter, from a directory outside the checkout."""
    return subprocess.run(
        [sys.executable, "-m", "busway.demo"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_demo_exits_cleanly(demo: subprocess.CompletedProcess[str]) -> None:
    """It exits 0, writes nothing to stderr and ends by saying how to keep a database."""
    assert (0, "") == (demo.returncode, demo.stderr)
    assert demo.stdout.endswith(
        "\ndone. The file was temporary and is removed; to keep one, give its path:\n"
        "    python -m busway.demo orders.db\n"
    )


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


def test_the_temporary_database_is_gone_afterwards(
    demo: subprocess.CompletedProcess[str], workdir: Path
) -> None:
    """The demo names its temporary file, removes it at the end and leaves the cwd empty."""
    match = re.match(r"busway orders demo, on one SQLite file: (.+)\n", demo.stdout)
    assert match is not None
    path = Path(match.group(1))
    assert "orders.db" == path.name
    assert (False, False) == (path.exists(), path.parent.exists())
    assert [] == list(workdir.iterdir())


def test_a_kept_database_can_be_run_again(tmp_path: Path) -> None:
    """Given a path, the file stays, and a second run adds to it and still rebuilds identically."""
    path = tmp_path / "orders.db"
    for run in (1, 2):
        out = io.StringIO()
        assert 0 == main([str(path)], out=out)
        assert f"yes ({8 * run} orders)" in out.getvalue()
        assert out.getvalue().endswith(f"are in {path}; run again to add to them.\n")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert (16,) == conn.execute("SELECT count(*) FROM orders").fetchone()


def test_the_progress_line_rewrites_itself_on_a_terminal() -> None:
    """On a terminal the rebuild's progress is one line, redrawn with carriage returns."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    assert 0 == main([], out=out)
    assert "\r   rebuilding 'orders': position 12 of 12 (100%)\n" in out.getvalue()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (".", "is a folder; give a file in it, such as "),
        ("missing/orders.db", "the folder of missing/orders.db does not exist; create it"),
        ("notes.txt", "cannot be opened as an event store: it is not an SQLite database"),
    ],
)
def test_a_path_it_cannot_use_is_refused_with_the_reason(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    expected: str,
) -> None:
    """A folder, a file in a missing folder or a file that is no database exits 2, saying why."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a database\n")
    with pytest.raises(SystemExit) as exited:
        main([name], out=io.StringIO())
    assert 2 == exited.value.code
    assert expected in capsys.readouterr().err
    assert "not a database\n" == (tmp_path / "notes.txt").read_text()


def test_the_package_runs_as_a_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m busway.demo PATH`` exits with main()'s status and keeps the file."""
    path = tmp_path / "kept.db"
    monkeypatch.setattr(sys, "argv", ["busway.demo", str(path)])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(
            str(Path(busway.demo.__file__).with_name("__main__.py")), run_name="__main__"
        )
    assert 0 == exited.value.code
    assert f"busway orders demo, on one SQLite file: {path}\n" in capsys.readouterr().out
    assert path.is_file()


def test_importing_busway_leaves_the_demo_out() -> None:
    """``import busway`` does not import the demo, so applications do not pay for it."""
    probe = "import sys, busway; print(sorted(m for m in sys.modules if 'demo' in m))"
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert "[]\n" == imported.stdout


def test_the_demo_on_sqlite_leaves_psycopg_out() -> None:
    """The demo imports psycopg only when given a DSN, so it runs without the postgres extra."""
    probe = "import sys, busway.demo.tour; print('psycopg' in sys.modules)"
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert "False\n" == imported.stdout
