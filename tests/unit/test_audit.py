"""The audit chain: appends link up, and ``verify_chain`` names the first row an edit, a deletion
or a reordering breaks (on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, text, update

from mycarenet_ic.app import Platform
from mycarenet_ic.persistence.audit import AuditEntry, verify_chain
from mycarenet_ic.persistence.tables import audit_log
from tests import support

pytestmark = pytest.mark.unit


def _fill(platform: Platform, n: int = 6) -> None:
    for i in range(n):
        platform.audit.append(AuditEntry("test", f"op{i}", caller="doctor:1", patient=support.PATIENT_LINKED,
                                         request_id=f"r{i}"))


def test_untouched_chain_verifies(platform: Platform) -> None:
    _fill(platform)
    report = verify_chain(platform.engine)
    assert report.ok and report.rows == 6


def test_patient_is_stored_as_a_pseudonym(platform: Platform) -> None:
    _fill(platform, 1)
    with platform.engine.connect() as conn:
        stored = conn.execute(select(audit_log.c.patient)).scalar_one()
    assert stored != support.PATIENT_LINKED and len(stored) == 64
    assert stored == platform.pseudonymiser.pseudonym(support.PATIENT_LINKED)


def test_edit_is_named(platform: Platform) -> None:
    _fill(platform)
    with platform.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 4).values(outcome="DENIED"))
    report = verify_chain(platform.engine)
    assert (report.ok, report.broken_seq) == (False, 4)


def test_deletion_is_named(platform: Platform) -> None:
    _fill(platform)
    with platform.engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq == 3))
    report = verify_chain(platform.engine)
    assert (report.ok, report.broken_seq) == (False, 4)


def test_deleting_the_newest_rows_is_named(platform: Platform) -> None:
    _fill(platform)
    with platform.engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.seq >= 5))
    report = verify_chain(platform.engine)
    assert (report.ok, report.broken_seq) == (False, 5)


def test_reordering_is_named(platform: Platform) -> None:
    _fill(platform)
    # Swap the contents of rows 2 and 3 (hashes included), keeping seq in place.
    with platform.engine.begin() as conn:
        rows = {r.seq: dict(r._mapping) for r in conn.execute(select(audit_log).where(audit_log.c.seq.in_([2, 3])))}
        conn.execute(delete(audit_log).where(audit_log.c.seq.in_([2, 3])))
        for seq, other in ((2, 3), (3, 2)):
            conn.execute(audit_log.insert().values({**rows[other], "seq": seq}))
    report = verify_chain(platform.engine)
    assert (report.ok, report.broken_seq) == (False, 2)


def test_unknown_outcome_is_refused_and_nothing_written(platform: Platform) -> None:
    with pytest.raises(ValueError):
        platform.audit.append(AuditEntry("test", "op", outcome="MAYBE"))
    with platform.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 0


def test_what_comes_from_a_request_is_stored_filtered(platform: Platform) -> None:
    """Issue 21: a NISS (however it is grouped) and terminal control characters from a request's header,
    Id or a validator's message never reach the audit as they were sent; the chain still verifies."""
    niss = support.PATIENT_LINKED
    dotted = f"{niss[:2]}.{niss[2:4]}.{niss[4:6]}-{niss[6:9]}.{niss[9:]}"
    platform.audit.append(AuditEntry("test", f"\x1b[2J\x1b[31mConsult\r{niss}", caller="doctor:11200035003",
                                     request_id=f"_{niss}", outcome="ERROR",
                                     detail=f"INVALID_REQUEST: The value '{dotted} ' is not accepted\x07"))
    with platform.engine.connect() as conn:
        row = conn.execute(select(audit_log)).one()
    stored = " ".join(str(v) for v in row._mapping.values())
    assert niss not in stored and dotted not in stored
    assert not any(ch in stored for ch in "\x1b\r\x07")
    assert row.operation.startswith("\\x1b[2J") and "[niss]" in row.request_id and "[niss]" in row.detail
    assert row.caller == "doctor:11200035003"  # a NIHII is not a NISS: kept
    assert verify_chain(platform.engine).ok
