"""Inclusions in SQL: the patient as a pseudonym (+ a sealed NISS), one lock per patient, an event
per change (what the insurer export reads), and the first answer kept per (sender, request Id).

The operator's NISS (seed 000 annex, data 10) is kept the same way: a pseudonym (``operator``) and a
sealed NISS (``operator_sealed``) on the inclusion and on each event, opened only for an answer that
shows the inclusion and for the insurer export. A death applied from the mutation feed
(``mutation_sink``) is kept on the patient's lock row (pseudonymised), so a write that races the feed
still cannot leave an inclusion open past it.

The row-level steps (lock a patient, save an inclusion, record its event, read a patient's inclusions)
are module functions: the store, the mutation sink and the stopped-project closure share them. The
events as a feed, and the purge, are in ``inclusion_events``; the cursors in ``feed_cursors``."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mycarenet_ic.domain.inclusions import Closure, Consent, Inclusion, Status, close_at, close_at_death
from mycarenet_ic.errors import BusinessRuleViolation
from mycarenet_ic.persistence.audit import AuditEntry, SqlAuditLog
from mycarenet_ic.persistence.db import reading
from mycarenet_ic.persistence.pseudonym import NissSealer, Pseudonymiser
from mycarenet_ic.persistence.tables import ic_event, ic_inclusion, ic_patient, ic_request
from mycarenet_ic.services.ports import ChangeFn, WriteOutcome

SERVICE = "integrated-care"

# The statements of the declaration path, built once: SQLAlchemy then reuses their compiled form instead of
# building a statement and working out its cache key on every call (py-spy: statement building was most of
# the inclusion transaction's cost under load). Values are bound per execution.
_OF_PATIENT = (select(ic_inclusion).where(ic_inclusion.c.patient == bindparam("p_patient"))
               .order_by(ic_inclusion.c.declared_start, ic_inclusion.c.id))
_BY_ID = select(ic_inclusion).where(ic_inclusion.c.id == bindparam("p_id"))
_LOCK_SQLITE = ic_patient.insert().prefix_with("OR IGNORE")
# Plain SQL, as the replay cache's: a dialect insert with ON CONFLICT is compiled again on every execution.
_LOCK_PG_ROW = text("INSERT INTO ic_patient (patient) VALUES (:patient) ON CONFLICT (patient) DO NOTHING")
_LOCK_PG = select(ic_patient.c.patient).where(ic_patient.c.patient == bindparam("p_patient")).with_for_update()
_DEATH = select(ic_patient.c.death_date).where(ic_patient.c.patient == bindparam("p_patient"))
_INSERT_INCLUSION = insert(ic_inclusion)
_UPDATE_INCLUSION = update(ic_inclusion).where(ic_inclusion.c.id == bindparam("p_id"),
                                               ic_inclusion.c.version == bindparam("p_version"))
_INSERT_EVENT = insert(ic_event)
_INSERT_REQUEST = insert(ic_request)
_REQUEST = select(ic_request).where(ic_request.c.sender == bindparam("p_sender"),
                                    ic_request.c.request_id == bindparam("p_request_id"))


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


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ConcurrentChange(Exception):
    """The inclusion changed between read and write (optimistic version check)."""


# -- row-level steps, inside the caller's transaction ---------------------------------------------------

def open_sealed(sealer: NissSealer, sealed: str | None) -> str | None:
    return sealer.open(sealed) if sealed else None


def inclusion_from_row(row: Any, sealer: NissSealer) -> Inclusion:
    return Inclusion(
        id=row.id, patient=row.patient, project=row.project, status=Status(row.status),
        declared_start=row.declared_start, consent=Consent(row.consent) if row.consent else None,
        consent_date=row.consent_date, declared_end=row.declared_end,
        closure=_closure(row.closure_reason, bool(row.closed_by_death)),
        provider_nihii=row.provider_nihii, version=row.version, operator=open_sealed(sealer, row.operator_sealed),
    )


def inclusions_of_patient(conn: Connection, patient: str, sealer: NissSealer) -> list[Inclusion]:
    rows = conn.execute(_OF_PATIENT, {"p_patient": patient})
    return [inclusion_from_row(r, sealer) for r in rows]


def lock_patient(conn: Connection, patient: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_PG_ROW, {"patient": patient})
        conn.execute(_LOCK_PG, {"p_patient": patient})
    else:  # SQLite: BEGIN IMMEDIATE already serialises writers
        conn.execute(_LOCK_SQLITE, {"patient": patient})


def record_event(conn: Connection, kind: str, inc: Inclusion, sealed: str, at: dt.datetime,
                 operator_sealed: str | None = None) -> None:
    conn.execute(_INSERT_EVENT, {"at": at, "kind": kind, "inclusion_id": inc.id, "patient_sealed": sealed,
                                 "snapshot": json.dumps(inclusion_to_dict(inc)), "operator_sealed": operator_sealed})


def save_inclusion(conn: Connection, inc: Inclusion, patient: str, sealed: str,
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
        conn.execute(_INSERT_INCLUSION, {"id": inc.id, "created_at": at, **values})
        return
    done = conn.execute(_UPDATE_INCLUSION, {"p_id": inc.id, "p_version": inc.version - 1, **values})
    if done.rowcount != 1:
        raise ConcurrentChange(inc.id)


def stored_operator(conn: Connection, inclusion_id: str) -> str | None:
    """The inclusion's operator as stored (the platform's own events carry the last person's)."""
    value = conn.execute(select(ic_inclusion.c.operator_sealed).where(ic_inclusion.c.id == inclusion_id)).scalar()
    return str(value) if value else None


