"""db.DriverSql: the hot paths' statements on the driver's cursor, still inside SQLAlchemy's transaction and
error handling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from mycarenet_ic.persistence.db import DriverSql, make_engine
from tests import support

pytestmark = pytest.mark.unit


def test_it_runs_in_the_callers_transaction_and_a_rollback_takes_it_back(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'd.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"))
    insert = DriverSql("INSERT INTO t (k, v) VALUES (:k, :v) ON CONFLICT (k) DO NOTHING")
    with engine.begin() as conn:
        assert insert.execute(conn, {"k": "a", "v": 1})[0] == 1
        assert insert.execute(conn, {"k": "a", "v": 2})[0] == 0  # the row count tells a duplicate
        assert insert.execute_many(conn, [{"k": "b", "v": 3}, {"k": "c", "v": 4}]) == 2
    with pytest.raises(RuntimeError), engine.begin() as conn:
        insert.execute(conn, {"k": "d", "v": 5})
        raise RuntimeError("the caller's transaction fails")
    with engine.connect() as conn:
        assert DriverSql("SELECT count(*), sum(v) FROM t").execute(conn, {})[1] == (3, 8)
    engine.dispose()


def test_a_driver_error_is_raised_as_sqlalchemys_and_the_connection_stays_usable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'd.sqlite3'}")
    with pytest.raises(DBAPIError), engine.begin() as conn:  # what the fault mapping turns into STORAGE_UNAVAILABLE
        DriverSql("INSERT INTO no_such_table (k) VALUES (:k)").execute(conn, {"k": "x"})
    with engine.begin() as conn:
        assert DriverSql("SELECT 1").execute(conn, {})[1] == (1,)
    engine.dispose()


def test_postgresql_gets_its_own_parameter_style_and_the_lock() -> None:
    statement = DriverSql("SELECT seq FROM audit_head WHERE id = :id AND x::text = :x", for_update=True)
    assert statement._spelled["postgresql"] == ("SELECT seq FROM audit_head WHERE id = %(id)s AND x::text = %(x)s"
                                                " FOR UPDATE")
    assert statement._spelled["sqlite"] == "SELECT seq FROM audit_head WHERE id = :id AND x::text = :x"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'd.sqlite3'}"
    else:
        yield from support.postgres_database()


def test_one_row_or_many_each_backend_counts_what_it_changed_and_refusals_stay_sqlalchemys(
        database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)"))
    insert = DriverSql("INSERT INTO t (k, v) VALUES (:k, :v) ON CONFLICT (k) DO NOTHING")
    with engine.begin() as conn:
        assert insert.execute_many(conn, [{"k": "a", "v": 1}]) == 1  # one row: a plain execute
        assert insert.execute_many(conn, [{"k": "a", "v": 9}]) == 0  # ... that still tells a duplicate
        assert insert.execute_many(conn, [{"k": "b", "v": 2}, {"k": "c", "v": 3}]) == 2
    with pytest.raises(DBAPIError), engine.begin() as conn:  # NOT NULL refused: the whole transaction goes
        insert.execute(conn, {"k": "d", "v": 4})
        insert.execute_many(conn, [{"k": "e", "v": None}])
    with engine.connect() as conn:
        assert DriverSql("SELECT count(*), sum(v) FROM t").execute(conn, {})[1] == (3, 6)
    engine.dispose()
