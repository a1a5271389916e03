"""The hash-chained audit log.

Each row's hash is SHA-256 over its own fields and the previous row's hash;
``audit_head`` holds the newest (seq, hash) and is locked by each appender, so
the chain stays one line whatever the number of workers. :func:`verify_chain`
names the first row that does not fit: an edited row breaks its own hash, a
deleted or reordered row breaks the link or the sequence, a cut tail breaks
the head.

Appends outside a caller's transaction are group-committed (:class:`~.group_commit.GroupCommit`): rows that arrive
while one transaction is being written go in the next one together, each caller still returning only
once its row is committed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from mycarenet_ic.domain.identifiers import is_valid_niss
from mycarenet_ic.domain.qualities import CallerIdentity
from mycarenet_ic.errors import Replayed
from mycarenet_ic.persistence.db import DriverSql, reading
from mycarenet_ic.persistence.group_commit import GroupCommit
from mycarenet_ic.persistence.pseudonym import Pseudonymiser
from mycarenet_ic.persistence.replay import KeyStore
from mycarenet_ic.persistence.tables import audit_head, audit_log
from mycarenet_ic.services.ports import AuditEntry
from mycarenet_ic.textsafe import printable

GENESIS = "0" * 64
# A NISS or BIS as people write it: 11 digits, perhaps grouped by dots, dashes or spaces (yy.mm.dd-sss.cc).
_NISS_LIKE = re.compile(r"(?<!\d)\d{2}[.\- ]?\d{2}[.\- ]?\d{2}[.\- ]?\d{3}[.\- ]?\d{2}(?!\d)")
OUTCOMES = ("OK", "DENIED", "ERROR")
# The append's statements, run on the driver's cursor in the caller's transaction (db.DriverSql: SQLAlchemy's
# work per execution was most of an audit row's cost). The head is locked: FOR UPDATE on PostgreSQL, and on
# SQLite by the writer's BEGIN IMMEDIATE.
_LOCK_HEAD = DriverSql("SELECT seq, hash FROM audit_head WHERE id = 1", for_update=True)
_ROW = ("INSERT INTO audit_log (seq, at, service, caller, operation, patient, outcome, request_id, detail, prev_hash, "
        "hash) VALUES (:seq, :at, :service, :caller, :operation, :patient, :outcome, :request_id, :detail, :prev_hash, "
        ":hash)")
_INSERT_ROW = DriverSql(_ROW)
_MOVE_HEAD = DriverSql("UPDATE audit_head SET seq = :new_seq, hash = :new_hash WHERE id = 1")
# PostgreSQL: each row's insert moves the head to itself in the same statement (a data-modifying WITH runs once,
# referenced or not), so a group is one round trip less; the last row of a group leaves the head at its end.
_INSERT_ROW_MOVING_HEAD = DriverSql(
    "WITH moved AS (UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1) " + _ROW)  # noqa: S608 - constants only


def filtered(text: str, limit: int) -> str:
    """What the audit stores of text that may come from a request (a header, an attribute, a validator's
    words about a value): control and bidi characters as visible escapes, every valid NISS/BIS masked
    (the patient is stored only as a pseudonym, in its own column), cut to ``limit``."""

    def mask(match: re.Match[str]) -> str:
        return "[niss]" if is_valid_niss(re.sub(r"\D", "", match.group())) else match.group()

    return _NISS_LIKE.sub(mask, printable(text))[:limit]


def _row_hash(row: dict[str, object]) -> str:
    fields = [row["seq"], row["at"], row["service"], row["caller"], row["operation"], row["patient"],
              row["outcome"], row["request_id"], row["detail"], row["prev_hash"]]
    return hashlib.sha256(json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()).hexdigest()


class SqlAuditLog:
    def __init__(self, engine: Engine, pseudonymiser: Pseudonymiser) -> None:
        self.engine = engine
        self.pseudonymiser = pseudonymiser
        self._replay = KeyStore()
        self._group: GroupCommit[AuditEntry, int] = GroupCommit(self._commit)

    def caller_label(self, caller: CallerIdentity) -> str:
        """Who called, for the audit: a NIHII as it is, a NISS only as a pseudonym (no NISS is stored)."""
        if caller.nihii:
            return f"{caller.quality.value}:{caller.nihii}"
        if caller.ssin:
            return f"{caller.quality.value}:ssin#{self.pseudonymiser.pseudonym(caller.ssin, 'caller')[:20]}"
        # Platform certificates name a service, not a person: its CN (first RDN of the subject).
        return f"{caller.quality.value}:{caller.subject.split(',')[0].partition('=')[2] or '?'}"

    def append(self, entry: AuditEntry, conn: Connection | None = None) -> int:
        """Append one row (inside ``conn``'s transaction if given) and return its seq."""
        if entry.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {entry.outcome}")
        if conn is None:
            return self._group.submit(entry)
        return self._append(conn, [entry])[0]

    def claim(self, conn: Connection, entry: AuditEntry) -> AuditEntry:
        """The replay key of ``entry``'s signature stored first thing in ``conn``'s transaction (a write's: a
        signature another worker took makes it commit nothing, before it even reads); ``entry`` without it,
        for the row the write appends last. Raises :class:`Replayed`."""
        if entry.replay is not None and entry.seq is None and not self._replay.store_keys(conn, [entry.replay])[0]:
            raise Replayed()
        return replace(entry, replay=None)

    def _commit(self, entries: Sequence[AuditEntry]) -> list[int]:
        with self.engine.begin() as conn:
            return self._append(conn, entries)

    def _append(self, conn: Connection, entries: Sequence[AuditEntry]) -> list[int]:
        """``entries`` chained after the head, in order: the head read (locked) and moved once. The replay
        key of an entry's signature goes in with its first row; a key already stored raises :class:`Replayed`
        (a group that raises is written again entry by entry: only the replay's caller fails)."""
        claims = [e.replay for e in entries if e.replay is not None and e.seq is None]
        if claims and not all(self._replay.store_keys(conn, claims)):
            raise Replayed()
        _, head = _LOCK_HEAD.execute(conn, {})
        if head is None:
            raise RuntimeError("the audit chain has no head row (the schema was not migrated)")
        seq, prev_hash = int(head[0]), str(head[1])
        rows = []
        for entry in entries:
            seq += 1
            row = self._row(entry, seq, prev_hash)
            prev_hash = str(row["hash"])
            rows.append(row)
        if conn.dialect.name == "postgresql":
            _INSERT_ROW_MOVING_HEAD.execute_many(conn, rows)
        else:  # SQLite's statements cost no round trip
            _INSERT_ROW.execute_many(conn, rows)
            _MOVE_HEAD.execute(conn, {"new_seq": seq, "new_hash": prev_hash})
        return [int(row["seq"]) for row in rows]  # type: ignore[call-overload]

    def _row(self, entry: AuditEntry, seq: int, prev_hash: str) -> dict[str, object]:
        row: dict[str, object] = {
            "seq": seq,
            "at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "service": filtered(entry.service, 64),
            "caller": filtered(entry.caller, 256),
            "operation": filtered(entry.operation, 128),
            "patient": self.pseudonymiser.pseudonym(entry.patient) if entry.patient else None,
            "outcome": entry.outcome,
            "request_id": filtered(entry.request_id, 128) if entry.request_id else None,
            "detail": filtered(entry.detail, 2000),
            "prev_hash": prev_hash,
        }
        row["hash"] = _row_hash(row)
        return row

    def rows(self, limit: int | None = None, outcome: str | None = None) -> list[dict[str, object]]:
        query = select(audit_log).order_by(audit_log.c.seq.desc())
        if outcome:
            query = query.where(audit_log.c.outcome == outcome)
        if limit:
            query = query.limit(limit)
        with reading(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(query)][::-1]

    def refusals(self, limit: int) -> list[dict[str, object]]:
        """The newest ``limit`` rows of requests refused or failed (DENIED, ERROR), oldest first."""
        query = select(audit_log).where(audit_log.c.outcome != "OK").order_by(audit_log.c.seq.desc()).limit(limit)
        with reading(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(query)][::-1]


@dataclass(frozen=True)
class ChainReport:
    rows: int
    broken_seq: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def _iter_rows(engine: Engine, batch: int = 5000) -> Iterator[dict[str, object]]:
    last = 0
    with reading(engine) as conn:
        while True:
            chunk = conn.execute(
                select(audit_log).where(audit_log.c.seq > last).order_by(audit_log.c.seq).limit(batch)
            ).all()
            if not chunk:
                return
            for r in chunk:
                yield dict(r._mapping)
            last = chunk[-1].seq


def verify_chain(engine: Engine) -> ChainReport:
    """Walk the chain in constant memory; name the first row that does not fit."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for row in _iter_rows(engine):
        count += 1
        seq = int(row["seq"])  # type: ignore[call-overload]
        if seq != expected_seq:
            return ChainReport(count, seq, f"row {seq} follows row {expected_seq - 1}: rows missing")
        if row["prev_hash"] != prev_hash:
            return ChainReport(count, seq, f"row {seq} does not link to the row before it")
        if _row_hash(row) != row["hash"]:
            return ChainReport(count, seq, f"row {seq} was changed after it was written")
        prev_hash, expected_seq = str(row["hash"]), seq + 1
    with reading(engine) as conn:
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    if head.seq != expected_seq - 1 or head.hash != prev_hash:
        return ChainReport(count, expected_seq, f"rows after {expected_seq - 1} are missing (head is {head.seq})")
    return ChainReport(count, None, None)
