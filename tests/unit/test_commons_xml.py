"""The commons v3 request read and answer written as XML (``soap/commons.py``, MemberData's path without Spyne):
what a request claims is read as the schema names it, and the answer is schema-valid with the element tree,
prefixes and attribute order the service wrote when Spyne serialised it (``samples/memberdata/*/answer.xml``)."""

from __future__ import annotations

import base64
import datetime as dt
import functools

import pytest
from lxml import etree

from mycarenet_ic import contract
from mycarenet_ic.clients.messages import commons_request
from mycarenet_ic.soap import memberdata, sealed
from mycarenet_ic.soap.commons import Blob, read_request, response_element
from mycarenet_ic.soap.service import ElementDispatcher

pytestmark = pytest.mark.unit

MD, CORE, PROTOCOL = memberdata.MD, memberdata.CORE, memberdata.PROTOCOL
SCHEMA = contract.schema("mycarenet-memberdata-v1.xsd")


def _request(**kw: str | None) -> etree._Element:
    body = commons_request("MemberDataConsultationRequest", MD, 3, b"<q/>", "48031202166", dt.date(2026, 1, 2),
                           "ref-7", "11203795004", kw.get("ssin", " 74030902123 "), request_id="_req")
    payload = etree.fromstring(body)
    assert SCHEMA.validate(payload), SCHEMA.error_log
    return payload


def _answered(answer: etree._Element, payload: etree._Element, call: object) -> etree._Element:
    return answer


def _shape(el: etree._Element) -> list[object]:
    """Each element's prefixed name, its attribute names in order and its children's shapes."""
    return [el.prefix, etree.QName(el).localname, list(el.attrib), [_shape(c) for c in el]]


def test_a_request_is_read_as_the_schema_names_its_parts() -> None:
    request = read_request(_request(), CORE, PROTOCOL)
    assert (request.id, request.input_reference, request.nip_reference) == ("_req", "ref-7", None)
    assert (request.claim.nihii, request.claim.ssin) == ("11203795004", "74030902123")
    assert request.detail == Blob([b"<q/>"], "text/xml", "none")
    assert read_request(_request(ssin=None), CORE, PROTOCOL).claim.ssin is None


def test_answers_are_schema_valid_and_shaped_as_spyne_wrote_them() -> None:
    request = read_request(_request(), CORE, PROTOCOL)
    plain = sealed.answer_blob(None, b"<answer/>", "none", None)
    sealed_blob = Blob([b"sealed"], "text/plain", "none", sealed.FOR_RECIPIENT)
    for blob, attributes in ((plain, ["ContentType", "ContentEncoding"]),
                             (sealed_blob, ["ContentType", "ContentEncoding", "ContentEncryption"])):
        answer = response_element(memberdata.CONSULTATION_RESPONSE, CORE, PROTOCOL, request, blob)
        envelope = ElementDispatcher(functools.partial(_answered, answer), memberdata.ENVELOPE_PREFIXES).dispatch(
            _request(), None)  # type: ignore[arg-type]
        SCHEMA.assertValid(answer)
        assert answer.get("InResponseTo") == "_req" and answer.get("IssueInstant", "").endswith("+00:00")
        output = ["ns0", "OutputReference", [], []]
        assert _shape(envelope) == ["soap11env", "Envelope", [], [["soap11env", "Body", [], [
            ["tns", "MemberDataConsultationResponse", ["Id", "InResponseTo", "IssueInstant"], [
                ["ns2", "Return", [], [
                    ["ns2", "CommonOutput", [], [["ns0", "InputReference", [], []], output]],
                    ["ns2", "Detail", attributes, []]]]]]]]]]
        detail = answer.find(f"{{{PROTOCOL}}}Return/{{{PROTOCOL}}}Detail")
        assert detail is not None and base64.b64decode(detail.text or "") == b"".join(blob.value or [])
        assert answer.findtext(f".//{{{CORE}}}OutputReference") == answer.get("Id")
