"""Tarification and Mediprima over SOAP: the MyCareNet commons v2 envelope around a KMEHR message-services
``RetrieveTransactionRequest`` (transaction ``tariff`` or ``tariffmediprima``) in the Detail blob,
answered by a ``RetrieveTransactionResponse``: ``response``, ``acknowledge`` (errors with the public
catalogue's codes) and a ``kmehrmessage`` folder with the patient and one transaction per code.
"""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Any

from lxml import etree
from spyne import ServiceBase, rpc

from mycarenet_ic import contract
from mycarenet_ic.domain.tariff import MediprimaLine, NoTariff, TariffLine
from mycarenet_ic.errors import SchemaViolation
from mycarenet_ic.security.parser import ParseLimits
from mycarenet_ic.services.tarification import TariffAnswer, TariffRequest, Tarification
from mycarenet_ic.soap.commons import (
    MAX_BLOB,
    claimed_provider,
    claimed_ssin,
    commons_models,
    read_detail,
    send_response,
)
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.service import build_endpoint, call_of

TARIFICATION = "urn:be:fgov:ehealth:mycarenet:tarification:protocol:v1"
MEDIPRIMA = "urn:be:fgov:ehealth:mycarenet:mediprima:tarification:protocol:v1"
CORE_V2 = "urn:be:fgov:ehealth:mycarenet:commons:core:v2"
PROTOCOL_V2 = "urn:be:fgov:ehealth:mycarenet:commons:protocol:v2"
MP = "http://www.ehealth.fgov.be/messageservices/protocol/v1"
MC = "http://www.ehealth.fgov.be/messageservices/core/v1"
K = "http://www.ehealth.fgov.be/standards/kmehr/schema/v1"
BLOB_XSD = "messageservices-protocol-v1.xsd"
COMMONS = commons_models(CORE_V2, PROTOCOL_V2)


def _k(local: str) -> str:
    return f"{{{K}}}{local}"


def _mc(local: str) -> str:
    return f"{{{MC}}}{local}"


def _coded_value(parent: etree._Element, local: str, scheme: str) -> str | None:
    """The text of the first ``local`` child (cd or id, in whichever of the schemas' namespaces) of ``scheme``."""
    for child in parent:
        if isinstance(child.tag, str) and etree.QName(child).localname == local and child.get("S") == scheme:
            return (child.text or "").strip()
    return None


def _cd_value(parent: etree._Element, scheme: str) -> str | None:
    return _coded_value(parent, "cd", scheme)


def _id_value(parent: etree._Element, scheme: str) -> str | None:
    return _coded_value(parent, "id", scheme)


def read_request(root: etree._Element, mediprima: bool) -> TariffRequest:
    """The KMEHR request (already valid against its schema) as a :class:`TariffRequest`."""
    schema = contract.schema(BLOB_XSD)
    if root.tag != f"{{{MP}}}RetrieveTransactionRequest" or not schema.validate(root):
        last = schema.error_log.last_error
        raise SchemaViolation.from_validator("The Detail blob must be a message-services RetrieveTransactionRequest",
                                             last)
    request = root.find(f"{{{MP}}}request")
    select = root.find(f"{{{MP}}}select")
    assert request is not None and select is not None
    author = request.find(f"{_mc('author')}/{_k('hcparty')}")
    transaction = select.find(_mc("transaction"))
    patient = select.find(_mc("patient"))
    assert transaction is not None and patient is not None
    wanted = "tariffmediprima" if mediprima else "tariff"
    if _cd_value(transaction, "CD-TRANSACTION-MYCARENET") != wanted:
        raise SchemaViolation(f"The transaction must be CD-TRANSACTION-MYCARENET {wanted!r}.")
    date = None
    codes: list[str] = []
    justification = gmd_manager = None
    for item in transaction.findall(_k("item")):
        kind = _cd_value(item, "CD-ITEM-MYCARENET") or _cd_value(item, "CD-ITEM")
        content = item.find(_k("content"))
        if content is None:
            continue
        if kind == "encounterdatetime" and content.findtext(_k("date")):
            date = dt.date.fromisoformat(content.findtext(_k("date")) or "")
        elif kind == "claim":
            codes.append(_cd_value(content, "CD-NIHDI") or "")
        elif kind == "justification":
            justification = _cd_value(content, "CD-MYCARENET-JUSTIFICATION")
        elif kind == "gmdmanager":
            hcparty = content.find(_k("hcparty"))
            gmd_manager = _id_value(hcparty, "ID-HCPARTY") if hcparty is not None else None
    return TariffRequest(
        id=request.findtext(_mc("id")) or "",
        author_nihii=_id_value(author, "ID-HCPARTY") if author is not None else None,
        patient_ssin=_id_value(patient, "ID-PATIENT") or _id_value(patient, "INSS") or "",
        date=date, codes=tuple(codes), justification=justification, gmd_manager=gmd_manager, mediprima=mediprima)


