"""The limit harness: what no implementation can avoid per MemberData request, with lxml and xmlsec directly.

Per request: base64 and hardened parse of the SOAP message, WS-Security verification (exclusive c14n,
RSA-SHA256, chain to the CA, timestamp, in-memory replay cache), XSD validation of the body, hardened
parse of the SAML AttributeQuery blob; then the answer as the service shapes it: the same number of
(unsigned, as real answers) SAML assertions, each with its subject, period and Advice, the technical
assertion's deflated status, and the signed SOAP envelope, serialised. One thread: requests per second
per core. Requests are built and signed before the clock starts.

    .venv/bin/python benchmarks/limit_harness.py [--count 1000]
"""

from __future__ import annotations

import argparse
import base64
import copy
import secrets
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import GP_NIHII, GP_SSIN, PATIENT, memberdata_body  # noqa: E402
from mycarenet_ic import contract, ns  # noqa: E402
from mycarenet_ic.domain.qualities import Quality  # noqa: E402
from mycarenet_ic.security.parser import ParseLimits, parse_untrusted  # noqa: E402
from mycarenet_ic.security.pki import Pki  # noqa: E402
from mycarenet_ic.security.wssec import MemoryReplayCache, Signer, TrustStore, Verifier  # noqa: E402

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
EXT = "urn:be:cin:nippin:memberdata:saml:extension"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XS = "http://www.w3.org/2001/XMLSchema"
P3 = "urn:be:fgov:ehealth:mycarenet:commons:protocol:v3"
# What the service answers for the benchmark query: patientData, period, payment, chronicCondition,
# carePath and the technical assertion.
ASSERTIONS = 6
ATTRIBUTES = 5


def answer_template() -> tuple[etree._Element, etree._Element]:
    """An unsigned SOAP answer shaped like the service's: a Response with ASSERTIONS assertions in Detail."""
    saml = etree.Element(f"{{{SAMLP}}}Response", nsmap={"samlp": SAMLP, "saml": SAML, "ext": EXT, "xsi": XSI,
                                                        "xs": XS}, ID="_r", Version="2.0",
                         IssueInstant="2026-11-22T10:00:00")
    etree.SubElement(saml, f"{{{SAML}}}Issuer").text = "urn:be:cin:io:100"
    status = etree.SubElement(saml, f"{{{SAMLP}}}Status")
    etree.SubElement(status, f"{{{SAMLP}}}StatusCode", Value="urn:oasis:names:tc:SAML:2.0:status:Success")
    for n in range(ASSERTIONS):
        a = etree.SubElement(saml, f"{{{SAML}}}Assertion", ID=f"_a{n}", IssueInstant="2026-11-22T10:00:00",
                             Version="2.0")
        etree.SubElement(a, f"{{{SAML}}}Issuer").text = "urn:be:cin:io:100"
        subject = etree.SubElement(a, f"{{{SAML}}}Subject")
        etree.SubElement(subject, f"{{{SAML}}}NameID", Format="urn:be:fgov:person:ssin").text = PATIENT
        confirmation = etree.SubElement(subject, f"{{{SAML}}}SubjectConfirmation",
                                        Method="urn:be:cin:nippin:memberIdentification")
        etree.SubElement(confirmation, f"{{{SAML}}}SubjectConfirmationData", NotBefore="2026-10-22T00:00:00",
                         NotOnOrAfter="2026-11-21T00:00:00")
        advice = etree.SubElement(a, f"{{{SAML}}}Advice", {f"{{{XSI}}}type": "ext:AdviceType"})
        etree.SubElement(advice, f"{{{EXT}}}AssertionType").text = f"urn:be:cin:nippin:x{n}"
        facet = etree.SubElement(advice, f"{{{EXT}}}Facet", id="urn:be:cin:nippin:insurability")
        etree.SubElement(facet, "Dimension", id="requestType").text = "invoicing"
        statement = etree.SubElement(a, f"{{{SAML}}}AttributeStatement")
        for k in range(ATTRIBUTES):
            attr = etree.SubElement(statement, f"{{{SAML}}}Attribute", Name=f"urn:be:cin:nippin:x{k}")
            etree.SubElement(attr, f"{{{SAML}}}AttributeValue", {f"{{{XSI}}}type": "xs:string"}).text = "value"
    env = etree.Element(f"{{{ns.SOAP11_ENV}}}Envelope", nsmap={"soap": ns.SOAP11_ENV})
    etree.SubElement(env, f"{{{ns.SOAP11_ENV}}}Header")
    body = etree.SubElement(env, f"{{{ns.SOAP11_ENV}}}Body")
    response = etree.SubElement(body, "{urn:be:fgov:ehealth:mycarenet:memberdata:protocol:v1}"
                                      "MemberDataConsultationResponse", Id="_x", IssueInstant="2026-11-22T10:00:00Z")
    ret = etree.SubElement(response, f"{{{P3}}}Return")
    etree.SubElement(ret, f"{{{P3}}}CommonOutput")
    detail = etree.SubElement(ret, f"{{{P3}}}Detail", ContentType="text/xml", ContentEncoding="none")
    detail.text = "__SAML__"
    return env, saml


