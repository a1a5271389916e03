"""The inclusions' change events as a feed (what the insurer export reads, in order, in batches), the
retention purge, and the audit rows of these batch operations, each naming who ran it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine

from mycarenet_ic.persistence.audit import SqlAuditLog
from mycarenet_ic.persistence.db import reading
from mycarenet_ic.persistence.inclusions import audit_row, open_sealed
from mycarenet_ic.persistence.pseudonym import NissSealer
from mycarenet_ic.persistence.tables import ic_event, ic_inclusion


@dataclass(frozen=True)
class ExportEvent:
    seq: int
    at: dt.datetime
    kind: str
    ssin: str
    inclusion: dict[str, Any]
    operator: str | None = None


class SqlInclusionEvents:
    def __init__(self, engine: Engine, sealer: NissSealer, audit: SqlAuditLog | None = None) -> None:
        self.engine = engine
        self.sealer = sealer
        self.audit = audit

    def events_after(self, seq: int, batch: int = 2000) -> Iterator[ExportEvent]:
        """Every event after ``seq``, in order, read in batches (constant memory)."""
        last = seq
        while True:
            with reading(self.engine) as conn:
                rows = conn.execute(select(ic_event).where(ic_event.c.seq > last)
                                    .order_by(ic_event.c.seq).limit(batch)).all()
            if not rows:
                return
            for r in rows:
                yield ExportEvent(r.seq, r.at, r.kind, self.sealer.open(r.patient_sealed), json.loads(r.snapshot),
                                  open_sealed(self.sealer, r.operator_sealed))
            last = rows[-1].seq

    def last_event_seq(self) -> int:
        with reading(self.engine) as conn:
            return int(conn.execute(select(func.coalesce(func.max(ic_event.c.seq), 0))).scalar_one())

    def count_events_after(self, seq: int) -> int:
        with reading(self.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(ic_event).where(ic_event.c.seq > seq))
                       .scalar_one())

    def record(self, operation: str, detail: str, *, caller: str) -> None:
        """One audit row for a batch operation (export, statistics) outside any request, by ``caller``."""
        with self.engine.begin() as conn:
            audit_row(self.audit, conn, operation, caller=caller, detail=detail)

    def purge(self, ended_before: dt.date, detail: str, *, caller: str) -> int:
        """Delete inclusions that ended before ``ended_before`` (and their events); audited as ``caller``'s."""
        with self.engine.begin() as conn:
            old = select(ic_inclusion.c.id).where(ic_inclusion.c.end_date.is_not(None),
                                                  ic_inclusion.c.end_date < ended_before)
            ids = [r.id for r in conn.execute(old)]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                conn.execute(delete(ic_event).where(ic_event.c.inclusion_id.in_(chunk)))
                conn.execute(delete(ic_inclusion).where(ic_inclusion.c.id.in_(chunk)))
            audit_row(self.audit, conn, "Purge", caller=caller,
                      detail=f"{detail}: deleted {len(ids)} inclusion(s) ended before {ended_before}")
            return len(ids)
