"""Tarification and Mediprima over SOAP: the MyCareNet commons v2 envelope around a KMEHR message-services
``RetrieveTransactionRequest`` (transaction ``tariff`` or ``tariffmediprima``) in the Detail blob,
answered by a ``RetrieveTransactionResponse``: ``response``, ``acknowledge`` (errors with the public
catalogue's codes, each with an XPath into the request the client sent) and, when at least one code is
priced, a ``kmehrmessage`` (header + folder with the patient and one transaction per priced code).

Both services have the official Tarification v1 contract (namespace, operation, SOAP action); the
endpoint tells them apart (``/tarification``, ``/mediprima``), as production's two addresses do.

Namespaces as the official message-services schemas have them: the two roots are in the protocol
namespace, every child of a core type (``request``, ``select``, ``patient``, ``transaction``, its ``cd``
and ``item``, ``response``, ``acknowledge``, ``kmehrmessage``, ...) in the core namespace, and what
those contain (``hcparty``, an item's children, an error's children, header, folder) in KMEHR.
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
from mycarenet_ic.services.tarification import RequestPart, TariffAnswer, TariffError, TariffRequest, Tarification
from mycarenet_ic.soap.commons import MAX_BLOB, claimed_provider, commons_models, read_detail, send_response
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.service import build_endpoint, call_of, requester

TARIFICATION = "urn:be:fgov:ehealth:mycarenet:tarification:protocol:v1"
CORE_V2 = "urn:be:fgov:ehealth:mycarenet:commons:core:v2"
PROTOCOL_V2 = "urn:be:fgov:ehealth:mycarenet:commons:protocol:v2"
MP = "http://www.ehealth.fgov.be/messageservices/protocol/v1"
MC = "http://www.ehealth.fgov.be/messageservices/core/v1"
K = "http://www.ehealth.fgov.be/standards/kmehr/schema/v1"
BLOB_XSD = "messageservices-protocol-v1.xsd"
SERVICE_XSD = "mycarenet-tarification-v1.xsd"
COMMONS = commons_models(CORE_V2, PROTOCOL_V2, sealable=False)  # commons v2: no ETEE (soap/commons.py)
KMEHR_STANDARD = ("1.19", "20161201")  # CD-STANDARD version and value of the answers
# Where each part of the request is in the document the client sent (a code's place with its index).
LOCATION = dict[tuple[RequestPart, int | None], etree._Element]


def _k(local: str) -> str:
    return f"{{{K}}}{local}"


def _mc(local: str) -> str:
    return f"{{{MC}}}{local}"


def _first(parent: etree._Element | None, tag: str, scheme: str | tuple[str, ...] | None = None
           ) -> etree._Element | None:
    """The first ``tag`` child of ``parent`` (with ``S`` in ``scheme`` when given)."""
    if parent is None:
        return None
    schemes = (scheme,) if isinstance(scheme, str) else scheme
    for child in parent.iterchildren(tag):
        if schemes is None or child.get("S") in schemes:
            return child
    return None


def _text(el: etree._Element | None) -> str | None:
    return None if el is None else (el.text or "").strip()


def _transaction_code(mediprima: bool) -> str:
    """The CD-TRANSACTION-MYCARENET of the service."""
    return "tariffmediprima" if mediprima else "tariff"


# -- the request -----------------------------------------------------------------------------------------
def read_request(root: etree._Element, mediprima: bool) -> tuple[TariffRequest, LOCATION]:
    """The KMEHR request (checked against its schema) as a :class:`TariffRequest`, and where each of its
    parts (:class:`~mycarenet_ic.services.tarification.RequestPart`) is in the document."""
    schema = contract.schema(BLOB_XSD)
    if root.tag != f"{{{MP}}}RetrieveTransactionRequest" or not schema.validate(root):
        last = schema.error_log.last_error
        raise SchemaViolation.from_validator("The Detail blob must be a message-services RetrieveTransactionRequest",
                                             last)
    request = root.find(_mc("request"))
    select = root.find(_mc("select"))
    assert request is not None and select is not None
    transaction = select.find(_mc("transaction"))
    assert transaction is not None
    wanted = _transaction_code(mediprima)
    if _text(_first(transaction, _mc("cd"), "CD-TRANSACTION-MYCARENET")) != wanted:
        raise SchemaViolation(f"The transaction must be CD-TRANSACTION-MYCARENET {wanted!r}.")
    author = _first(request.find(_mc("author")), _k("hcparty"))
    author_id = _first(author, _k("id"), "ID-HCPARTY")
    patient = select.find(_mc("patient"))
    patient_id = _first(patient, _mc("id"), ("ID-PATIENT", "INSS"))
    sex = patient.find(f"{_mc('sex')}/{_k('cd')}") if patient is not None else None
    membership = patient.find(_mc("insurancymembership")) if patient is not None else None
    where: LOCATION = {(RequestPart.SERVICE, None): transaction}
    for part, el in ((RequestPart.AUTHOR, author_id if author_id is not None else author),
                     (RequestPart.PATIENT, patient), (RequestPart.PATIENT_ID, patient_id),
                     (RequestPart.PATIENT_SEX, patient.find(_mc("sex")) if patient is not None else None),
                     (RequestPart.MUTUALITY, _first(membership, _k("id"))),
                     (RequestPart.MEMBERSHIP, _first(membership, _k("membership")))):
        if el is not None:
            where[part, None] = el
    date = None
    codes: list[str] = []
    justification = gmd_manager = None
    for item in transaction.iterchildren(_mc("item")):
        kind = _text(_first(item, _k("cd"), ("CD-ITEM", "CD-ITEM-MYCARENET")))
        content = item.find(_k("content"))
        if kind == "encounterdatetime":
            day = content.find(_k("date")) if content is not None else None
            where[RequestPart.SERVICE_DATE, None] = item
            where[RequestPart.SERVICE_DAY, None] = day if day is not None else item
            if day is not None and day.text:
                date = dt.date.fromisoformat(day.text.strip())
        elif kind == "claim":
            cd = _first(content, _k("cd"), "CD-NIHDI")
            where[RequestPart.CODE, len(codes)] = cd if cd is not None else item
            codes.append(_text(cd) or "")
        elif kind == "justification":
            cd = _first(content, _k("cd"), "CD-MYCARENET-JUSTIFICATION")
            where[RequestPart.JUSTIFICATION, None] = cd if cd is not None else item
            justification = _text(cd) if cd is not None else ""
        elif kind == "gmdmanager":
            hcparty = content.find(_k("hcparty")) if content is not None else None
            gmd_id = _first(hcparty, _k("id"), "ID-HCPARTY")
            where[RequestPart.GMD_MANAGER, None] = gmd_id if gmd_id is not None else item
            gmd_manager = _text(gmd_id) or None
    member = None
    if membership is not None:
        member = (_text(_first(membership, _k("id"))) or "", _text(_first(membership, _k("membership"))) or "")
    tariff_request = TariffRequest(
        id=_text(request.find(_mc("id"))) or "",
        author_nihii=_text(author_id) or None,
        patient_ssin=_text(patient_id) or "",
        date=date, codes=tuple(codes), justification=justification, gmd_manager=gmd_manager, mediprima=mediprima,
        sex=_text(sex) or None, membership=member,
        version=(root.get("messageProtocoleSchemaVersion") or "").strip() or None)
    return tariff_request, where


def xpath_of(el: etree._Element) -> str:
    """An XPath 1.0 expression selecting exactly ``el`` in its document, without namespace prefixes (so
    that a client evaluates it with no namespace context): ``/*[local-name()='x'][n]/…``."""
    steps = []
    node: etree._Element | None = el
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is None:
            steps.append(f"/*[local-name()='{name}']")
        else:
            same = [c for c in parent if isinstance(c.tag, str) and etree.QName(c).localname == name]
            steps.append(f"/*[local-name()='{name}'][{same.index(node) + 1}]")
        node = parent
    return "".join(reversed(steps))


# Where a part the client did not send is pointed at: the nearest part that holds it.
_HOLDER = {RequestPart.PATIENT_ID: RequestPart.PATIENT, RequestPart.PATIENT_SEX: RequestPart.PATIENT,
           RequestPart.MUTUALITY: RequestPart.PATIENT, RequestPart.MEMBERSHIP: RequestPart.PATIENT,
           RequestPart.CODE: RequestPart.SERVICE, RequestPart.SERVICE_DATE: RequestPart.SERVICE,
           RequestPart.SERVICE_DAY: RequestPart.SERVICE, RequestPart.JUSTIFICATION: RequestPart.SERVICE,
           RequestPart.GMD_MANAGER: RequestPart.SERVICE}


def _url(error: TariffError, where: LOCATION, root: etree._Element) -> str:
    el = where.get((error.part, error.index))
    if el is None and error.part in _HOLDER:
        el = where.get((_HOLDER[error.part], None))
    if el is None and error.part is RequestPart.PATIENT:
        el = root.find(_mc("select"))
    return xpath_of(el if el is not None else root)


# -- the answer ----------------------------------------------------------------------------------------
def _euro(cents: int) -> str:
    return str((Decimal(cents) / 100).quantize(Decimal("0.01")))


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    el = etree.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def _coded(parent: etree._Element, tag: str, scheme: str, value: str, sv: str = "1.0", **extra: str) -> etree._Element:
    return _sub(parent, tag, value, S=scheme, SV=sv, **extra)


def _platform(parent: etree._Element, tag: str) -> None:
    """``tag`` (an authorType) naming the MyCareNet platform as an application."""
    hcparty = _sub(_sub(parent, tag), _k("hcparty"))
    _coded(hcparty, _k("cd"), "CD-HCPARTY", "application", "1.1")
    _sub(hcparty, _k("name"), "MyCareNet")


def _item(transaction: etree._Element, kind: str, scheme: str = "CD-ITEM-MYCARENET") -> etree._Element:
    item = _sub(transaction, _k("item"))
    _coded(item, _k("id"), "ID-KMEHR", str(sum(1 for _ in transaction.iterchildren(_k("item")))))
    _coded(item, _k("cd"), scheme, kind)
    return item


def _cost(transaction: etree._Element, kind: str, cents: int) -> None:
    cost = _sub(_item(transaction, kind), _k("cost"))
    _sub(cost, _k("decimal"), _euro(cents))
    _coded(_sub(cost, _k("unit")), _k("cd"), "CD-CURRENCY", "eur")


def build_response(answer: TariffAnswer, request_xml: etree._Element, where: LOCATION | None = None) -> etree._Element:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    reference = f"MYCARENET.{now:%Y%m%d%H%M%S}{secrets.token_hex(4)}"
    root = etree.Element(f"{{{MP}}}RetrieveTransactionResponse", nsmap={"mp": MP, "mc": MC, "k": K})
    if answer.request.version is not None:  # the message's version comes back with its reference (seed §18)
        root.set("messageProtocoleSchemaVersion", answer.request.version)
    response = _sub(root, _mc("response"))
    _coded(response, _mc("id"), "ID-KMEHR", reference)
    _platform(response, _mc("author"))
    _sub(response, _mc("date"), now.date().isoformat())
    _sub(response, _mc("time"), now.time().isoformat())
    echoed = request_xml.find(_mc("request"))
    if echoed is not None:
        response.append(etree.fromstring(etree.tostring(echoed)))
    ack = _sub(root, _mc("acknowledge"))
    _sub(ack, _mc("iscomplete"), "true" if answer.complete else "false")
    for error in answer.errors:
        err = _sub(ack, _mc("error"))
        _coded(err, _k("cd"), "CD-ERROR", error.code)
        _sub(err, _k("description"), error.description, L="en")
        _sub(err, _k("url"), _url(error, where or {}, request_xml))
    priced = [line for line in answer.lines if not isinstance(line, NoTariff)]
    if not priced:
        return root  # a folder holds at least one transaction: nothing priced, no kmehrmessage
    message = _sub(root, _mc("kmehrmessage"))
    header = _sub(message, _k("header"))
    _coded(_sub(header, _k("standard")), _k("cd"), "CD-STANDARD", KMEHR_STANDARD[1], KMEHR_STANDARD[0])
    _coded(header, _k("id"), "ID-KMEHR", reference)
    _sub(header, _k("date"), now.date().isoformat())
    _sub(header, _k("time"), now.time().isoformat())
    _platform(header, _k("sender"))
    recipient = _sub(header, _k("recipient"))
    requester = request_xml.find(f"{_mc('request')}/{_mc('author')}/{_k('hcparty')}")
    if requester is not None:
        recipient.append(etree.fromstring(etree.tostring(requester)))
    folder = _sub(message, _k("folder"))
    _coded(folder, _k("id"), "ID-KMEHR", "1")
    folder.append(_patient(answer, now))
    for n, line in enumerate(priced, 1):
        folder.append(_transaction(n, line, answer, now))
    return root


def _patient(answer: TariffAnswer, now: dt.datetime) -> etree._Element:
    patient = etree.Element(_k("patient"))
    _coded(patient, _k("id"), "ID-PATIENT", answer.ssin)
    person = answer.person
    for first in (person.first_names if person is not None and person.first_names else ("",)):
        _sub(patient, _k("firstname"), first)
    _sub(patient, _k("familyname"), person.last_name if person is not None else "")
    if person is not None and person.birth_date:
        _sub(_sub(patient, _k("birthdate")), _k("date"), person.birth_date.isoformat())
    if person is not None and person.death_date:
        _sub(_sub(patient, _k("deathdate")), _k("date"), person.death_date.isoformat())
    sex = person.sex if person is not None and person.sex in ("male", "female") else "unknown"
    _coded(_sub(patient, _k("sex")), _k("cd"), "CD-SEX", sex)
    period = answer.period
    if period is not None and not answer.request.mediprima:
        status = _sub(patient, _k("insurancystatus"))
        _coded(status, _k("id"), "ID-INSURANCE", period.mutuality)
        _sub(status, _k("membership"), period.registration_number)
        _sub(status, _k("begindate"), period.start.isoformat())
        if period.end:
            _sub(status, _k("enddate"), period.end.isoformat())
        _sub(status, _k("cg1"), period.ct1)
        _sub(status, _k("cg2"), period.ct2)
    _sub(patient, _k("recorddatetime"), now.replace(tzinfo=None).isoformat())
    return patient


def _transaction(n: int, line: TariffLine | MediprimaLine, answer: TariffAnswer, now: dt.datetime) -> etree._Element:
    tx = etree.Element(_k("transaction"))
    _coded(tx, _k("id"), "ID-KMEHR", str(n))
    _coded(tx, _k("cd"), "CD-TRANSACTION-MYCARENET", _transaction_code(answer.request.mediprima), "1.2")
    _sub(tx, _k("date"), now.date().isoformat())
    _sub(tx, _k("time"), now.time().isoformat())
    _platform(tx, _k("author"))
    _sub(tx, _k("iscomplete"), "true")
    _sub(tx, _k("isvalidated"), "true")
    _coded(_sub(_item(tx, "claim", "CD-ITEM"), _k("content")), _k("cd"), "CD-NIHDI", line.code)
    # Each line carries the date of its service (seed 001 §18 for Mediprima: code, date, fee, ...).
    day = line.date if isinstance(line, MediprimaLine) else answer.request.date
    if day is not None:
        _sub(_sub(_item(tx, "encounterdatetime", "CD-ITEM"), _k("content")), _k("date"), day.isoformat())
    _cost(tx, "fee", line.fee)
    if isinstance(line, TariffLine):
        _cost(tx, "reimbursement", line.insurer_amount)
        _cost(tx, "patientfee", line.patient_share)
        if line.payment_approval:
            _coded(_sub(_item(tx, "financialcontract"), _k("content")), _k("id"), "LOCAL", line.payment_approval,
                   SL="MYCARENET-PAYMENT-APPROVAL")
        _coded(_sub(_item(tx, "justification", "CD-ITEM"), _k("content")), _k("cd"), "CD-MYCARENET-JUSTIFICATION",
               line.justification.value)
        return tx
    # Mediprima: SPP Social Integration (FPS SI) and the CPAS (public social-welfare centre, PSWC) share it.
    _cost(tx, "reimbursement-fpssi", line.spp_amount)
    _cost(tx, "reimbursement-pswc", line.cpas_amount)
    _cost(tx, "patientfee", line.patient_share)
    _coded(_sub(_item(tx, "financialcontract"), _k("content")), _k("id"), "LOCAL", line.approval,
           SL="MYCARENET-PAYMENT-APPROVAL")
    _sub(_sub(_item(tx, "umc"), _k("content")), _k("boolean"), "true" if line.amu_certificate_needed else "false")
    file_cpas = answer.cpas
    if file_cpas is not None:
        pswc = _item(tx, "pswc")
        _coded(_sub(pswc, _k("content")), _k("id"), "ID-CBE", file_cpas)
    return tx


# -- the services ------------------------------------------------------------------------------------------
def make_service(tarification: Tarification, mediprima: bool) -> type[ServiceBase]:
    limits = ParseLimits(max_bytes=MAX_BLOB)

    class TarificationService(ServiceBase):
        @rpc(COMMONS.SendRequestType, _body_style="bare", _returns=COMMONS.SendResponseType,
             _in_message_name="TarificationConsultationRequest", _out_message_name="TarificationConsultationResponse")
        def tarificationConsultation(ctx, request):  # noqa: N805
            """Handles ``TarificationConsultationRequest`` (KMEHR RetrieveTransactionRequest in Detail)."""
            call = call_of(ctx)
            root, encoding = read_detail(request.Detail, limits)
            tariff_request, where = read_request(root, mediprima)
            call.audit.patient = tariff_request.patient_ssin or None
            claim = claimed_provider(request.CommonInput)
            answer = tarification.consult(requester(call, claim), tariff_request)
            if answer.ssin:
                call.audit.patient = answer.ssin
            if answer.author_refused:
                call.audit.outcome = "DENIED"
            call.audit.detail = answer.audit_detail
            body = etree.tostring(build_response(answer, root, where), encoding="UTF-8", xml_declaration=True)
            return send_response(COMMONS, request, body, encoding)

    return TarificationService


def build(tarification: Tarification, deps: EndpointDeps, mediprima: bool = False) -> SoapEndpoint:
    name, wsdl = (("mediprima", "mycarenet-mediprima-tarification-v1.wsdl") if mediprima
                  else ("tarification", "mycarenet-tarification-v1.wsdl"))
    return build_endpoint(name, [make_service(tarification, mediprima)], TARIFICATION, SERVICE_XSD, wsdl, deps)


def answer_of(detail: Any) -> etree._Element:
    """For clients and tests: the RetrieveTransactionResponse inside a Detail blob (zeep object)."""
    import zlib

    data = detail._value_1
    if (detail.ContentEncoding or "deflate") == "deflate":
        data = zlib.decompress(data, -zlib.MAX_WBITS)
    return etree.fromstring(data)
