"""The replay cache in the database, so every worker sees every signature.

Each ``INSERT … ON CONFLICT DO NOTHING`` tells by its row count whether its digest was new (a digest twice
in one transaction: the second is the replay). The SOAP endpoints' signatures go in the transaction of
their request's audit row (``audit.py``, :func:`store_keys`): one commit per request, and a request whose
signature another worker took first commits nothing. What else needs a durable "seen once" (the IdP's
one-time codes) uses :class:`SqlReplayCache`, group-committed (``group_commit.py``)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete
from sqlalchemy.engine import Connection, Dialect, Engine

from mycarenet_ic.persistence.db import DriverSql
from mycarenet_ic.persistence.group_commit import GroupCommit
from mycarenet_ic.persistence.tables import replay_cache

_Key = tuple[str, dt.datetime]
# On the driver's cursor (db.DriverSql); the expiry converted as SQLAlchemy stores a DateTime for the dialect, so
# the purge's comparison (a SQLAlchemy statement) reads it back the same.
_INSERT = DriverSql("INSERT INTO replay_cache (digest, expires_at) VALUES (:digest, :expires_at) "
                    "ON CONFLICT (digest) DO NOTHING")


_CONVERTERS: dict[str, Callable[[dt.datetime], Any]] = {}


def _expiry_converter(dialect: Dialect) -> Callable[[dt.datetime], Any]:
    convert = _CONVERTERS.get(dialect.name)
    if convert is None:
        convert = replay_cache.c.expires_at.type.bind_processor(dialect) or (lambda value: value)
        _CONVERTERS[dialect.name] = convert
    return convert


class KeyStore:
    """Stores keys in the caller's transaction; every ``purge_every`` keys it also deletes the expired ones."""

    def __init__(self, purge_every: int = 1000) -> None:
        self._purge_every = purge_every
        self._count = 0
        self._lock = threading.Lock()

    def store_keys(self, conn: Connection, keys: Sequence[_Key]) -> list[bool]:
        """For each key, True if it was new (and is now stored in ``conn``'s transaction), False if seen."""
        with self._lock:
            before = self._count
            self._count += len(keys)
            purge = before // self._purge_every != self._count // self._purge_every
        if purge:
            conn.execute(delete(replay_cache).where(replay_cache.c.expires_at < dt.datetime.now(dt.UTC)))
        convert = _expiry_converter(conn.dialect)
        return [_INSERT.execute(conn, {"digest": key, "expires_at": convert(expires)})[0] == 1 for key, expires in keys]


class SqlReplayCache:
    durable = True

    def __init__(self, engine: Engine, purge_every: int = 1000) -> None:
        self.engine = engine
        self._keys = KeyStore(purge_every)
        self._group: GroupCommit[_Key, bool] = GroupCommit(self._commit)

    def check_and_store(self, key: str, expires: dt.datetime) -> bool:
        """True if ``key`` was not seen yet (and is now stored, committed), False for a replay."""
        return self._group.submit((key, expires))

    def _commit(self, keys: Sequence[_Key]) -> list[bool]:
        with self.engine.begin() as conn:
            return self._keys.store_keys(conn, keys)
