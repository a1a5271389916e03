"""Inclusions in SQL: the patient as a pseudonym (+ a sealed NISS), one lock per patient, an event
per change (what the insurer export reads), and the first answer kept per (sender, request Id).

The operator's NISS (seed 000 annex, data 10) is kept the same way: a pseudonym (``operator``) and a
sealed NISS (``operator_sealed``) on the inclusion and on each event, opened only for an answer that
shows the inclusion and for the insurer export. A death applied from the mutation feed is kept on the
patient's lock row (pseudonymised), so a write that races the feed still cannot leave an inclusion
open past it."""

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

from mycarenet_ic.domain.inclusions import Closure, Consent, Inclusion, Status, close_at, close_at_death
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
        "closure": inc.closure.value if inc.closure else None,
        "consent": inc.consent.value if inc.consent else None, "consent_date": _d(inc.consent_date),
        "provider_nihii": inc.provider_nihii, "version": inc.version,
    }


def _closure(value: str | None, closed_by_death: bool) -> Closure | None:
    if value:
        return Closure(value)
    return Closure.DEATH if closed_by_death else None


def inclusion_from_dict(data: dict[str, Any], patient: str = "", operator: str | None = None) -> Inclusion:
    start = _pd(data["declared_start"])
    assert start is not None
    return Inclusion(
        id=data["id"], patient=patient, project=data["project"], status=Status(data["status"]),
        declared_start=start, consent=Consent(data["consent"]) if data.get("consent") else None,
        consent_date=_pd(data.get("consent_date")), declared_end=_pd(data.get("declared_end")),
        closure=_closure(data.get("closure"), bool(data.get("closed_by_death"))),
        provider_nihii=data.get("provider_nihii"), version=int(data["version"]), operator=operator,
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
    operator: str | None = None


class SqlInclusionStore:
    def __init__(self, engine: Engine, pseudonymiser: Pseudonymiser, sealer: NissSealer,
                 audit: SqlAuditLog | None = None) -> None:
        self.engine = engine
        self.pseudonymiser = pseudonymiser
        self.sealer = sealer
        self.audit = audit

    def key(self, ssin: str) -> str:
        return self.pseudonymiser.pseudonym(ssin)

    def _open(self, sealed: str | None) -> str | None:
        return self.sealer.open(sealed) if sealed else None

    def _from_row(self, row: Any) -> Inclusion:
        return Inclusion(
            id=row.id, patient=row.patient, project=row.project, status=Status(row.status),
            declared_start=row.declared_start, consent=Consent(row.consent) if row.consent else None,
            consent_date=row.consent_date, declared_end=row.declared_end,
            closure=_closure(row.closure_reason, bool(row.closed_by_death)),
            provider_nihii=row.provider_nihii, version=row.version, operator=self._open(row.operator_sealed),
        )

    # -- reads -----------------------------------------------------------------------------------------
    def inclusions_of(self, ssin: str) -> list[Inclusion]:
        with reading(self.engine) as conn:
            return self._of(conn, self.key(ssin))

    def _of(self, conn: Connection, patient: str) -> list[Inclusion]:
        rows = conn.execute(select(ic_inclusion).where(ic_inclusion.c.patient == patient)
                            .order_by(ic_inclusion.c.declared_start, ic_inclusion.c.id))
        return [self._from_row(r) for r in rows]

    def get(self, inclusion_id: str) -> Inclusion | None:
        with reading(self.engine) as conn:
            row = conn.execute(select(ic_inclusion).where(ic_inclusion.c.id == inclusion_id)).first()
        return self._from_row(row) if row else None

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
        return [(self.sealer.open(r.patient_sealed), self._from_row(r)) for r in rows], int(total)

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
        first = inclusion_from_dict(answer["inclusion"], operator=self._open(answer.get("operator_sealed")))
        return WriteOutcome(first, answer["id"], dt.datetime.fromisoformat(answer["at"]), replayed=True)

    # -- writes ----------------------------------------------------------------------------------------
    def _lock_patient(self, conn: Connection, patient: str) -> None:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(ic_patient).values(patient=patient).on_conflict_do_nothing())
            conn.execute(select(ic_patient.c.patient).where(ic_patient.c.patient == patient).with_for_update())
        else:  # SQLite: BEGIN IMMEDIATE already serialises writers
            conn.execute(ic_patient.insert().prefix_with("OR IGNORE").values(patient=patient))

    def _event(self, conn: Connection, kind: str, inc: Inclusion, sealed: str, at: dt.datetime,
               operator_sealed: str | None = None) -> None:
        conn.execute(insert(ic_event).values(at=at, kind=kind, inclusion_id=inc.id, patient_sealed=sealed,
                                             snapshot=json.dumps(inclusion_to_dict(inc)),
                                             operator_sealed=operator_sealed))

    def _save(self, conn: Connection, inc: Inclusion, patient: str, sealed: str,
              operator: tuple[str, str | None] | None, at: dt.datetime, new: bool) -> None:
        """Insert or update ``inc``; ``operator`` (pseudonym, sealed NISS) is left as it was when None
        (the platform's own closures: the last person who operated stays the operator)."""
        values: dict[str, Any] = {
            "patient": patient, "patient_sealed": sealed, "project": inc.project, "status": inc.status.value,
            "declared_start": inc.declared_start, "start_date": inc.start, "declared_end": inc.declared_end,
            "end_date": inc.end, "closed_by_death": inc.closed_by_death,
            "closure_reason": inc.closure.value if inc.closure else None,
            "consent": inc.consent.value if inc.consent else None, "consent_date": inc.consent_date,
            "provider_nihii": inc.provider_nihii, "version": inc.version, "updated_at": at,
        }
        if operator is not None:
            values["operator"], values["operator_sealed"] = operator
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
                    # A death the feed applied after the service looked at the National Register.
                    death = self._recorded_death(conn, patient)
                    if death is not None:
                        inc = replace(close_at_death(inc, death) or inc, version=inc.version)
                    is_new = not inc.id
                    if is_new:
                        inc = replace(inc, id=uuid.uuid4().hex, patient=patient)
                    inc = replace(inc, operator=operator)
                    at = _now()
                    sealed = self.sealer.seal(ssin)
                    operator_sealed = self.sealer.seal(operator) if operator else None
                    self._save(conn, inc, patient, sealed, (operator_key, operator_sealed), at, is_new)
                    self._event(conn, kind, inc, sealed, at, operator_sealed)
                    outcome = WriteOutcome(inc, f"_{uuid.uuid4().hex}", at.replace(microsecond=0))
                    answer = {"id": outcome.answer_id, "at": outcome.answered_at.isoformat(),
                              "inclusion": inclusion_to_dict(inc), "operator_sealed": operator_sealed}
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

    @staticmethod
    def _operator_sealed(conn: Connection, inclusion_id: str) -> str | None:
        """The inclusion's operator as stored (the platform's own events carry the last person's)."""
        value = conn.execute(select(ic_inclusion.c.operator_sealed).where(ic_inclusion.c.id == inclusion_id)).scalar()
        return str(value) if value else None

    @staticmethod
    def _recorded_death(conn: Connection, patient: str) -> dt.date | None:
        death = conn.execute(select(ic_patient.c.death_date).where(ic_patient.c.patient == patient)).scalar()
        return death if isinstance(death, dt.date) else None

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
                self._event(conn, "ssin-change", bumped, sealed, at, self._operator_sealed(conn, inc.id))
            self._audit(conn, f"NrMutation:SsinReplaced#{seq}", new, f"moved {len(moved)} inclusion(s) to the new NISS")
            return len(moved)

    def apply_death(self, cursor: str, seq: int, expected: int, ssin: str, death: dt.date) -> int | None:
        """Close every inclusion of ``ssin`` still open at ``death``; None if applied already."""
        patient = self.key(ssin)
        with self.engine.begin() as conn:
            if not self._advance(conn, cursor, expected, seq):
                return None
            self._lock_patient(conn, patient)
            conn.execute(update(ic_patient).where(ic_patient.c.patient == patient).values(death_date=death))
            sealed, at, closed = self.sealer.seal(ssin), _now(), 0
            for inc in self._of(conn, patient):
                done = close_at_death(inc, death)
                if done is None:
                    continue
                self._save(conn, done, patient, sealed, None, at, new=False)
                self._event(conn, "death-closure", done, sealed, at, self._operator_sealed(conn, done.id))
                closed += 1
            self._audit(conn, f"NrMutation:Deceased#{seq}", ssin, f"closed {closed} inclusion(s) at {death}")
            return closed

    # -- stopped projects ---------------------------------------------------------------------------------
    def _running_past(self, project: str, day: dt.date) -> Any:
        return and_(ic_inclusion.c.project == project,
                    or_(ic_inclusion.c.end_date.is_(None), ic_inclusion.c.end_date > day))

    def close_project(self, project: str, day: dt.date, detail: str) -> int:
        """Close every inclusion of ``project`` that runs past ``day`` at ``day`` (a stopped PSI); audited.

        Idempotent: a second call finds nothing to close and writes nothing (not even an audit row)."""
        with reading(self.engine) as conn:
            if not conn.execute(select(func.count()).select_from(ic_inclusion)
                                .where(self._running_past(project, day))).scalar_one():
                return 0
        closed = 0
        with self.engine.begin() as conn:
            ids = [r.id for r in conn.execute(select(ic_inclusion.c.id, ic_inclusion.c.patient)
                                              .where(self._running_past(project, day))
                                              .order_by(ic_inclusion.c.patient, ic_inclusion.c.id))]
            at = _now()
            for inclusion_id in ids:
                row = conn.execute(select(ic_inclusion).where(ic_inclusion.c.id == inclusion_id)).one()
                self._lock_patient(conn, row.patient)
                done = close_at(self._from_row(row), day, Closure.PROJECT_STOPPED)
                if done is None:
                    continue
                self._save(conn, done, row.patient, row.patient_sealed, None, at, new=False)
                self._event(conn, "project-closure", done, row.patient_sealed, at, row.operator_sealed)
                closed += 1
            if self.audit is not None:
                self.audit.append(AuditEntry(SERVICE, f"ProjectStopped:{project}", caller="platform:cobrha",
                                             detail=f"closed {closed} inclusion(s) at {day}: {detail}"), conn)
        return closed

    def projects(self) -> set[str]:
        """Every project that has an inclusion still open (no end) or ending after today."""
        with reading(self.engine) as conn:
            rows = conn.execute(select(ic_inclusion.c.project).distinct().where(
                or_(ic_inclusion.c.end_date.is_(None), ic_inclusion.c.end_date >= dt.date.today())))
            return {r.project for r in rows}

    # -- statistics ------------------------------------------------------------------------------------
    def effective_on(self, day: dt.date, project: str | None = None,
                     batch: int = 2000) -> Iterator[tuple[str, Inclusion]]:
        """Every inclusion in effect on ``day`` (started, not ended), with the patient's NISS, in batches."""
        where = and_(ic_inclusion.c.start_date <= day,
                     or_(ic_inclusion.c.end_date.is_(None), ic_inclusion.c.end_date >= day),
                     *([ic_inclusion.c.project == project] if project else []))
        last = ""
        while True:
            with reading(self.engine) as conn:
                rows = conn.execute(select(ic_inclusion).where(where, ic_inclusion.c.id > last)
                                    .order_by(ic_inclusion.c.id).limit(batch)).all()
            if not rows:
                return
            for r in rows:
                yield self.sealer.open(r.patient_sealed), self._from_row(r)
            last = rows[-1].id

    def skip(self, cursor: str, seq: int, expected: int) -> bool:
        with self.engine.begin() as conn:
            return self._advance(conn, cursor, expected, seq)

    def record(self, operation: str, detail: str, caller: str = "platform:mutation-sync") -> None:
        """One audit row for a batch operation (export, purge, statistics) outside any request."""
        with self.engine.begin() as conn:
            self._audit(conn, operation, None, detail, caller)

    def _audit(self, conn: Connection, operation: str, ssin: str | None, detail: str,
               caller: str = "platform:mutation-sync") -> None:
        if self.audit is not None:
            self.audit.append(AuditEntry(SERVICE, operation, caller=caller, patient=ssin, detail=detail), conn)

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
                yield ExportEvent(r.seq, r.at, r.kind, self.sealer.open(r.patient_sealed), json.loads(r.snapshot),
                                  self._open(r.operator_sealed))
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
