"""The distributions hold what a pip user needs, and the wheel's demo runs in a fresh venv."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIST_INFO = "busway-0.1.0.dev0.dist-info"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the sdist, then the wheel from the sdist, as a release would."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    """The wheel that was built."""
    (path,) = dist.glob("busway-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel_files(wheel: Path) -> list[str]:
    """The names of every file in the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def read_from_wheel(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode()


def test_the_wheel_holds_the_package_and_nothing_else(wheel_files: list[str]) -> None:
    """Every file under busway/ is in the wheel, and besides them only its metadata."""
    package = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "busway").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {
        "busway/py.typed",
        "busway/demo/__main__.py",
        "busway/testing/plugin.py",
    } <= package
    assert package == {name for name in wheel_files if not name.startswith(DIST_INFO)}
    assert {
        f"{DIST_INFO}/METADATA",
        f"{DIST_INFO}/WHEEL",
        f"{DIST_INFO}/RECORD",
        f"{DIST_INFO}/entry_points.txt",
        f"{DIST_INFO}/licenses/LICENSE",
    } == {name for name in wheel_files if name.startswith(DIST_INFO)}


def test_the_wheel_registers_the_pytest_plugin(wheel: Path) -> None:
    """Installing the wheel makes pytest load busway.testing.plugin through its entry point."""
    entry_points = configparser.ConfigParser()
    entry_points.read_string(read_from_wheel(wheel, f"{DIST_INFO}/entry_points.txt"))
    assert {"busway": "busway.testing.plugin"} == dict(entry_points["pytest11"])


def test_the_wheel_installs_the_busway_command(wheel: Path) -> None:
    """Installing the wheel puts a ``busway`` command on the path, beside ``python -m busway``."""
    entry_points = configparser.ConfigParser()
    entry_points.read_string(read_from_wheel(wheel, f"{DIST_INFO}/entry_points.txt"))
    assert {"busway": "busway.cli:main"} == dict(entry_points["console_scripts"])
    with zipfile.ZipFile(wheel) as archive:
        assert "busway/__main__.py" in archive.namelist()


def metadata(wheel: Path) -> Message:
    return Parser().parsestr(read_from_wheel(wheel, f"{DIST_INFO}/METADATA"))


def test_the_wheel_needs_only_attrs_cattrs_and_typing_extensions(wheel: Path) -> None:
    """The runtime dependencies are three; msgspec, psycopg, rich, OTel and the tools are extras."""
    requires = metadata(wheel).get_all("Requires-Dist") or []
    runtime = sorted(r.split(">")[0] for r in requires if "extra ==" not in r)
    assert ["attrs", "cattrs", "typing-extensions"] == runtime
    extras = ["bench", "cli", "dev", "docs", "examples", "fast", "graphql", "otel", "postgres"]
    assert [*extras, "test"] == sorted(metadata(wheel).get_all("Provides-Extra") or [])
    # Tracing asks for the API alone: the application brings the SDK it exports with.
    otel = [r.split(">")[0] for r in requires if r.endswith(("extra == 'otel'", 'extra == "otel"'))]
    assert ["opentelemetry-api"] == otel


def test_the_wheel_links_to_the_repository(wheel: Path) -> None:
    """The package index shows links to the home page, source, issues, changes and docs."""
    repo = "https://github.com/busway/busway"
    assert [
        f"Homepage, {repo}",
        f"Documentation, {repo}/blob/main/docs/index.md",
        f"Source, {repo}",
        f"Issues, {repo}/issues",
        f"Changelog, {repo}/blob/main/CHANGELOG.md",
    ] == metadata(wheel).get_all("Project-URL")


def test_the_sdist_holds_the_tests_and_docs_but_not_ci(dist: Path) -> None:
    """The sdist carries what runs the suite and builds the site (tests, docs), not the CI."""
    (sdist,) = dist.glob("busway-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {
        "conftest.py",
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "busway/demo/__main__.py",
        "tests/orders/test_demo.py",
        "docs/tutorial.md",
        "docs/reference/busway.md",
        "mkdocs.yml",
        "examples/booking/__main__.py",
    } <= names
    assert [] == [name for name in names if name.startswith(".ci/") or "__pycache__" in name]


def test_the_demo_runs_from_the_wheel_in_a_fresh_virtualenv(wheel: Path, tmp_path: Path) -> None:
    """``pip install`` of the wheel into a new venv, then ``python -m busway.demo`` elsewhere."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], timeout=120, check=True)
    python = venv / "bin" / "python"
    # Only the venv's own packages: no path leading back into the checkout.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        env=env,
        capture_output=True,
        timeout=300,
        check=True,
    )
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    demo = subprocess.run(
        [str(python), "-m", "busway.demo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (0, "") == (demo.returncode, demo.stderr)
    assert demo.stdout.startswith("busway orders demo, on one SQLite file: ")
    assert "identical to the read model before the rebuild: yes (8 orders)" in demo.stdout
    assert demo.stdout.endswith("    python -m busway.demo orders.db\n")
    assert [] == list(cwd.iterdir())
    where = subprocess.run(
        [str(python), "-c", "import busway; print(busway.__file__)"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv)
