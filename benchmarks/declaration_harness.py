"""The Integrated Care declaration limit harness: what no implementation can avoid per DeclareInclusion, with
lxml, xmlsec and the database directly.

Per request: hardened parse of the SOAP message, WS-Security verification (exclusive c14n, RSA-SHA256,
chain to the CA, timestamp, in-memory replay cache), XSD validation of the body; one durable write: the
inclusion row and its hash-chained audit row (patient as a pseudonym) in one SQLite transaction (WAL, as
the sandbox's database); then the ``DeclareInclusionResponse`` (CommonOutput, the Inclusion) in a signed
SOAP envelope, serialised. One thread: requests per second per core. Requests are built and signed before
the clock starts.

    .venv/bin/python benchmarks/declaration_harness.py [--count 500]
"""

from __future__ import annotations

import datetime as dt
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

from lxml import etree
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import GP_NIHII, IC_NS, declaration_body  # noqa: E402
from benchmarks.limit_harness import figures, parties, received, run  # noqa: E402
from mycarenet_ic import contract, ns  # noqa: E402
from mycarenet_ic.domain.identifiers import make_niss  # noqa: E402
from mycarenet_ic.persistence.audit import GENESIS, SqlAuditLog  # noqa: E402
from mycarenet_ic.persistence.db import make_engine  # noqa: E402
from mycarenet_ic.persistence.pseudonym import Pseudonymiser  # noqa: E402
from mycarenet_ic.persistence.tables import audit_head, ic_inclusion, metadata  # noqa: E402
from mycarenet_ic.security.parser import ParseLimits  # noqa: E402
from mycarenet_ic.services.ports import AuditEntry  # noqa: E402

PROJECT = "91000252"


def _text(parent: etree._Element, name: str, value: str) -> None:
    etree.SubElement(parent, f"{{{IC_NS}}}{name}").text = value


def _answer(request: etree._Element, inclusion_id: str, ssin: str) -> etree._Element:
    """The DeclareInclusionResponse the service gives for a new inclusion, in an unsigned envelope."""
    env = etree.Element(f"{{{ns.SOAP11_ENV}}}Envelope", nsmap={"soap": ns.SOAP11_ENV})
    etree.SubElement(env, f"{{{ns.SOAP11_ENV}}}Header")
    body = etree.SubElement(env, f"{{{ns.SOAP11_ENV}}}Body")
    answer_id = f"_{uuid.uuid4().hex}"
    response = etree.SubElement(body, f"{{{IC_NS}}}DeclareInclusionResponse", nsmap={"ic": IC_NS}, Id=answer_id,
                                InResponseTo=request.get("Id") or "",
                                IssueInstant=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat())
    output = etree.SubElement(response, f"{{{IC_NS}}}CommonOutput")
    _text(output, "OutputReference", answer_id)
    inclusion = etree.SubElement(response, f"{{{IC_NS}}}Inclusion")
    for name, value in (("InclusionId", inclusion_id), ("Project", PROJECT), ("Status", "information"),
                        ("DeclaredStartDate", "2026-11-01"), ("StartDate", "2026-11-01"), ("Consent", "agree"),
                        ("Provider", GP_NIHII), ("Operator", ssin), ("Version", "1")):
        _text(inclusion, name, value)
    return env


def measure(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        client, service, verifier = parties(Path(tmp))
        schema = contract.schema("mycarenet-integratedcare-v1.xsd")
        limits = ParseLimits()
        engine = make_engine(f"sqlite:///{Path(tmp) / 'harness.sqlite3'}")
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS))
        pseudonymiser = Pseudonymiser(secrets.token_bytes(32))
        audit = SqlAuditLog(engine, pseudonymiser)
        patients = [make_niss(dt.date(1950, 1, 1) + dt.timedelta(days=i // 400), 501 + i % 400) for i in range(count)]
        messages = []
        for i, ssin in enumerate(patients):
            env = etree.fromstring(f'<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}"><soap:Header/><soap:Body>'
                                   f"{declaration_body(ssin, PROJECT, f'_h{i}')}</soap:Body></soap:Envelope>".encode())
            messages.append(etree.tostring(client.sign(env)))
        steps = {"parse": 0.0, "verify": 0.0, "validate": 0.0, "write": 0.0, "sign": 0.0}
        started, cpu_started = time.perf_counter(), time.process_time()
        for data, ssin in zip(messages, patients, strict=True):
            payload = received(data, limits, verifier, schema, steps)
            t3 = time.perf_counter()
            inclusion_id = uuid.uuid4().hex
            at = dt.datetime.now(dt.UTC)
            start = dt.date(2026, 11, 1)
            with engine.begin() as conn:
                conn.execute(insert(ic_inclusion).values(
                    id=inclusion_id, patient=pseudonymiser.pseudonym(ssin), patient_sealed=ssin, project=PROJECT,
                    status="information", declared_start=start, start_date=start, closed_by_death=False,
                    consent="agree", consent_date=start, provider_nihii=GP_NIHII, operator="harness", version=1,
                    created_at=at, updated_at=at))
                audit.append(AuditEntry("integrated-care", "DeclareInclusionRequest", caller=f"doctor:{GP_NIHII}",
                                        patient=ssin, request_id=payload.get("Id"), detail="declared"), conn)
            t4 = time.perf_counter()
            etree.tostring(service.sign(_answer(payload, inclusion_id, ssin)), encoding="UTF-8",
                           xml_declaration=True)
            t5 = time.perf_counter()
            steps["write"] += t4 - t3
            steps["sign"] += t5 - t4
        got = figures(count, started, cpu_started, steps)
        engine.dispose()
    return got


def main() -> None:
    run(__doc__, 500, measure, "declaration limit harness", "one transaction each")


if __name__ == "__main__":
    main()