def audit_row(audit: SqlAuditLog | None, conn: Connection, operation: str, *, caller: str, detail: str,
              patient: str | None = None) -> None:
    """An Integrated Care audit row for what the platform did outside a request, in ``conn``'s transaction."""
    if audit is not None:
        audit.append(AuditEntry(SERVICE, operation, caller=caller, patient=patient, detail=detail), conn)


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
            return inclusions_of_patient(conn, self.key(ssin), self.sealer)

    def get(self, inclusion_id: str) -> Inclusion | None:
        with reading(self.engine) as conn:
            row = conn.execute(_BY_ID, {"p_id": inclusion_id}).first()
        return inclusion_from_row(row, self.sealer) if row else None

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
        return [(self.sealer.open(r.patient_sealed), inclusion_from_row(r, self.sealer)) for r in rows], int(total)

    def _sender(self, sender: str) -> str:
        """Whose request ids these are, as stored: a pseudonym (the holder key may carry a NISS)."""
        return self.pseudonymiser.pseudonym(sender, "sender")

    def replayed(self, sender: str, request_id: str, request_hash: str) -> WriteOutcome | None:
        with reading(self.engine) as conn:
            row = conn.execute(_REQUEST, {"p_sender": self._sender(sender), "p_request_id": request_id}).first()
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise BusinessRuleViolation("This request Id was already used for another request.",
                                        code="DUPLICATE_REQUEST_ID")
        answer = json.loads(row.answer)
        operator = open_sealed(self.sealer, answer.get("operator_sealed"))
        first = inclusion_from_dict(answer["inclusion"], operator=operator)
        return WriteOutcome(first, answer["id"], dt.datetime.fromisoformat(answer["at"]), replayed=True)

    # -- writes ----------------------------------------------------------------------------------------
    def write(self, *, ssin: str, sender: str, request_id: str, operation: str, request_hash: str,
              operator: str | None, change: ChangeFn, audit: AuditEntry | None = None) -> WriteOutcome:
        """Lock the patient, let ``change`` decide on the current inclusions, store it all or nothing:
        with ``audit``, the request's audit row too (last, so the chain's head is held only to the commit)."""
        patient = self.key(ssin)
        operator_key = self.pseudonymiser.pseudonym(operator, "operator") if operator else "-"
        for _attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    claimed = self.audit.claim(conn, audit) if audit is not None and self.audit is not None else None
                    lock_patient(conn, patient)
                    current = inclusions_of_patient(conn, patient, self.sealer)
                    inc, kind = change(current)
                    # A death the feed applied after the service looked at the National Register.
                    death = self._recorded_death(conn, patient)
                    if death is not None:
                        inc = replace(close_at_death(inc, death) or inc, version=inc.version)
                    is_new = not inc.id
                    if is_new:
                        inc = replace(inc, id=uuid.uuid4().hex, patient=patient)
                    inc = replace(inc, operator=operator)
                    at = now()
                    sealed = self.sealer.seal(ssin)
                    operator_sealed = self.sealer.seal(operator) if operator else None
                    save_inclusion(conn, inc, patient, sealed, (operator_key, operator_sealed), at, is_new)
                    record_event(conn, kind, inc, sealed, at, operator_sealed)
                    outcome = WriteOutcome(inc, f"_{uuid.uuid4().hex}", at.replace(microsecond=0))
                    answer = {"id": outcome.answer_id, "at": outcome.answered_at.isoformat(),
                              "inclusion": inclusion_to_dict(inc), "operator_sealed": operator_sealed}
                    conn.execute(_INSERT_REQUEST, {
                        "sender": self._sender(sender), "request_id": request_id, "operation": operation,
                        "request_hash": request_hash, "answer": json.dumps(answer), "at": at})
                    seq = (self.audit.append(replace(claimed, detail=outcome.audit_detail), conn)
                           if claimed is not None and self.audit is not None else None)
                if audit is not None and seq is not None:  # committed: the request's row is written
                    audit.detail, audit.seq = outcome.audit_detail, seq
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
    def _recorded_death(conn: Connection, patient: str) -> dt.date | None:
        death = conn.execute(_DEATH, {"p_patient": patient}).scalar()
        return death if isinstance(death, dt.date) else None

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
            at = now()
            for inclusion_id in ids:
                row = conn.execute(_BY_ID, {"p_id": inclusion_id}).one()
                lock_patient(conn, row.patient)
                done = close_at(inclusion_from_row(row, self.sealer), day, Closure.PROJECT_STOPPED)
                if done is None:
                    continue
                save_inclusion(conn, done, row.patient, row.patient_sealed, None, at, new=False)
                record_event(conn, "project-closure", done, row.patient_sealed, at, row.operator_sealed)
                closed += 1
            audit_row(self.audit, conn, f"ProjectStopped:{project}", caller="platform:cobrha",
                      detail=f"closed {closed} inclusion(s) at {day}: {detail}")
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
                yield self.sealer.open(r.patient_sealed), inclusion_from_row(r, self.sealer)
            last = rows[-1].id
