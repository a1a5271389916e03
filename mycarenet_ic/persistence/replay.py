"""The replay cache in the database, so every worker sees every signature."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from mycarenet_ic.persistence.tables import replay_cache

_INSERT = replay_cache.insert()  # built once: its compiled form is reused


class SqlReplayCache:
    def __init__(self, engine: Engine, purge_every: int = 1000) -> None:
        self.engine = engine
        self._purge_every = purge_every
        self._count = 0
        self._lock = threading.Lock()

    def check_and_store(self, key: str, expires: dt.datetime) -> bool:
        with self._lock:
            self._count += 1
            purge = self._count % self._purge_every == 0
        try:
            with self.engine.begin() as conn:
                if purge:
                    conn.execute(delete(replay_cache).where(replay_cache.c.expires_at < dt.datetime.now(dt.UTC)))
                conn.execute(_INSERT, {"digest": key, "expires_at": expires})
        except IntegrityError:
            return False
        return True
