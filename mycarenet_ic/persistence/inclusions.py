"""Inclusions in SQL: the patient as a pseudonym (+ a sealed NISS), one lock per patient, an event
per change (what the insurer export reads), and the first answer kept per (sender, request Id)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mycarenet_ic.domain.inclusions import Consent, Inclusion, Status, close_at_death
from mycarenet_ic.errors import BusinessRuleViolation
from mycarenet_ic.persistence.audit import AuditEntry, SqlAuditLog
from mycarenet_ic.persistence.db import reading
from mycarenet_ic.persistence.pseudonym import NissSealer, Pseudonymiser
from mycarenet_ic.persistence.tables import feed_cursor, ic_event, ic_inclusion, ic_patient, ic_request
from mycarenet_ic.services.integrated_care import ChangeFn, WriteOutcome

SERVICE = "integrated-care"


def _d(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def _pd(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def inclusion_to_dict(inc: Inclusion) -> dict[str, Any]:
    """The inclusion as JSON-able data, without the patient (no NISS, no pseudonym)."""
    return {
        "id": inc.id, "project": inc.project, "status": inc.status.value,
        "declared_start": _d(inc.declared_start), "start": _d(inc.start),
        "declared_end": _d(inc.declared_end), "end": _d(inc.end), "closed_by_death": inc.closed_by_death,
        "consent": inc.consent.value if inc.consent else None, "consent_date": _d(inc.consent_date),
        "provider_nihii": inc.provider_nihii, "version": inc.version,
    }


def inclusion_from_dict(data: dict[str, Any], patient: str = "") -> Inclusion:
    start = _pd(data["declared_start"])
    assert start is not None
    return Inclusion(
        id=data["id"], patient=patient, project=data["project"], status=Status(data["status"]),
        declared_start=start, consent=Consent(data["consent"]) if data.get("consent") else None,
        consent_date=_pd(data.get("consent_date")), declared_end=_pd(data.get("declared_end")),
        closed_by_death=bool(data.get("closed_by_death")), provider_nihii=data.get("provider_nihii"),
        version=int(data["version"]),
    )


def _from_row(row: Any) -> Inclusion:
    return Inclusion(
        id=row.id, patient=row.patient, project=row.project, status=Status(row.status),
        declared_start=row.declared_start, consent=Consent(row.consent) if row.consent else None,
        consent_date=row.consent_date, declared_end=row.declared_end, closed_by_death=bool(row.closed_by_death),
        provider_nihii=row.provider_nihii, version=row.version,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ConcurrentChange(Exception):
    """The inclusion changed between read and write (optimistic version check)."""


@dataclass(frozen=True)
class ExportEvent:
    seq: int
    at: dt.datetime
    kind: str
    ssin: str
    inclusion: dict[str, Any]


class SqlInclusionStore:
    def __init__(self, engine: Engine, pseudonymiser: Pseudonymiser, sealer: NissSealer,
                 audit: SqlAuditLog | None = None) -> None:
        self.engine = engine
        self.pseudonymiser = pseudonymiser
        self.sealer = sealer
        self.audit = audit

    def key(self, ssin: str) -> str:
        return self.pseudonymiser.pseudonym(ssin)

    # -- reads -----------------------------------------------------------------------------------------
    def inclusions_of(self, ssin: str) -> list[Inclusion]:
        with reading(self.engine) as conn:
            return self._of(conn, self.key(ssin))

    @staticmethod
    def _of(conn: Connection, patient: str) -> list[Inclusion]:
        rows = conn.execute(select(ic_inclusion).where(ic_inclusion.c.patient == patient)
                            .order_by(ic_inclusion.c.declared_start, ic_inclusion.c.id))
        return [_from_row(r) for r in rows]

    def get(self, inclusion_id: str) -> Inclusion | None:
        with reading(self.engine) as conn:
            row = conn.execute(select(ic_inclusion).where(ic_inclusion.c.id == inclusion_id)).first()
        return _from_row(row) if row else None

    def belongs_to(self, inclusion: Inclusion, ssin: str) -> bool:
        return inclusion.patient == self.key(ssin)

    def project_page(self, project: str, on: dt.date, offset: int,
                     limit: int) -> tuple[list[tuple[str, Inclusion]], int]:
        """Inclusions of ``project`` not ended before ``on``, with the patient's NISS (unsealed)."""
        where = and_(ic_inclusion.c.project == project,
                     or_(ic_inclusion.c.end_date.is_(None), ic_inclusion.c.end_date >= on))
        with reading(self.engine) as conn:
            total = conn.execute(select(func.count()).select_from(ic_inclusion).where(where)).scalar_one()
            rows = conn.execute(select(ic_inclusion).where(where)
                                .order_by(ic_inclusion.c.start_date, ic_inclusion.c.id)
                                .offset(offset).limit(limit)).all()
        return [(self.sealer.open(r.patient_sealed), _from_row(r)) for r in rows], int(total)

    def replayed(self, sender: str, request_id: str, request_hash: str) -> WriteOutcome | None:
        with reading(self.engine) as conn:
            row = conn.execute(select(ic_request).where(
                ic_request.c.sender == sender, ic_request.c.request_id == request_id)).first()
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise BusinessRuleViolation("This request Id was already used for another request.",
                                        code="DUPLICATE_REQUEST_ID")
        answer = json.loads(row.answer)
        return WriteOutcome(inclusion_from_dict(answer["inclusion"]), answer["id"],
                            dt.datetime.fromisoformat(answer["at"]), replayed=True)

    # -- writes ----------------------------------------------------------------------------------------
    def _lock_patient(self, conn: Connection, patient: str) -> None:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(ic_patient).values(patient=patient).on_conflict_do_nothing())
            conn.execute(select(ic_patient.c.patient).where(ic_patient.c.patient == patient).with_for_update())
        else:  # SQLite: BEGIN IMMEDIATE already serialises writers
            conn.execute(ic_patient.insert().prefix_with("OR IGNORE").values(patient=patient))

    def _event(self, conn: Connection, kind: str, inc: Inclusion, sealed: str, at: dt.datetime) -> None:
        conn.execute(insert(ic_event).values(at=at, kind=kind, inclusion_id=inc.id, patient_sealed=sealed,
                                             snapshot=json.dumps(inclusion_to_dict(inc))))

    def _save(self, conn: Connection, inc: Inclusion, patient: str, sealed: str, operator: str,
              at: dt.datetime, new: bool) -> None:
        values = {
            "patient": patient, "patient_sealed": sealed, "project": inc.project, "status": inc.status.value,
            "declared_start": inc.declared_start, "start_date": inc.start, "declared_end": inc.declared_end,
            "end_date": inc.end, "closed_by_death": inc.closed_by_death,
            "consent": inc.consent.value if inc.consent else None, "consent_date": inc.consent_date,
            "provider_nihii": inc.provider_nihii, "operator": operator, "version": inc.version, "updated_at": at,
        }
        if new:
            conn.execute(insert(ic_inclusion).values(id=inc.id, created_at=at, **values))
            return
        done = conn.execute(update(ic_inclusion).where(ic_inclusion.c.id == inc.id,
                                                       ic_inclusion.c.version == inc.version - 1).values(**values))
        if done.rowcount != 1:
            raise ConcurrentChange(inc.id)

    def write(self, *, ssin: str, sender: str, request_id: str, operation: str, request_hash: str,
              operator: str | None, change: ChangeFn) -> WriteOutcome:
        """Lock the patient, let ``change`` decide on the current inclusions, store it all or nothing."""
        patient = self.key(ssin)
        operator_key = self.pseudonymiser.pseudonym(operator, "operator") if operator else "-"
        for _attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    self._lock_patient(conn, patient)
                    current = self._of(conn, patient)
                    inc, kind = change(current)
                    is_new = not inc.id
                    if is_new:
                        inc = replace(inc, id=uuid.uuid4().hex, patient=patient)
                    at = _now()
                    sealed = self.sealer.seal(ssin)
                    self._save(conn, inc, patient, sealed, operator_key, at, is_new)
                    self._event(conn, kind, inc, sealed, at)
                    outcome = WriteOutcome(inc, f"_{uuid.uuid4().hex}", at.replace(microsecond=0))
                    answer = {"id": outcome.answer_id, "at": outcome.answered_at.isoformat(),
                              "inclusion": inclusion_to_dict(inc)}
                    conn.execute(insert(ic_request).values(sender=sender, request_id=request_id, operation=operation,
                                                           request_hash=request_hash, answer=json.dumps(answer),
                                                           at=at))
                return outcome
            except IntegrityError:
                # The same request Id won a race with this one: answer what it answered.
                first = self.replayed(sender, request_id, request_hash)
                if first is not None:
                    return first
                raise
            except ConcurrentChange:
                continue
        raise ConcurrentChange("the inclusion kept changing")

    # -- National Register mutations ------------------------------------------------------------------
    def cursor(self, name: str) -> int:
        with reading(self.engine) as conn:
            pos = conn.execute(select(feed_cursor.c.position).where(feed_cursor.c.name == name)).scalar()
        return int(pos or 0)

    def _advance(self, conn: Connection, name: str, expected: int, position: int) -> bool:
        """Move the cursor from ``expected`` to ``position``; False if someone else moved it first."""
        if expected == 0:
            exists = conn.execute(select(feed_cursor.c.position).where(feed_cursor.c.name == name)
                                  .with_for_update()).scalar()
            if exists is None:
                conn.execute(insert(feed_cursor).values(name=name, position=position))
                return True
        done = conn.execute(update(feed_cursor).where(feed_cursor.c.name == name, feed_cursor.c.position == expected)
                            .values(position=position))
        return done.rowcount == 1

    def apply_ssin_change(self, cursor: str, seq: int, expected: int, old: str, new: str) -> int | None:
        """Move the inclusions of ``old`` to ``new``; None if this mutation was applied already."""
        old_key, new_key = self.key(old), self.key(new)
        with self.engine.begin() as conn:
            if not self._advance(conn, cursor, expected, seq):
                return None
            self._lock_patient(conn, old_key)
            self._lock_patient(conn, new_key)
            moved = self._of(conn, old_key)
            sealed, at = self.sealer.seal(new), _now()
            for inc in moved:
                bumped = replace(inc, patient=new_key, version=inc.version + 1)
                conn.execute(update(ic_inclusion).where(ic_inclusion.c.id == inc.id).values(
                    patient=new_key, patient_sealed=sealed, version=bumped.version, updated_at=at))
                self._event(conn, "ssin-change", bumped, sealed, at)
            self._audit(conn, f"NrMutation:SsinReplaced#{seq}", new, f"moved {len(moved)} inclusion(s) to the new NISS")
            return len(moved)

    def apply_death(self, cursor: str, seq: int, expected: int, ssin: str, death: dt.date) -> int | None:
        """Close every inclusion of ``ssin`` still open at ``death``; None if applied already."""
        patient = self.key(ssin)
        with self.engine.begin() as conn:
            if not self._advance(conn, cursor, expected, seq):
                return None
            self._lock_patient(conn, patient)
            sealed, at, closed = self.sealer.seal(ssin), _now(), 0
            for inc in self._of(conn, patient):
                done = close_at_death(inc, death)
                if done is None:
                    continue
                self._save(conn, done, patient, sealed, "national-register", at, new=False)
                self._event(conn, "death-closure", done, sealed, at)
                closed += 1
            self._audit(conn, f"NrMutation:Deceased#{seq}", ssin, f"closed {closed} inclusion(s) at {death}")
            return closed

    def skip(self, cursor: str, seq: int, expected: int) -> bool:
        with self.engine.begin() as conn:
            return self._advance(conn, cursor, expected, seq)

    def record(self, operation: str, detail: str) -> None:
        """One audit row for a batch operation (export, purge) outside any request."""
        with self.engine.begin() as conn:
            self._audit(conn, operation, None, detail)

    def _audit(self, conn: Connection, operation: str, ssin: str | None, detail: str) -> None:
        if self.audit is not None:
            self.audit.append(AuditEntry(SERVICE, operation, caller="platform:mutation-sync", patient=ssin,
                                         detail=detail), conn)

    # -- export and retention ---------------------------------------------------------------------------
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
                yield ExportEvent(r.seq, r.at, r.kind, self.sealer.open(r.patient_sealed), json.loads(r.snapshot))
            last = rows[-1].seq

    def last_event_seq(self) -> int:
        with reading(self.engine) as conn:
            return int(conn.execute(select(func.coalesce(func.max(ic_event.c.seq), 0))).scalar_one())

    def count_events_after(self, seq: int) -> int:
        with reading(self.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(ic_event).where(ic_event.c.seq > seq))
                       .scalar_one())

    def move_cursor(self, name: str, expected: int, position: int) -> bool:
        with self.engine.begin() as conn:
            return self._advance(conn, name, expected, position)

    def purge(self, ended_before: dt.date, detail: str) -> int:
        """Delete inclusions that ended before ``ended_before`` (and their events); audited."""
        with self.engine.begin() as conn:
            old = select(ic_inclusion.c.id).where(ic_inclusion.c.end_date.is_not(None),
                                                  ic_inclusion.c.end_date < ended_before)
            ids = [r.id for r in conn.execute(old)]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                conn.execute(delete(ic_event).where(ic_event.c.inclusion_id.in_(chunk)))
                conn.execute(delete(ic_inclusion).where(ic_inclusion.c.id.in_(chunk)))
            self._audit(conn, "Purge", None, f"{detail}: deleted {len(ids)} inclusion(s) ended before {ended_before}")
            return len(ids)
