"""The research export's storage: the consenting patients read from the inclusion store (patient by
patient, in batches), and the access journal (``research_journal``), each line with its audit row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from mycarenet_ic.domain.inclusions import Consent, Inclusion
from mycarenet_ic.persistence.audit import SqlAuditLog
from mycarenet_ic.persistence.db import reading
from mycarenet_ic.persistence.inclusions import inclusion_from_row
from mycarenet_ic.persistence.pseudonym import NissSealer
from mycarenet_ic.persistence.tables import ic_inclusion, research_journal
from mycarenet_ic.services.ports import AuditEntry
from mycarenet_ic.services.research import DueSample, JournalEntry

SERVICE = "research"


def consenting_patients(engine: Engine, sealer: NissSealer, batch: int = 500) -> Iterator[tuple[str, list[Inclusion]]]:
    """Every patient with an agreement on an inclusion, with all their inclusions (a refusal elsewhere must
    be seen), ``batch`` patients at a time in the order of their pseudonyms (constant memory)."""
    last = ""
    while True:
        with reading(engine) as conn:
            patients = [r.patient for r in conn.execute(
                select(ic_inclusion.c.patient).distinct()
                .where(ic_inclusion.c.consent == Consent.AGREE.value, ic_inclusion.c.patient > last)
                .order_by(ic_inclusion.c.patient).limit(batch))]
            if not patients:
                return
            rows = conn.execute(select(ic_inclusion).where(ic_inclusion.c.patient.in_(patients))
                                .order_by(ic_inclusion.c.patient, ic_inclusion.c.start_date, ic_inclusion.c.id)).all()
        grouped: dict[str, tuple[str, list[Inclusion]]] = {}
        for r in rows:
            entry = grouped.setdefault(r.patient, (sealer.open(r.patient_sealed), []))
            entry[1].append(inclusion_from_row(r, sealer))
        for patient in patients:
            if patient in grouped:
                yield grouped[patient]
        last = patients[-1]


class SqlResearchJournal:
    """The access journal (seed 003 art. 2, 6): one line per extraction; a retention purge marks its lines."""

    def __init__(self, engine: Engine, audit: SqlAuditLog | None = None) -> None:
        self.engine = engine
        self.audit = audit

    def _audit(self, conn: Connection, operation: str, caller: str, detail: str) -> None:
        if self.audit is not None:
            self.audit.append(AuditEntry(SERVICE, operation, caller=caller, detail=detail), conn)

    def record(self, entry: JournalEntry) -> None:
        with self.engine.begin() as conn:
            conn.execute(research_journal.insert().values(
                extraction=entry.extraction, at=entry.at, caller=entry.caller, purpose=entry.purpose,
                project=entry.project, as_of=entry.as_of, reference_year=entry.reference_year,
                fields=",".join(entry.fields), scope=entry.scope, file=entry.file, file_sha256=entry.file_sha256,
                destroy_after=entry.destroy_after))
            self._audit(conn, "ResearchExport", entry.caller,
                        f"extraction {entry.extraction} project={entry.project} purpose={entry.purpose!r}: "
                        f"{entry.scope}")

    def entries(self) -> list[dict[str, object]]:
        with reading(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(select(research_journal).order_by(research_journal.c.seq))]

    def due(self, on: dt.date) -> list[DueSample]:
        with reading(self.engine) as conn:
            rows = conn.execute(select(research_journal.c.extraction, research_journal.c.file,
                                       research_journal.c.destroy_after)
                                .where(research_journal.c.destroy_after < on, research_journal.c.purged_at.is_(None))
                                .order_by(research_journal.c.seq)).all()
        return [DueSample(r.extraction, r.file, r.destroy_after) for r in rows]

    def purged(self, extractions: Sequence[str], on: dt.date, *, caller: str, files_deleted: int) -> None:
        at = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            for start in range(0, len(extractions), 500):
                conn.execute(update(research_journal)
                             .where(research_journal.c.extraction.in_(extractions[start:start + 500]))
                             .values(purged_at=at))
            self._audit(conn, "ResearchPurge", caller,
                        f"retention of 30 years as of {on}: {len(extractions)} sample(s) destroyed, "
                        f"{files_deleted} file(s) deleted")