# -- the answer ----------------------------------------------------------------------------------------
def _euro(cents: int) -> str:
    return str((Decimal(cents) / 100).quantize(Decimal("0.01")))


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    el = etree.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def _coded(parent: etree._Element, tag: str, scheme: str, value: str, sv: str = "1.0") -> etree._Element:
    return _sub(parent, tag, value, S=scheme, SV=sv)


def _platform_author(parent: etree._Element, tag: str) -> None:
    author = _sub(parent, tag)
    hcparty = _sub(author, _k("hcparty"))
    _coded(hcparty, _k("id"), "ID-HCPARTY", "MYCARENET")
    _coded(hcparty, _k("cd"), "CD-HCPARTY", "application")
    _sub(hcparty, _k("name"), "MyCareNet sandbox")


def _item(transaction: etree._Element, n: int, kind: str) -> etree._Element:
    item = _sub(transaction, _k("item"))
    _coded(item, _k("id"), "ID-KMEHR", str(n))
    _coded(item, _k("cd"), "CD-ITEM-MYCARENET", kind)
    return item


def _cost(transaction: etree._Element, n: int, kind: str, cents: int) -> None:
    cost = _sub(_item(transaction, n, kind), _k("cost"))
    _sub(cost, _k("decimal"), _euro(cents))
    _coded(_sub(cost, _k("unit")), _k("cd"), "CD-CURRENCY", "EUR")


def build_response(answer: TariffAnswer, request_xml: etree._Element, version: str) -> etree._Element:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    root = etree.Element(f"{{{MP}}}RetrieveTransactionResponse", nsmap={"mp": MP, "mc": MC, "k": K})
    response = _sub(root, f"{{{MP}}}response", version=version)
    _coded(response, _mc("id"), "ID-KMEHR", f"MYCARENET.{now:%Y%m%d%H%M%S}.{secrets.token_hex(4)}")
    _platform_author(response, _mc("author"))
    _sub(response, _mc("date"), now.date().isoformat())
    _sub(response, _mc("time"), now.time().isoformat())
    echoed = request_xml.find(f"{{{MP}}}request")
    if echoed is not None:
        copy = etree.fromstring(etree.tostring(echoed))
        copy.tag = _mc("request")
        response.append(copy)
    ack = _sub(root, f"{{{MP}}}acknowledge")
    _sub(ack, _mc("iscomplete"), "true" if answer.complete else "false")
    for error in answer.errors:
        err = _sub(ack, _mc("error"))
        _coded(err, _mc("cd"), "CD-ERROR-MYCARENET", error.code)
        _sub(err, _mc("description"), error.description)
        _sub(err, _mc("url"), error.url)
    priced = [line for line in answer.lines if not isinstance(line, NoTariff)]
    if answer.person is None and not priced:
        return root
    message = _sub(root, _k("kmehrmessage"))
    folder = _sub(message, _k("folder"))
    _coded(folder, _k("id"), "ID-KMEHR", "1")
    folder.append(_patient(answer))
    for n, line in enumerate(priced, 1):
        folder.append(_transaction(n, line, answer, now))
    return root


def _patient(answer: TariffAnswer) -> etree._Element:
    patient = etree.Element(_k("patient"))
    _coded(patient, _k("id"), "ID-PATIENT", answer.ssin)
    person = answer.person
    if person is not None:
        for first in person.first_names:
            _sub(patient, _k("firstname"), first)
        _sub(patient, _k("familyname"), person.last_name)
        if person.birth_date:
            _sub(_sub(patient, _k("birthdate")), _k("date"), person.birth_date.isoformat())
        if person.death_date:
            _sub(_sub(patient, _k("deathdate")), _k("date"), person.death_date.isoformat())
        _coded(_sub(patient, _k("sex")), _k("cd"), "CD-SEX", person.sex)
    period = answer.period
    if period is not None:
        status = _sub(patient, _k("insurancystatus"))
        _coded(status, _k("id"), "ID-INSURANCY", period.mutuality)
        _sub(status, _k("membership"), period.registration_number)
        _sub(status, _k("cg1"), period.ct1)
        _sub(status, _k("cg2"), period.ct2)
        _sub(status, _k("begindate"), period.start.isoformat())
        if period.end:
            _sub(status, _k("enddate"), period.end.isoformat())
    return patient


