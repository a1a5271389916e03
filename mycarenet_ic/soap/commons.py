"""The MyCareNet commons (``CommonInput``, ``Routing``, ``Detail`` blob, ``Return``): as Spyne models (Tarification,
Mediprima), and read and written as XML directly (MemberData: :func:`read_request`, :func:`response_element`).

Versions 2 (Tarification, Mediprima) and 3 (MemberData) have the same shape in different
namespaces, so the models are built by one function per pair of namespaces and cached: each
service binds the generation its public contract uses. Only v3's ``Detail`` can be sealed (ETEE): v2's
``BlobType`` has no ``ContentEncryption`` nor ``Etk`` (``xsd/mycarenet-commons-core-v2.xsd``).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import secrets
import zlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from lxml import etree
from spyne import Boolean, ByteArray, ComplexModel, Date, DateTime, Unicode, XmlAttribute, XmlData

from mycarenet_ic.errors import MalformedRequest, MycarenetError, SchemaViolation
from mycarenet_ic.security.parser import ParseLimits, parse_untrusted
from mycarenet_ic.services.requesters import Claim

MAX_BLOB = 262_144


@functools.cache
def commons_models(core_ns: str, protocol_ns: str, sealable: bool = True) -> SimpleNamespace:
    """The commons types of ``core_ns`` (core) and ``protocol_ns`` (protocol), as Spyne models; ``sealable``:
    the ``Detail`` has the ETEE attributes ``ContentEncryption`` and ``Etk``."""

    class _Core(ComplexModel):
        __namespace__ = core_ns

    def core(name: str, fields: list[tuple[str, object]]) -> type[ComplexModel]:
        return type(name, (_Core,), {"__type_name__": name, "_type_info": fields})

    value_ref = core("ValueRefString", [("ValueRef", XmlAttribute(Unicode)), ("value", XmlData(Unicode))])
    request = core("RequestType", [("IsTest", Boolean)])
    license_ = core("LicenseType", [("Username", Unicode), ("Password", Unicode)])
    # Id and Ref of the self-referring types (a Ref is substituted before Spyne reads: soap/references.py).
    ref = [("Id", XmlAttribute(Unicode)), ("Ref", XmlAttribute(Unicode))]
    package = core("PackageType", [*ref, ("Name", value_ref), ("License", license_)])
    nihii = core("NihiiType", [*ref, ("Quality", Unicode), ("Value", value_ref)])
    id_type = core("IdType", [*ref, ("Name", value_ref), ("Nihii", nihii), ("Ssin", value_ref), ("Cbe", value_ref)])
    care_provider = core("CareProviderType", [("Nihii", nihii), ("PhysicalPerson", id_type),
                                              ("Organization", id_type)])
    party = core("PartyType", [("PhysicalPerson", id_type), ("Organization", id_type)])
    origin = core("OriginType", [("Package", package), ("SiteID", value_ref), ("CareProvider", care_provider),
                                 ("Sender", party)])
    common_input = core("CommonInputType", [("Request", request), ("Origin", origin), ("InputReference", Unicode),
                                            ("NIPReference", Unicode)])
    common_output = core("CommonOutputType", [("InputReference", Unicode), ("NIPReference", Unicode),
                                              ("OutputReference", Unicode)])
    care_receiver = core("CareReceiverIdType", [("Ssin", Unicode), ("RegNrWithMut", Unicode),
                                                ("Mutuality", Unicode)])
    period = core("PeriodType", [("Start", Date), ("End", Date)])
    routing = core("RoutingType", [("CareReceiver", care_receiver), ("ReferenceDate", Date), ("Period", period)])
    etee = [("ContentEncryption", XmlAttribute(Unicode)), ("Etk", XmlAttribute(Unicode))] if sealable else []
    blob = core("BlobType", [
        ("ContentType", XmlAttribute(Unicode)), ("ContentEncoding", XmlAttribute(Unicode)), *etee,
        ("HashValue", XmlAttribute(Unicode)), ("Id", XmlAttribute(Unicode)), ("value", XmlData(ByteArray)),
    ])

    class _Protocol(ComplexModel):
        __namespace__ = protocol_ns

    def protocol(name: str, fields: list[tuple[str, object]]) -> type[ComplexModel]:
        return type(name, (_Protocol,), {"__type_name__": name, "_type_info": fields})

    send_request = protocol("SendRequestType", [
        ("Id", XmlAttribute(Unicode)), ("IssueInstant", XmlAttribute(DateTime)), ("CommonInput", common_input),
        ("Routing", routing), ("Detail", blob), ("Xades", ByteArray)])
    response_return = protocol("ResponseReturnType", [("CommonOutput", common_output), ("Detail", blob),
                                                      ("XadesT", ByteArray)])
    send_response = protocol("SendResponseType", [
        ("Id", XmlAttribute(Unicode)), ("InResponseTo", XmlAttribute(Unicode)),
        ("IssueInstant", XmlAttribute(DateTime)), ("Return", response_return)])
    return SimpleNamespace(BlobType=blob, CommonInputType=common_input, CommonOutputType=common_output,
                           RoutingType=routing, SendRequestType=send_request, ResponseReturnType=response_return,
                           SendResponseType=send_response)


# -- the Detail blob --------------------------------------------------------------------------------
def decode_blob(blob: Any) -> bytes:
    """The bytes of a Detail blob: base64 already undone (by Spyne or :func:`read_request`), then inflated when
    ``deflate``."""
    if blob is None or blob.value is None:
        raise SchemaViolation("The Detail blob is empty.")
    if getattr(blob, "ContentEncryption", None):
        raise MalformedRequest("Encrypted Detail blobs are not supported by the sandbox; send ContentEncryption-free.")
    data = b"".join(blob.value)
    encoding = (blob.ContentEncoding or "deflate").lower()
    if encoding == "none":
        return data
    if encoding != "deflate":
        raise MalformedRequest(f"Unknown Detail ContentEncoding {blob.ContentEncoding!r}.")
    try:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        out = inflater.decompress(data, MAX_BLOB + 1)
    except zlib.error:
        try:  # some clients send a zlib stream rather than raw deflate
            inflater = zlib.decompressobj()
            out = inflater.decompress(data, MAX_BLOB + 1)
        except zlib.error:
            raise MalformedRequest("The Detail blob is not deflate-compressed as its ContentEncoding says.") from None
    if len(out) > MAX_BLOB:
        raise MalformedRequest("The Detail blob is larger than allowed once inflated.")
    return out


def pack(data: bytes, encoding: str) -> bytes:
    """``data`` as a Detail blob of ContentEncoding ``encoding`` carries it (raw deflate, or as it is)."""
    if encoding == "deflate":
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        data = packer.compress(data) + packer.flush()
    return data


def encode_blob(data: bytes, encoding: str, models: SimpleNamespace) -> Any:
    return models.BlobType(ContentType="text/xml", ContentEncoding=encoding, value=[pack(data, encoding)])


def read_detail(blob: Any, limits: ParseLimits) -> tuple[etree._Element, str]:
    """The Detail blob parsed by the hardened parser, and the encoding to answer with."""
    encoding = (blob.ContentEncoding or "deflate").lower() if blob is not None else "none"
    try:
        root = parse_untrusted(decode_blob(blob), limits)
    except MycarenetError:
        raise
    except Exception:  # noqa: BLE001 - the hardened parser's refusals are SecurityRejected already
        raise MalformedRequest("The Detail blob is not a well-formed XML document.") from None
    return root, "deflate" if encoding == "deflate" else "none"


def claimed_provider(common: Any) -> Claim:
    """The care provider as the CommonInput claims it (``CareProvider/Nihii`` and ``…/PhysicalPerson/Ssin``;
    the NIHII's quality attribute claims nothing the services use: the quality is the certificate's or
    the STS token's)."""
    provider = common.Origin.CareProvider if common.Origin is not None else None
    if provider is None:
        return Claim()
    nihii = provider.Nihii
    value = nihii.Value.value if nihii is not None and nihii.Value is not None else None
    person = provider.PhysicalPerson
    ssin = person.Ssin.value if person is not None and person.Ssin is not None else None
    return Claim(value, (str(ssin).strip() or None) if ssin is not None else None)


def send_response(models: SimpleNamespace, request: Any, body: bytes, encoding: str) -> Any:
    """The commons answer to ``request``: ``Return`` with ``CommonOutput`` and ``body`` as the Detail blob."""
    reply_id = f"_{secrets.token_hex(16)}"
    return models.SendResponseType(
        Id=reply_id, InResponseTo=request.Id, IssueInstant=dt.datetime.now(dt.UTC).replace(microsecond=0),
        Return=models.ResponseReturnType(
            CommonOutput=models.CommonOutputType(InputReference=request.CommonInput.InputReference,
                                                 NIPReference=request.CommonInput.NIPReference,
                                                 OutputReference=reply_id),
            Detail=encode_blob(body, encoding, models)))


# -- the commons request and answer as XML (no Spyne: the endpoint has parsed and validated the Body) -----
@dataclass(frozen=True)
class Blob:
    """A ``Detail`` blob: its bytes (base64 undone) and attributes, named as the schema names them."""

    value: list[bytes] | None
    ContentType: str | None = "text/xml"  # noqa: N815 - the schema's attribute names
    ContentEncoding: str | None = None  # noqa: N815
    ContentEncryption: str | None = None  # noqa: N815
    Etk: str | None = None


@dataclass(frozen=True)
class CommonsRequest:
    """What the services read of a commons ``SendRequestType``."""

    id: str | None
    input_reference: str | None
    nip_reference: str | None
    claim: Claim
    detail: Blob | None


def _text(el: etree._Element | None) -> str | None:
    return None if el is None else el.text or None


def read_request(payload: etree._Element, core_ns: str, protocol_ns: str) -> CommonsRequest:
    """A schema-valid commons request (``payload``: the Body's element) as the services read it."""
    c, p = f"{{{core_ns}}}", f"{{{protocol_ns}}}"
    common = payload.find(f"{p}CommonInput")
    provider = common.find(f"{c}Origin/{c}CareProvider") if common is not None else None
    claim = Claim()
    if provider is not None:
        ssin = _text(provider.find(f"{c}PhysicalPerson/{c}Ssin"))
        claim = Claim(_text(provider.find(f"{c}Nihii/{c}Value")), (ssin.strip() or None) if ssin is not None else None)
    detail = payload.find(f"{p}Detail")
    blob = None
    if detail is not None:
        blob = Blob([base64.b64decode(detail.text)] if detail.text else None, detail.get("ContentType"),
                    detail.get("ContentEncoding"), detail.get("ContentEncryption"), detail.get("Etk"))
    return CommonsRequest(payload.get("Id"), _text(common.find(f"{c}InputReference")) if common is not None else None,
                          _text(common.find(f"{c}NIPReference")) if common is not None else None, claim, blob)


def response_element(tag: str, core_ns: str, protocol_ns: str, request: CommonsRequest, detail: Blob,
                     nsmap: dict[str | None, str] | None = None) -> etree._Element:
    """The commons answer ``tag`` to ``request``: ``Return`` with ``CommonOutput`` and ``detail``, written
    as Spyne wrote it (the same prefixes, attributes in the schema's order)."""
    c, p = f"{{{core_ns}}}", f"{{{protocol_ns}}}"
    reply_id = f"_{secrets.token_hex(16)}"
    root = etree.Element(tag, nsmap=nsmap)
    root.set("Id", reply_id)
    if request.id is not None:
        root.set("InResponseTo", request.id)
    root.set("IssueInstant", dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat())
    returned = etree.SubElement(root, f"{p}Return", nsmap={"ns2": protocol_ns})
    output = etree.SubElement(returned, f"{p}CommonOutput")
    for name, value in (("InputReference", request.input_reference), ("NIPReference", request.nip_reference),
                        ("OutputReference", reply_id)):
        if value is not None:
            etree.SubElement(output, f"{c}{name}", nsmap={"ns0": core_ns}).text = value
    blob = etree.SubElement(returned, f"{p}Detail")
    for name in ("ContentType", "ContentEncoding", "ContentEncryption", "Etk"):
        value = getattr(detail, name)
        if value is not None:
            blob.set(name, value)
    blob.text = base64.b64encode(b"".join(detail.value or [])).decode()
    return root
