"""One follower of the National Register's mutation feed among several processes (gunicorn workers).

The worker that takes :class:`FeedLock` follows the feed; the others try again now and then, so when
the follower's process ends (its lock goes with it), another takes over. On PostgreSQL the lock is a
session advisory lock (``pg_try_advisory_lock``) held by a connection of its own; on SQLite an
exclusive ``flock`` on a file of the data directory. Either is released by the kernel or the server
when the process dies: no stale lock to clean up.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from mycarenet_ic.sandbox import MutationFollower

log = logging.getLogger(__name__)

# pg_try_advisory_lock's key: one 64-bit number for "the mutation feed of this database".
FEED_LOCK_KEY = int.from_bytes(b"mcn-feed", "big") & 0x7FFF_FFFF_FFFF_FFFF
LOCK_FILE = "mutation-feed.lock"


class FeedLock:
    """Held by at most one process at a time per database (PostgreSQL) or data directory (SQLite)."""

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.path = Path(data_dir) / LOCK_FILE
        self._conn: Connection | None = None
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._fd is not None

    def hold(self) -> bool:
        """Take the lock if it is free (or check it is still ours); True while this process holds it."""
        if self.engine.dialect.name == "postgresql":
            return self._hold_advisory()
        return self._hold_file()

    def _hold_advisory(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))  # the lock lives as long as this session
                self._conn.commit()  # never left idle in a transaction
                return True
            except Exception:  # noqa: BLE001 - the session is gone, and the lock with it
                log.warning("mutation feed: the lock's database session was lost", exc_info=True)
                self._close_conn()
        conn = self.engine.connect()
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": FEED_LOCK_KEY}).scalar())
            conn.commit()  # the lock is the session's, not the transaction's: keep no transaction open
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _hold_file(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _close_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a dead session
                log.debug("closing the feed lock's session", exc_info=True)
            self._conn = None

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": FEED_LOCK_KEY})
                self._conn.commit()
            except Exception:  # noqa: BLE001 - closing the session releases it anyway
                log.debug("unlocking the mutation feed", exc_info=True)
            self._close_conn()
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class LockedFollower(MutationFollower):
    """A :class:`MutationFollower` that applies the feed only while it holds ``lock``: at once when it
    starts, then every ``every`` seconds (each round, a worker without the lock tries to take it). A worker
    without the lock reads the feed all the same, applying nothing, so that its National Register cache
    forgets a dead or renumbered person as soon as the follower's does (:meth:`MutationSync.catch_up`)."""

    def __init__(self, sync: Any, every: float, lock: FeedLock) -> None:
        super().__init__(sync, every)
        self.lock = lock

    def _loop(self) -> None:
        watched: int | None = None  # where this process, not following, has read the feed to
        while True:
            try:
                was = self.lock.held
                if self.lock.hold():
                    if not was:
                        log.warning("mutation feed: followed by this process (pid %d)", os.getpid())
                    watched = None
                    self.sync.run()
                elif hasattr(self.sync.nr, "forget"):  # another process applies the feed; this one's cache
                    watched = self.sync.catch_up(watched)  # still forgets the persons it names
            except Exception as exc:  # noqa: BLE001 - the next round tries again; the feed cursor keeps our place
                # One line (a stub that is restarting, the server stopping); the traceback for --log-level DEBUG.
                log.warning("mutation feed: this round failed (%s: %s); will retry", type(exc).__name__, exc)
                log.debug("mutation feed round", exc_info=True)
            if self._stop.wait(self.every):
                break
        self.lock.release()