def _transaction(n: int, line: TariffLine | MediprimaLine, answer: TariffAnswer, now: dt.datetime) -> etree._Element:
    tx = etree.Element(_k("transaction"))
    _coded(tx, _k("id"), "ID-KMEHR", str(n))
    _coded(tx, _k("cd"), "CD-TRANSACTION-MYCARENET", "tariffmediprima" if answer.request.mediprima else "tariff")
    _sub(tx, _k("date"), now.date().isoformat())
    _sub(tx, _k("time"), now.time().isoformat())
    _platform_author(tx, _k("author"))
    _sub(tx, _k("iscomplete"), "true")
    _sub(tx, _k("isvalidated"), "true")
    claim = _sub(_item(tx, 1, "claim"), _k("content"))
    _coded(claim, _k("cd"), "CD-NIHDI", line.code)
    _cost(tx, 2, "fee", line.fee)
    if isinstance(line, TariffLine):
        _cost(tx, 3, "reimbursement", line.insurer_amount)
        _cost(tx, 4, "patientfee", line.patient_share)
        if line.payment_approval:
            _coded(_sub(_item(tx, 5, "financialcontract"), _k("content")), _k("id"), "LOCAL", line.payment_approval)
        if line.third_party_reason:
            _coded(_sub(_item(tx, 6, "justification"), _k("content")), _k("cd"), "CD-MYCARENET-JUSTIFICATION",
                   line.third_party_reason.value)
        return tx
    _cost(tx, 3, "reimbursement", line.spp_amount)
    _cost(tx, 4, "patientfee", line.patient_share)
    _cost(tx, 5, "cpasreimbursement", line.cpas_amount)
    _coded(_sub(_item(tx, 6, "financialcontract"), _k("content")), _k("id"), "LOCAL", line.approval)
    _sub(_sub(_item(tx, 7, "amucertificate"), _k("content")), _k("boolean"),
         "true" if line.amu_certificate_needed else "false")
    return tx


# -- the services ------------------------------------------------------------------------------------------
def make_service(tarification: Tarification, mediprima: bool, version: str) -> type[ServiceBase]:
    limits = ParseLimits(max_bytes=MAX_BLOB)

    class TarificationService(ServiceBase):
        @rpc(COMMONS.SendRequestType, _body_style="bare", _returns=COMMONS.SendResponseType,
             _in_message_name="TarificationConsultationRequest", _out_message_name="TarificationConsultationResponse")
        def tarificationConsultation(ctx, request):  # noqa: N805
            """Handles ``TarificationConsultationRequest`` (KMEHR RetrieveTransactionRequest in Detail)."""
            call = call_of(ctx)
            root, encoding = read_detail(request.Detail, limits)
            tariff_request = read_request(root, mediprima)
            call.audit.patient = tariff_request.patient_ssin or None
            claimed, _quality = claimed_provider(request.CommonInput)
            answer = tarification.consult(call.caller, claimed, tariff_request, claimed_ssin(request.CommonInput))
            call.audit.detail = answer.audit_detail
            body = etree.tostring(build_response(answer, root, version), encoding="UTF-8", xml_declaration=True)
            return send_response(COMMONS, request, body, encoding)

    return TarificationService


def build(tarification: Tarification, deps: EndpointDeps, mediprima: bool = False) -> SoapEndpoint:
    if mediprima:
        return build_endpoint("mediprima", [make_service(tarification, True, "mediprima-1.0")], MEDIPRIMA,
                              "mycarenet-mediprima-tarification-v1.xsd", "mycarenet-mediprima-tarification-v1.wsdl",
                              deps)
    return build_endpoint("tarification", [make_service(tarification, False, "tarification-1.0")], TARIFICATION,
                          "mycarenet-tarification-v1.xsd", "mycarenet-tarification-v1.wsdl", deps)


def answer_of(detail: Any) -> etree._Element:
    """For clients and tests: the RetrieveTransactionResponse inside a Detail blob (zeep object)."""
    import zlib

    data = detail._value_1
    if (detail.ContentEncoding or "deflate") == "deflate":
        data = zlib.decompress(data, -zlib.MAX_WBITS)
    return etree.fromstring(data)
