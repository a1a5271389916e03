"""The layer reuses CoBrHa and National Register answers, and forgets a person as soon as the mutation
feed names them. Counted on the stubs' own audit rows: a reused answer makes no upstream call."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.persistence.tables import audit_log
from mycarenet_ic.sandbox import Sandbox
from tests import support
from tests.ic_client import Fault, IcClient
from tests.integration.test_memberdata import INS, MdClient, N

pytestmark = pytest.mark.integration


def upstream_calls(box: Sandbox, service: str) -> int:
    with box.platform.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_log)
                                .where(audit_log.c.service == service)).scalar_one())


def test_cobrha_answers_are_reused(sandbox: Sandbox) -> None:
    client = IcClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    assert not isinstance(client.consult(support.PATIENT_LINKED), Fault)
    cobrha, links = upstream_calls(sandbox, "cobrha"), upstream_calls(sandbox, "attribute-authority")
    assert not isinstance(client.consult(support.PATIENT_LINKED), Fault)
    assert upstream_calls(sandbox, "cobrha") == cobrha            # the provider check was reused
    assert upstream_calls(sandbox, "attribute-authority") == links + 1  # therapeutic links are asked each time


def test_a_person_is_reused_until_the_mutation_feed_names_them(sandbox: Sandbox) -> None:
    gp = MdClient(sandbox, Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
    patient = "85100402264"  # Pauwels
    assert f"{N}:careReceiver:deceasedDate" not in gp.consult(patient).one(f"{INS}:patientData")
    register = upstream_calls(sandbox, "national-register")
    gp.consult(patient)
    assert upstream_calls(sandbox, "national-register") == register  # reused
    sandbox.scenario.record_death(patient, "2026-11-19")
    sandbox.follower.run_once()  # the feed names Pauwels: forgotten
    patient_data = gp.consult(patient).one(f"{INS}:patientData")
    assert patient_data[f"{N}:careReceiver:deceasedDate"] == ["2026-11-19"]
