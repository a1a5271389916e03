"""PostgreSQL connection pool: a pooled connection that died while idle is replaced before use.

The layer pings a pooled connection only when it has been idle for a while (not on every checkout):
here the idle threshold is 0 s, the server ends the pooled connection's backend, and the next
transaction must still succeed on a new backend. With the check effectively off (1 hour), the
same transaction fails: the ping is what saves it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from mycarenet_ic.persistence.db import make_engine
from tests import support

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from support.postgres_database()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _kill_idle_pooled_backend(engine: Engine, url: str) -> int:
    """Check a connection in and out once, then end its backend from another session."""
    pid = _backend_pid(engine)
    killer = make_engine(url, pool_size=1)
    try:
        with killer.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one() is True
            # pg_terminate_backend only signals: wait until the backend is really gone (bounded).
            for _ in range(500):
                # The view is a snapshot taken once per transaction: drop it, or the backend never leaves it.
                conn.execute(text("SELECT pg_stat_clear_snapshot()"))
                alive = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                                     {"p": pid}).scalar_one()
                if not alive:
                    break
                conn.execute(text("SELECT pg_sleep(0.01)"))
            else:
                pytest.fail("the terminated backend stayed")
    finally:
        killer.dispose()
    return pid


@pytest.mark.integration
def test_dead_idle_connection_is_replaced_before_use(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1, idle_ping_seconds=0)
    try:
        dead = _kill_idle_pooled_backend(engine, pg_url)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT 41 + 1")).scalar_one() == 42
        assert _backend_pid(engine) != dead
    finally:
        engine.dispose()


@pytest.mark.integration
def test_without_the_idle_check_the_dead_connection_fails_the_transaction(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1, idle_ping_seconds=3600)
    try:
        _kill_idle_pooled_backend(engine, pg_url)
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text("SELECT 1"))
        # SQLAlchemy recognised the disconnect and emptied the pool: the next transaction works.
        with engine.begin() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
