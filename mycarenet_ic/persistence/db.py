"""Engine creation and schema migration.

SQLite runs in WAL mode with a busy timeout; every write transaction starts
with ``BEGIN IMMEDIATE`` so that concurrent writers queue instead of failing
on a lock upgrade, while reads (:func:`reading`) use a plain ``BEGIN`` and
never wait for writers. PostgreSQL is used when the URL says so.

The SQLite file is its owner's only (0600): it is made so before SQLite opens it, whatever the umask,
and SQLite gives its ``-wal`` and ``-shm`` files the mode of the database file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError

from mycarenet_ic.config import OWNER_FILE, tighten

_MIGRATIONS = Path(__file__).parent / "migrations"
_READ_ONLY = "mycarenet_read_only"
_ADVISORY_LOCK = 0x6D636E  # any constant shared by all workers of this layer
# A pooled PostgreSQL connection idle for longer than this is pinged before use.
IDLE_PING_SECONDS = 10.0


def owner_only_sqlite_file(url: str) -> Path | None:
    """Make the database file of a SQLite ``url`` 0600 (created empty if need be), and tighten its
    ``-wal``, ``-shm`` and ``-journal`` files that an older version may have left readable by others.

    Returns the file, or None for an in-memory database or a ``file:`` URI (left to SQLite); a missing
    directory is left for SQLite to report.
    """
    parsed = make_url(url)
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    path = Path(database)
    if not path.parent.is_dir():
        return None
    # Read-only is enough to create it; the mode is set on the descriptor (a symlink's target, as SQLite).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, OWNER_FILE)
        mode = OWNER_FILE  # exactly, whatever the umask took away
    except FileExistsError:
        fd = os.open(path, os.O_RDONLY)
        mode = stat.S_IMODE(os.fstat(fd).st_mode) & ~0o077
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(Path(f"{path}{suffix}"))
    return path


WRITERS_WAIT_SECONDS = 30.0  # then the writer goes on to SQLite's own lock (busy_timeout): "database is locked"


class WriterFileLock:
    """The writers' lock of one SQLite file between processes (``serve``'s workers, a command run beside the
    sandbox): an exclusive ``flock`` on ``<file>.writers`` (0600), taken before ``BEGIN IMMEDIATE``. A process
    waiting for it tries again every millisecond at most, where SQLite's own busy handler (what another
    process's writer would otherwise meet) sleeps in steps of up to 100 ms; after ``timeout`` it gives up and
    the writer meets SQLite's lock as before (so a stopped holder fails requests, it does not hang them). Taken
    by at most one thread of a process at a time (the in-process lock comes first). The descriptor is opened
    again in a forked child: a descriptor inherited across ``fork`` shares its lock with the parent."""

    def __init__(self, database: Path) -> None:
        self.path = Path(f"{database}.writers")
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, OWNER_FILE)
            self._pid = os.getpid()
            weakref.finalize(self, _close_quietly, self._fd)
        return self._fd

    def acquire(self, timeout: float = WRITERS_WAIT_SECONDS) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds (0: try once); whether it was taken."""
        fd = self._descriptor()
        deadline, delay = time.monotonic() + timeout, 0.0001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
            time.sleep(delay)  # a holder commits within milliseconds: try again soon
            delay = min(delay * 2, 0.001)

    def release(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def make_engine(url: str, *, pool_size: int = 10, idle_ping_seconds: float = IDLE_PING_SECONDS) -> Engine:
    if url.startswith("sqlite"):
        database = owner_only_sqlite_file(url)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        # Writers of this process queue on a lock that wakes the next one at once, then on the file's lock
        # between processes; SQLite's own busy handler sleeps in steps of up to 100 ms, which starves a busy
        # server. Both are the write transaction's: released when its connection commits, rolls back, or is
        # invalidated, reset or closed (SQLAlchemy skips the rollback of a connection it invalidates).
        writers = threading.Lock()
        between = WriterFileLock(database) if database is not None else None
        owner: list[Any] = [None, False]  # the DBAPI connection holding them; whether it holds the file's too

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            if conn.get_execution_options().get(_READ_ONLY):
                _BEGIN.execute(conn, {})  # readers never wait (WAL)
                return
            writers.acquire()
            owner[0], owner[1] = _raw(conn.connection), False
            try:
                if between is not None:
                    owner[1] = between.acquire()
                # Writers take the write lock up front: no failed lock upgrade halfway through.
                _BEGIN_IMMEDIATE.execute(conn, {})
            except BaseException:
                _release(owner[0])
                raise

        def _release(connection: Any) -> None:
            if connection is None or owner[0] is not _raw(connection):
                return  # not the writer's (a reader's, or released already)
            had_file = owner[1]
            owner[0], owner[1] = None, False
            try:
                if had_file:
                    between.release()  # type: ignore[union-attr]  # held only with it
            finally:
                writers.release()

        for name in ("invalidate", "soft_invalidate", "reset", "close", "close_detached"):
            event.listen(engine, name, lambda dbapi_connection, *_rest: _release(dbapi_connection))

        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_connection):
            try:
                commit(dbapi_connection)
            finally:
                _release(dbapi_connection)

        def do_rollback(dbapi_connection):
            try:
                rollback(dbapi_connection)
            finally:
                _release(dbapi_connection)

        dialect.do_commit = do_commit  # type: ignore[method-assign]
        dialect.do_rollback = do_rollback  # type: ignore[method-assign]

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    engine = create_engine(url, pool_size=pool_size, max_overflow=20)
    _ping_when_idle(engine, idle_ping_seconds)
    return engine


