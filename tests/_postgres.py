"""Where the PostgreSQL tests find their server, and a schema of their own on it.

``BUSWAY_POSTGRES_DSN`` names the server (default: the project machines' local one). Without
one that answers, the PostgreSQL tests skip, each with the same reason; with
``BUSWAY_REQUIRE_POSTGRES=1`` (as CI sets it) they fail instead.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

DSN = os.environ.get("BUSWAY_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRED = os.environ.get("BUSWAY_REQUIRE_POSTGRES") == "1"


@functools.cache
def unreachable() -> str | None:
    """Return why the server cannot be used, or None if it answers."""
    try:
        with psycopg.connect(DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL does not answer at {DSN!r} ({str(exc).strip()})"
    return None


def require() -> str:
    """Return the DSN, or skip (fail, under BUSWAY_REQUIRE_POSTGRES=1) if nothing answers."""
    why = unreachable()
    if why is not None:
        if REQUIRED:
            pytest.fail(f"{why}, and BUSWAY_REQUIRE_POSTGRES=1 says it must", pytrace=False)
        pytest.skip(f"{why}: set BUSWAY_POSTGRES_DSN to a server to run the PostgreSQL tests")
    return DSN


@contextmanager
def fresh_schema() -> Iterator[str]:
    """Name a schema no other test uses, and drop it, with all it holds, afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    try:
        yield name
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
