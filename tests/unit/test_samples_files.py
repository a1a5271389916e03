"""The committed ``samples/`` as files (issue 18 item 5): a sample per catalogue scenario, its blob the decoded
``Detail`` of its request; the SoapUI project and the Postman collection well-formed, built from these very
files, referencing every sample (and, for SoapUI, every operation of every WSDL); placeholders filled in
inside the blob too, every request then valid against the contract but those invalid on purpose; the
staleness check blind to calendar days only. (That the samples are what a sandbox answers:
tests/integration/test_samples.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from mycarenet_ic.conformance.catalogue import IC, MD, MP, SCENARIOS, SERVICES, TAR
from mycarenet_ic.contract import schema
from mycarenet_ic.samples.collections import SOAPUI, contract, derived
from mycarenet_ic.samples.generate import action, read
from mycarenet_ic.samples.normalise import PLACEHOLDER, comparable, decode, detail_of, fill, parse

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
C = f"{{{SOAPUI}}}"


def test_every_scenario_of_the_catalogue_has_its_sample() -> None:
    samples = read(SAMPLES, SCENARIOS)
    assert [s.scenario.id for s in samples] == [s.id for s in SCENARIOS]
    for sample in samples:
        assert {"request.xml", "answer.xml"} <= set(sample.files), sample.path
        request = parse(sample.files["request.xml"])
        assert request.find("{*}Header") is not None and len(request.find("{*}Header")) == 0  # unsigned
        detail = detail_of(request)
        assert ("blob.xml" in sample.files) == (detail is not None), sample.path
        if detail is not None:
            assert etree.tostring(parse(decode(detail))) == etree.tostring(parse(sample.files["blob.xml"]))
        answer = parse(sample.files["answer.xml"])
        assert answer.find("{*}Header/{*}Security/{*}Signature") is not None, sample.path  # as it came: signed
        assert b"-----BEGIN" not in sample.files["answer.xml"]


def test_the_index_and_collections_are_built_from_the_committed_samples() -> None:
    for name, data in derived(SAMPLES).items():
        assert (SAMPLES / name).read_bytes() == data, f"samples/{name} is not built from samples/: run samples write"


def test_the_soapui_project_has_an_interface_per_wsdl_every_operation_and_every_sample() -> None:
    root = etree.parse(str(SAMPLES / "soapui-project.xml")).getroot()
    assert root.tag == f"{C}soapui-project"
    interfaces = root.findall(f"{C}interface")
    assert len(interfaces) == len(SERVICES)
    samples = read(SAMPLES, SCENARIOS)
    for service, interface in zip(SERVICES, interfaces, strict=True):
        wsdl = contract(service)
        assert interface.get("bindingName") == f"{{{wsdl.namespace}}}{wsdl.binding}"
        assert interface.get("definition") == f"../wsdl/{wsdl.wsdl}" and (SAMPLES / "../wsdl" / wsdl.wsdl).exists()
        operations = {op.get("name"): op for op in interface.findall(f"{C}operation")}
        assert {name: op.get("action") for name, op in operations.items()} == wsdl.operations
        for sample in (s for s in samples if s.scenario.service == service):
            op = operations[wsdl.operation(action(sample.scenario))]
            calls = [c for c in op.findall(f"{C}call") if c.get("name") == sample.scenario.id]
            assert len(calls) == 1, sample.path
            assert calls[0].findtext(f"{C}request") == sample.files["request.xml"].decode()
    steps = root.findall(f"{C}testSuite/{C}testCase/{C}testStep")
    assert sorted(s.get("name") for s in steps) == sorted(s.id for s in SCENARIOS)
    for step in steps:
        config = step.find(f"{C}config")
        assert config is not None and config.findtext(f"{C}operation") in {
            op for s in SERVICES for op in contract(s).operations}


def test_the_postman_collection_is_v2_1_with_a_request_per_sample() -> None:
    collection = json.loads((SAMPLES / "postman_collection.json").read_text())
    assert collection["info"]["schema"] == "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    assert [folder["name"] for folder in collection["item"]] == list(SERVICES)
    items = {item["name"]: item for folder in collection["item"] for item in folder["item"]}
    assert sorted(items) == sorted(s.id for s in SCENARIOS)
    variables = {v["key"] for v in collection["variable"]}
    for sample in read(SAMPLES, SCENARIOS):
        request = items[sample.scenario.id]["request"]
        assert request["method"] == "POST" and request["body"]["raw"] == sample.files["request.xml"].decode()
        assert {h["key"]: h["value"] for h in request["header"]}["SOAPAction"] == f'"{action(sample.scenario)}"'
        assert request["url"]["raw"].strip("{}") in variables
        assert items[sample.scenario.id]["response"][0]["body"] == sample.files["answer.xml"].decode()


def test_fill_gives_every_placeholder_a_value_inside_the_blob_too() -> None:
    request = (SAMPLES / "memberdata" / "md.by-niss" / "request.xml").read_bytes()
    assert b"{{id1}}" in request and b"{{id2}}" in (SAMPLES / "memberdata" / "md.by-niss" / "blob.xml").read_bytes()
    filled = fill(request, {"reference1": "mine"})
    assert not PLACEHOLDER.search(filled.decode())
    detail = detail_of(parse(filled))
    assert detail is not None
    blob = decode(detail)
    assert not PLACEHOLDER.search(blob.decode()) and b'ID="_' in blob
    assert b"<c:InputReference>mine</c:InputReference>" in filled
    modify = (SAMPLES / "integrated-care" / "ic.doctor.modify" / "request.xml").read_bytes()
    with pytest.raises(ValueError, match=r"\{\{inclusion1\}\}: give its value"):
        fill(modify)
    assert b"<ic:InclusionId>abc</ic:InclusionId>" in fill(modify, {"inclusion1": "abc"})


def test_the_staleness_check_ignores_calendar_days_and_nothing_else() -> None:
    answer = (SAMPLES / "tarification" / "tar.ordinary" / "answer-blob.xml").read_bytes()
    assert comparable(answer.replace(b"2026-", b"2031-")) == comparable(answer)
    assert comparable(answer.replace(b"30.49", b"30.50")) != comparable(answer)


def test_payment_approvals_made_from_the_day_are_placeholders() -> None:
    # their numbers carry the day they are given (yymmdd): kept, the samples would change every day
    assert "{{approval1}}" in (SAMPLES / "memberdata" / "md.invoicing" / "answer-blob.xml").read_text()
    pharmacist = (SAMPLES / "memberdata" / "md.pharmacist-delivery-date" / "answer-blob.xml").read_text()
    assert "{{approval1}}" in pharmacist and "{{check1}}" in pharmacist  # the pharmacist's check code too
    mediprima = (SAMPLES / "mediprima" / "mp.cpas-share-covered" / "answer-blob.xml").read_text()
    assert 'SL="MYCARENET-PAYMENT-APPROVAL">{{approval1}}</k:id>' in mediprima


BODY_XSD = {IC: "mycarenet-integratedcare-v1.xsd", MD: "mycarenet-memberdata-v1.xsd",
            TAR: "mycarenet-tarification-v1.xsd", MP: "mycarenet-tarification-v1.xsd"}
BLOB_XSD = {MD: "saml-protocol-2.0-subset.xsd", TAR: "messageservices-protocol-v1.xsd",
            MP: "messageservices-protocol-v1.xsd"}


def test_filled_in_every_request_is_valid_against_the_contract_but_those_invalid_on_purpose() -> None:
    invalid = set()
    for sample in read(SAMPLES, SCENARIOS):
        service = sample.scenario.service
        root = parse(fill(sample.files["request.xml"], {"inclusion1": "an-inclusion-id"}))
        body = root.find("{*}Body")
        assert body is not None and len(body) == 1
        valid = schema(BODY_XSD[service]).validate(body[0])
        detail = detail_of(root)
        if detail is not None:
            valid = valid and schema(BLOB_XSD[service]).validate(parse(decode(detail)))
        if not valid:
            invalid.add(sample.scenario.id)
    on_purpose = {s.id for s in SCENARIOS if "schema" in s.deliberate or s.expect.get("code") == "INVALID_REQUEST"}
    assert invalid <= on_purpose and "md.error.empty-startdate" in invalid and "ic.refusal.invalid-request" in invalid