def _raw(connection: Any) -> Any:
    """The DBAPI connection itself, given it or SQLAlchemy's pool proxy of it."""
    return getattr(connection, "dbapi_connection", connection)


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection before use only when it has been idle for a while.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: under load that is one more round trip per
    transaction (py-spy: 14 % of a worker's request time). A connection used a moment ago is known to
    be alive; one idle since before a server restart is found dead here and replaced before the request
    uses it. A connection that dies while in use fails that request (``StorageUnavailable``, Retry=true)
    and SQLAlchemy drops every pooled connection of the same age.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn, record):
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy):
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_conn.rollback()
        except Exception as exc:  # noqa: BLE001 - any failure means: not usable, take another
            raise DisconnectionError("pooled connection is gone") from exc


_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class DriverSql:
    """A fixed statement of a hot path, run on the DBAPI cursor of a SQLAlchemy connection, inside its
    transaction, without SQLAlchemy's per-execution work (cProfile: ~100 µs a statement, the audit row's four
    statements costing five times what SQLite takes to run them). Written once with ``:name`` parameters
    (sqlite3's named style); psycopg gets ``%(name)s``, and ``for_update`` is added on PostgreSQL only (SQLite's
    writers hold the whole database from ``BEGIN IMMEDIATE``). Values go to the driver as they are: only
    strings, numbers and values the caller has already converted (a column type's ``bind_processor``).
    A driver error goes through SQLAlchemy's own handling, so it is raised as ``DBAPIError`` and a dead
    connection is invalidated, exactly as for a statement SQLAlchemy ran."""

    def __init__(self, sql: str, *, for_update: bool = False) -> None:
        self._spelled = {"sqlite": sql,
                         "postgresql": _PARAMETER.sub(r"%(\1)s", sql) + (" FOR UPDATE" if for_update else "")}

    def spelled(self, conn: Connection) -> str:
        return self._spelled[conn.dialect.name]

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> tuple[int, tuple[Any, ...] | None]:
        """(rows changed, the first row of the result or None)."""
        return self._run(conn, params, False)

    def execute_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Rows changed. One row is one ``execute`` (psycopg runs ``executemany`` in pipeline mode, whose
        entering and leaving cost more than the statement: py-spy, an audit group of one row)."""
        if len(rows) == 1:
            return self._run(conn, rows[0], False)[0]
        return self._run(conn, rows, True)[0]

    def _run(self, conn: Connection, params: Any, many: bool) -> tuple[int, tuple[Any, ...] | None]:
        statement = self.spelled(conn)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if many:
                cursor.executemany(statement, params)
            else:
                cursor.execute(statement, params)
            row = cursor.fetchone() if cursor.description is not None else None
            return cursor.rowcount, row
        except conn.dialect.loaded_dbapi.Error as exc:
            conn._handle_dbapi_exception(exc, statement, params, cursor, None)  # raises DBAPIError
            raise  # not reached
        finally:
            cursor.close()


# Every transaction's first statement on SQLite (py-spy: exec_driver_sql's own work was 3-4 % of a request).
_BEGIN, _BEGIN_IMMEDIATE = DriverSql("BEGIN"), DriverSql("BEGIN IMMEDIATE")


def reading(engine: Engine) -> Connection:
    """A connection for reads only: on SQLite it does not take the write lock."""
    return engine.connect().execution_options(**{_READ_ONLY: True})


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe when several workers start at once."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_LOCK})
            try:
                conn.commit()
                cfg = alembic_config(engine)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_LOCK})
                conn.commit()
    else:
        command.upgrade(alembic_config(engine), "head")