def parties(directory: Path) -> tuple[Signer, Signer, Verifier]:
    """A fresh CA in ``directory``: the demo GP's signer, the service's signer, the service's verifier."""
    pki = Pki(directory)
    pki.init()
    client = Signer(pki.issue_holder(Quality.DOCTOR, GP_SSIN, GP_NIHII), ttl_seconds=300)
    return client, Signer(pki.service("mycarenet")), Verifier(TrustStore.from_pem(pki.ca().cert_pem),
                                                               MemoryReplayCache())


def measure(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        client, service, verifier = parties(Path(tmp))
        schema = contract.schema("mycarenet-memberdata-v1.xsd")
        limits = ParseLimits()
        messages = []
        for _ in range(count):
            env = etree.fromstring(f'<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}"><soap:Header/><soap:Body>'
                                   f"{memberdata_body()}</soap:Body></soap:Envelope>".encode())
            messages.append(etree.tostring(client.sign(env)))
        template, saml_template = answer_template()
        steps_template = etree.Element("{urn:be:cin:nippin:memberData:support:v2}Status", code="SUCCESS")
        for n in range(ASSERTIONS - 1):
            etree.SubElement(steps_template, "{urn:be:cin:nippin:memberData:support:v2}Step",
                             name=f"Response.assertion.x{n}.general", status="SUCCESS", location="")
        steps = {"parse": 0.0, "verify": 0.0, "validate": 0.0, "blob": 0.0, "sign": 0.0}
        started, cpu_started = time.perf_counter(), time.process_time()
        for data in messages:
            payload = received(data, limits, verifier, schema, steps)
            t3 = time.perf_counter()
            blob = payload.find(f"{{{P3}}}Detail")
            assert blob is not None
            parse_untrusted(base64.b64decode(blob.text or ""), limits)
            t4 = time.perf_counter()
            saml = copy.deepcopy(saml_template)
            assertions = saml.findall(f"{{{SAML}}}Assertion")
            for assertion in assertions:
                assertion.set("ID", f"_{secrets.token_hex(16)}")
            # the technical assertion's status: a small XML document, raw-deflated and base64-encoded
            packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            technical = etree.tostring(steps_template, xml_declaration=True, encoding="UTF-8")
            assertions[-1][-1][0][0].text = base64.b64encode(packer.compress(technical) + packer.flush()).decode()
            answer = copy.deepcopy(template)
            answer.find(f".//{{{P3}}}Detail").text = base64.b64encode(etree.tostring(saml)).decode()
            etree.tostring(service.sign(answer))
            t5 = time.perf_counter()
            steps["blob"] += t4 - t3
            steps["sign"] += t5 - t4
        return figures(count, started, cpu_started, steps)


def received(data: bytes, limits: ParseLimits, verifier: Verifier, schema: etree.XMLSchema,
             steps: dict[str, float]) -> etree._Element:
    """The Body's payload of ``data``: parsed, verified, validated, each step's time added to ``steps``."""
    t0 = time.perf_counter()
    root = parse_untrusted(data, limits)
    t1 = time.perf_counter()
    verified = verifier.verify(root)
    t2 = time.perf_counter()
    payload: etree._Element = verified.body[0]
    if not schema.validate(payload):
        raise SystemExit("the benchmark request does not follow the schema")
    steps["parse"] += t1 - t0
    steps["verify"] += t2 - t1
    steps["validate"] += time.perf_counter() - t2
    return payload


def figures(count: int, started: float, cpu_started: float, steps: dict[str, float]) -> dict[str, float]:
    """Requests per second (wall) and per CPU-second since ``started`` / ``cpu_started``; µs per step."""
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"per_second": count / elapsed, "per_cpu_second": count / cpu,
            **{k: v / count * 1e6 for k, v in steps.items()}}


def run(doc: str | None, default_count: int, measured: Callable[[int], dict[str, float]], what: str, how: str) -> None:
    """The command line of a harness: ``--count``, then its figures."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=default_count)
    args = parser.parse_args()
    got = measured(args.count)
    print(f"{what}: {got['per_second']:.0f} requests/s on one core ({got['per_cpu_second']:.0f} per CPU-second; "
          f"{args.count} requests, {how})")
    print("  per request: " + ", ".join(f"{k} {v:.0f} µs" for k, v in got.items() if not k.startswith("per_")))


def main() -> None:
    run(__doc__, 1000, measure, "limit harness (MemberData)",
        f"{ASSERTIONS} unsigned assertions in a signed envelope per answer")


if __name__ == "__main__":
    main()
