"""A writing request's audit row and its write commit in one transaction (issue 17 item 4): an audit
that fails takes the write with it and the client gets the fault; the normal path writes both, one row
per request; concurrent writers keep the hash chain one line. Real servers over HTTP, real SQLite and
PostgreSQL; the failure is the database's own (a trigger on the audit table)."""

from __future__ import annotations

import os
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select, text

from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.persistence.audit import verify_chain
from mycarenet_ic.persistence.tables import audit_log
from mycarenet_ic.sandbox import Sandbox
from mycarenet_ic.security.wssec import Signer
from tests import support
from tests.ic_client import Fault, IcClient
from tests.integration.test_reliability import _declare, counts, new_patients

pytestmark = pytest.mark.integration

PSI = "91000153"


def _refuse_audit_rows(box: Sandbox, operation: str, on: bool) -> None:
    """Make the database refuse every audit row of ``operation`` (a real failure inside the transaction)."""
    with box.platform.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            if on:
                conn.execute(text("CREATE OR REPLACE FUNCTION mcn_audit_fail() RETURNS trigger AS $$ BEGIN "
                                  f"IF NEW.operation = '{operation}' THEN RAISE EXCEPTION 'injected audit failure'; "
                                  "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
                conn.execute(text("CREATE TRIGGER mcn_audit_fail BEFORE INSERT ON audit_log FOR EACH ROW "
                                  "EXECUTE FUNCTION mcn_audit_fail()"))
            else:
                conn.execute(text("DROP TRIGGER mcn_audit_fail ON audit_log"))
        elif on:
            conn.execute(text(f"CREATE TRIGGER mcn_audit_fail BEFORE INSERT ON audit_log WHEN NEW.operation = "
                              f"'{operation}' BEGIN SELECT RAISE(ABORT, 'injected audit failure'); END"))
        else:
            conn.execute(text("DROP TRIGGER mcn_audit_fail"))


def _rows_of(box: Sandbox, request_id: str) -> list[tuple[str, str, str]]:
    with box.platform.engine.connect() as conn:
        return [(r.operation, r.outcome, r.detail) for r in conn.execute(
            select(audit_log).where(audit_log.c.request_id == request_id).order_by(audit_log.c.seq))]


def test_an_audit_that_fails_takes_the_write_with_it(sandbox: Sandbox) -> None:
    ssin = new_patients(sandbox, 1)[0]
    client = IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    before = counts(sandbox)
    _refuse_audit_rows(sandbox, "DeclareInclusionRequest", True)
    try:
        failed = client.declare(ssin, PSI, request_id="_auditfail1")
    finally:
        _refuse_audit_rows(sandbox, "DeclareInclusionRequest", False)
    assert isinstance(failed, Fault)
    assert (failed.kind, failed.code, failed.retry) == ("SystemError", "STORAGE_UNAVAILABLE", "true")
    assert "injected" not in failed.message
    assert counts(sandbox) == before  # no inclusion, no event, no stored answer: the write went with its row
    assert _rows_of(sandbox, "_auditfail1") == []
    assert client.consult(ssin).__class__ is Fault  # nothing to consult either
    assert verify_chain(sandbox.platform.engine).ok
    retried = client.declare(ssin, PSI, request_id="_auditfail1")  # once the audit works, the retry is served
    assert not isinstance(retried, Fault)
    assert counts(sandbox) == tuple(c + 1 for c in before)
    assert [(op, outcome) for op, outcome, _ in _rows_of(sandbox, "_auditfail1")] == [
        ("DeclareInclusionRequest", "OK")]


def test_a_write_and_its_one_audit_row_are_both_there(sandbox: Sandbox) -> None:
    ssin = new_patients(sandbox, 1)[0]
    client = IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    rid = f"_audit{secrets.token_hex(6)}"
    first = client.declare(ssin, PSI, request_id=rid)
    again = client.declare(ssin, PSI, request_id=rid)  # a retry: the first answer, its own row, no write
    assert not isinstance(first, Fault) and not isinstance(again, Fault)
    inclusion = first.Inclusion.InclusionId
    assert again.Inclusion.InclusionId == inclusion
    rows = _rows_of(sandbox, rid)
    assert [(op, outcome) for op, outcome, _ in rows] == [("DeclareInclusionRequest", "OK")] * 2
    assert rows[0][2] == f"inclusion={inclusion} project={PSI} status=information v1"
    assert rows[1][2].endswith("(retry: first answer)")
    assert verify_chain(sandbox.platform.engine).ok


def test_a_refused_write_is_audited_alone_and_writes_nothing(sandbox: Sandbox) -> None:
    ssin = new_patients(sandbox, 1)[0]
    client = IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    before = counts(sandbox)
    refused = client.declare(ssin, "99999971", request_id="_auditrefused")  # nobody has this NIHII
    assert isinstance(refused, Fault) and refused.code == "UNKNOWN_PROJECT"
    assert counts(sandbox) == before
    [(operation, outcome, detail)] = _rows_of(sandbox, "_auditrefused")
    assert (operation, outcome) == ("DeclareInclusionRequest", "ERROR") and detail.startswith("UNKNOWN_PROJECT")


def test_concurrent_writes_with_their_rows_keep_one_chain(sandbox: Sandbox) -> None:
    patients = new_patients(sandbox, 24)
    signer = Signer(sandbox.platform.pki.issue_holder(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII))
    before = counts(sandbox)
    rids = [f"_auditc{i:02d}{secrets.token_hex(4)}" for i in range(len(patients))]

    def declare(k: int) -> tuple[str, str]:
        with requests.Session() as session:
            session.trust_env, session.verify = False, os.environ["REQUESTS_CA_BUNDLE"]
            return _declare(session, sandbox.urls["integrated-care"], signer, patients[k], PSI, rids[k])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(declare, range(len(rids))))
    assert [a for a in answers if a[0] == "fault"] == []
    assert counts(sandbox) == tuple(c + len(rids) for c in before)
    assert all(len(_rows_of(sandbox, rid)) == 1 for rid in rids)
    assert verify_chain(sandbox.platform.engine).ok
