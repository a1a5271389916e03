"""Where the inspector keeps the exchanges: ``inspector.sqlite3`` in the data directory (0600), bounded by
count and age, written by one thread off the request path.

Not a table of the platform's database, on purpose: the raw messages carry NISS in clear, which that
database never holds (patients are pseudonyms and sealed NISS there, and it may be a shared PostgreSQL
with its own backups); a file of its own is as owner-only as the keys beside it, is the same whichever
database the services use, stays out of the audit and the services' state, and is wiped by deleting it.
It is a bounded cache of traffic, not a record: its schema is its own (``PRAGMA user_version``; a file of
another version is emptied and made again), not the platform's Alembic history.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Engine

from mycarenet_ic.config import Settings
from mycarenet_ic.inspector import Exchange
from mycarenet_ic.persistence.db import make_engine, reading

log = logging.getLogger(__name__)

FILE_NAME = "inspector.sqlite3"
SCHEMA_VERSION = 2  # 2: audit_seq
_AT = "%Y-%m-%dT%H:%M:%S.%fZ"  # one width: the text sorts as the time does

metadata = MetaData()
exchange_table = Table(
    "exchange",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(32), nullable=False, index=True),
    Column("service", String(64), nullable=False, index=True),
    Column("operation", String(128), nullable=False),
    Column("caller", String(256), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("status", Integer, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("code", String(64), nullable=True),
    Column("reason", Text, nullable=True),
    Column("request_id", String(128), nullable=True),
    Column("audit_seq", Integer, nullable=True, index=True),
    Column("request", LargeBinary, nullable=False),
    Column("answer", LargeBinary, nullable=False),
    sqlite_autoincrement=True,  # ids are never reused: "newer" is "larger", also after pruning
)
_SUMMARY = [c for c in exchange_table.c if c.name not in ("request", "answer")]


def _at(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime(_AT)


def _exchange(row: Any, with_bodies: bool) -> Exchange:
    m = row._mapping
    return Exchange(at=dt.datetime.strptime(m["at"], _AT).replace(tzinfo=dt.UTC), service=m["service"],
                    operation=m["operation"], caller=m["caller"], outcome=m["outcome"], status=m["status"],
                    duration_ms=m["duration_ms"], request=m["request"] if with_bodies else b"",
                    answer=m["answer"] if with_bodies else b"", code=m["code"], reason=m["reason"],
                    request_id=m["request_id"], id=m["id"], audit_seq=m["audit_seq"])


@dataclass(frozen=True)
class Filters:
    """What ``list`` keeps: each given field must match exactly; ``since`` is the earliest time, ``until``
    the latest (both included)."""

    service: str | None = None
    caller: str | None = None
    outcome: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def where(self, query: Any) -> Any:
        """``query`` (on the exchange table) narrowed to what these filters keep."""
        t = exchange_table
        for column, value in (("service", self.service), ("caller", self.caller), ("outcome", self.outcome)):
            if value is not None:
                query = query.where(t.c[column] == value)
        if self.since is not None:
            query = query.where(t.c.at >= _at(self.since))
        if self.until is not None:
            query = query.where(t.c.at <= _at(self.until))
        return query


class InspectorStore:
    """The exchanges of one data directory, at most ``max_exchanges`` and none older than ``max_age_seconds``
    (pruned as they are written, and by the writer when it starts and when idle)."""

    def __init__(self, path: Path, max_exchanges: int = Settings.inspector_max_exchanges,
                 max_age_seconds: float = Settings.inspector_max_age_seconds) -> None:
        if max_exchanges < 1 or max_age_seconds <= 0:
            raise ValueError("the inspector keeps at least one exchange for some time")
        self.path = path
        self.max_exchanges = max_exchanges
        self.max_age = dt.timedelta(seconds=max_age_seconds)
        self.engine: Engine = make_engine(f"sqlite:///{path.resolve()}", pool_size=2)
        self._ensure_schema()

    @classmethod
    def of(cls, settings: Settings) -> InspectorStore:
        return cls(settings.data_dir / FILE_NAME, settings.inspector_max_exchanges,
                   settings.inspector_max_age_seconds)

    def _ensure_schema(self) -> None:
        with self.engine.begin() as conn:
            version = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
            if version not in (0, SCHEMA_VERSION):  # another version's cache: start again
                metadata.drop_all(conn)
            metadata.create_all(conn)
            conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def write(self, exchanges: Sequence[Exchange], now: dt.datetime | None = None) -> None:
        """Store ``exchanges`` (one transaction), then drop what is past the bounds."""
        if not exchanges:
            return
        rows = [{"at": _at(e.at), "service": e.service[:64], "operation": e.operation[:128],
                 "caller": e.caller[:256], "outcome": e.outcome[:16], "status": e.status,
                 "duration_ms": e.duration_ms, "code": e.code, "reason": e.reason,
                 "request_id": (e.request_id or None) and e.request_id[:128], "audit_seq": e.audit_seq,
                 "request": e.request,
                 "answer": e.answer} for e in exchanges]
        with self.engine.begin() as conn:
            conn.execute(insert(exchange_table), rows)
            self._prune(conn, now)

    def prune(self, now: dt.datetime | None = None) -> None:
        with self.engine.begin() as conn:
            self._prune(conn, now)

    def _prune(self, conn: Any, now: dt.datetime | None) -> None:
        cutoff = _at((now or dt.datetime.now(dt.UTC)) - self.max_age)
        conn.execute(delete(exchange_table).where(exchange_table.c.at < cutoff))
        newest = conn.execute(select(func.max(exchange_table.c.id))).scalar()
        if newest is not None and newest > self.max_exchanges:
            conn.execute(delete(exchange_table).where(exchange_table.c.id <= newest - self.max_exchanges))

    def list(self, filters: Filters = Filters(), limit: int = 50, after: int | None = None,
             offset: int = 0) -> list[Exchange]:
        """Summaries (no bodies): the newest ``limit`` matching (past the ``offset`` newest), newest first; with
        ``after``, the ones stored after that id, oldest first (what a follower reads)."""
        t = exchange_table
        query = filters.where(select(*_SUMMARY))
        if after is not None:
            query = query.where(t.c.id > after).order_by(t.c.id)
        else:
            query = query.order_by(t.c.id.desc())
        with reading(self.engine) as conn:
            return [_exchange(row, False) for row in conn.execute(query.limit(limit).offset(offset))]

    def matching(self, filters: Filters) -> int:
        """How many exchanges ``filters`` keep (a page count)."""
        with reading(self.engine) as conn:
            return int(conn.execute(filters.where(select(func.count()).select_from(exchange_table))).scalar_one())

    def services(self) -> tuple[str, ...]:
        """The services of the exchanges kept, by name (what a filter may choose from)."""
        with reading(self.engine) as conn:
            return tuple(conn.execute(select(exchange_table.c.service).distinct().order_by(
                exchange_table.c.service)).scalars())

    def get(self, exchange_id: int) -> Exchange | None:
        with reading(self.engine) as conn:
            row = conn.execute(select(exchange_table).where(exchange_table.c.id == exchange_id)).first()
        return None if row is None else _exchange(row, True)

    def of_audit_row(self, audit_seq: int) -> int | None:
        """The id of the exchange whose audit row is ``audit_seq`` (None: not recorded, or not yet, or pruned)."""
        with reading(self.engine) as conn:
            found = conn.execute(select(exchange_table.c.id).where(exchange_table.c.audit_seq == audit_seq)
                                 .order_by(exchange_table.c.id.desc()).limit(1)).scalar()
        return None if found is None else int(found)

    def newest_id(self) -> int:
        with reading(self.engine) as conn:
            return int(conn.execute(select(func.coalesce(func.max(exchange_table.c.id), 0))).scalar_one())

    def count(self) -> int:
        with reading(self.engine) as conn:
            return int(conn.execute(text("SELECT count(*) FROM exchange")).scalar_one())

    def close(self) -> None:
        self.engine.dispose()


_STOP = object()


class QueuedRecorder:
    """A :class:`~mycarenet_ic.inspector.Recorder` that costs the request thread one queue put: one writer
    thread stores what is queued, in batches. The queue is bounded (``max_pending`` exchanges and
    ``max_pending_bytes`` of messages): past that, exchanges are dropped (counted in ``dropped``, logged),
    never waited for. ``flush()`` waits until everything queued is stored; ``close()`` stores the rest."""

    def __init__(self, store: InspectorStore, max_pending: int = 1000, max_pending_bytes: int = 64 << 20,
                 prune_every_seconds: float = 60.0, batch: int = 200) -> None:
        self.store = store
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(max_pending)
        self._max_bytes = max_pending_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self._closed = False
        self._prune_every = prune_every_seconds
        self._batch = batch
        self._thread = threading.Thread(target=self._run, name="inspector-writer", daemon=True)
        self._thread.start()

    def record(self, exchange: Exchange) -> None:
        size = len(exchange.request) + len(exchange.answer)
        with self._lock:
            if self._closed or self._bytes + size > self._max_bytes or self._queue.full():
                self.dropped += 1
                dropped = self.dropped
            else:
                self._bytes += size
                self._queue.put_nowait(exchange)  # not full, and only record() puts (under this lock)
                return
        if dropped == 1 or dropped % 1000 == 0:
            log.warning("inspector: %d exchanges not recorded (writer behind, queue full)", dropped)

    def _run(self) -> None:
        self._guarded(self.store.prune)
        while True:
            try:
                first = self._queue.get(timeout=self._prune_every)
            except queue.Empty:
                self._guarded(self.store.prune)
                continue
            batch = [first]
            while len(batch) < self._batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            exchanges = [e for e in batch if e is not _STOP]
            self._guarded(functools.partial(self.store.write, exchanges))
            with self._lock:
                self._bytes -= sum(len(e.request) + len(e.answer) for e in exchanges)
            for _ in batch:
                self._queue.task_done()
            if len(exchanges) != len(batch):
                return

    @staticmethod
    def _guarded(work: Any) -> None:
        try:
            work()
        except Exception:  # noqa: BLE001 - a lost batch of a debugging aid; the writer goes on
            log.exception("inspector: storing exchanges failed")

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)  # may wait for room: the writer is draining
        self._thread.join(timeout=30)
        self.store.close()
