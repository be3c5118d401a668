"""Shared test set-up: hypothesis profiles, and fixtures that run a test on both runners.

The ``ci`` profile is derandomized and is the default in CI. A test that makes its
projection runners with ``make_runner`` runs against each runner (see tests/_runners.py).
A test that takes ``pg_schema`` works in a schema of its own on the PostgreSQL test server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests import _postgres
from tests._runners import FLAVOURS, LoopThread, MakeRunner, runner_maker

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=2_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


# -- PostgreSQL (see tests/_postgres.py) ---------------------------------------------------


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The DSN of the test server; the test skips (or fails, if required) without one."""
    return _postgres.require()


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    """A schema of the test's own on the test server, dropped with its tables afterwards."""
    with _postgres.fresh_schema() as name:
        yield name


# -- both projection runners (see tests/_runners.py) ---------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that makes its runners with ``make_runner`` once per flavour."""
    if "make_runner" in metafunc.fixturenames:
        metafunc.parametrize("flavour", FLAVOURS, indirect=True)


@pytest.fixture
def flavour(request: pytest.FixtureRequest) -> str:
    """Which runner the test drives, and how its store is seen ("sync" unless parametrized)."""
    return str(getattr(request, "param", "sync"))


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    """An event loop on a thread of its own, where the async runner and stores run."""
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def make_runner(flavour: str, loop: LoopThread) -> MakeRunner:
    """Make a runner of the test's flavour: ``make_runner(store, projection, **options)``."""
    return runner_maker(flavour, loop)
