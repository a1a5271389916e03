"""The National Register's mutations applied to the inclusions (``services.mutations`` reads the feed):
each in the transaction that moves the feed cursor past it, only if the cursor is still where the
reader found it. A NISS change moves the patient's inclusions to the new NISS; a death is kept on
the patient's lock row and closes the inclusions still open at it. Both are audited."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from sqlalchemy import update

from mycarenet_ic.domain.inclusions import close_at_death
from mycarenet_ic.persistence.feed_cursors import SqlFeedCursors, advance
from mycarenet_ic.persistence.inclusions import (
    SqlInclusionStore,
    audit_row,
    inclusions_of_patient,
    lock_patient,
    now,
    record_event,
    save_inclusion,
    stored_operator,
)
from mycarenet_ic.persistence.tables import ic_inclusion, ic_patient

CALLER = "platform:mutation-sync"


class SqlMutationSink:
    """Works on the inclusions of ``store`` (its database, keys and audit log)."""

    def __init__(self, store: SqlInclusionStore) -> None:
        self.store = store
        self.engine, self.sealer, self.audit = store.engine, store.sealer, store.audit
        self.cursors = SqlFeedCursors(store.engine)

    def cursor(self, name: str) -> int:
        return self.cursors.cursor(name)

    def skip(self, cursor: str, seq: int, expected: int) -> bool:
        """Move past a mutation that changes no inclusion."""
        return self.cursors.move_cursor(cursor, expected, seq)

    def apply_ssin_change(self, cursor: str, seq: int, expected: int, old: str, new: str) -> int | None:
        """Move the inclusions of ``old`` to ``new``; None if this mutation was applied already."""
        old_key, new_key = self.store.key(old), self.store.key(new)
        with self.engine.begin() as conn:
            if not advance(conn, cursor, expected, seq):
                return None
            lock_patient(conn, old_key)
            lock_patient(conn, new_key)
            moved = inclusions_of_patient(conn, old_key, self.sealer)
            sealed, at = self.sealer.seal(new), now()
            for inc in moved:
                bumped = replace(inc, patient=new_key, version=inc.version + 1)
                conn.execute(update(ic_inclusion).where(ic_inclusion.c.id == inc.id).values(
                    patient=new_key, patient_sealed=sealed, version=bumped.version, updated_at=at))
                record_event(conn, "ssin-change", bumped, sealed, at, stored_operator(conn, inc.id))
            audit_row(self.audit, conn, f"NrMutation:SsinReplaced#{seq}", caller=CALLER, patient=new,
                      detail=f"moved {len(moved)} inclusion(s) to the new NISS")
            return len(moved)

    def apply_death(self, cursor: str, seq: int, expected: int, ssin: str, death: dt.date) -> int | None:
        """Close every inclusion of ``ssin`` still open at ``death``; None if applied already."""
        patient = self.store.key(ssin)
        with self.engine.begin() as conn:
            if not advance(conn, cursor, expected, seq):
                return None
            lock_patient(conn, patient)
            conn.execute(update(ic_patient).where(ic_patient.c.patient == patient).values(death_date=death))
            sealed, at, closed = self.sealer.seal(ssin), now(), 0
            for inc in inclusions_of_patient(conn, patient, self.sealer):
                done = close_at_death(inc, death)
                if done is None:
                    continue
                save_inclusion(conn, done, patient, sealed, None, at, new=False)
                record_event(conn, "death-closure", done, sealed, at, stored_operator(conn, done.id))
                closed += 1
            audit_row(self.audit, conn, f"NrMutation:Deceased#{seq}", caller=CALLER, patient=ssin,
                      detail=f"closed {closed} inclusion(s) at {death}")
            return closed
