"""Spyne models of the MyCareNet commons (``CommonInput``, ``Routing``, ``Detail`` blob, ``Return``).

Versions 2 (Tarification, Mediprima) and 3 (MemberData) have the same shape in different
namespaces, so the models are built by one function per pair of namespaces and cached: each
service binds the generation its public contract uses.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from spyne import Boolean, ByteArray, ComplexModel, Date, DateTime, Unicode, XmlAttribute, XmlData


@functools.cache
def commons_models(core_ns: str, protocol_ns: str) -> SimpleNamespace:
    """The commons types of ``core_ns`` (core) and ``protocol_ns`` (protocol), as Spyne models."""

    class _Core(ComplexModel):
        __namespace__ = core_ns

    def core(name: str, fields: list[tuple[str, object]]) -> type[ComplexModel]:
        return type(name, (_Core,), {"__type_name__": name, "_type_info": fields})

    value_ref = core("ValueRefString", [("ValueRef", XmlAttribute(Unicode)), ("value", XmlData(Unicode))])
    request = core("RequestType", [("IsTest", Boolean)])
    license_ = core("LicenseType", [("Username", Unicode), ("Password", Unicode)])
    package = core("PackageType", [("Id", XmlAttribute(Unicode)), ("Name", value_ref), ("License", license_)])
    nihii = core("NihiiType", [("Id", XmlAttribute(Unicode)), ("Quality", Unicode), ("Value", value_ref)])
    id_type = core("IdType", [("Id", XmlAttribute(Unicode)), ("Name", value_ref), ("Nihii", nihii),
                              ("Ssin", value_ref), ("Cbe", value_ref)])
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
    blob = core("BlobType", [
        ("ContentType", XmlAttribute(Unicode)), ("ContentEncoding", XmlAttribute(Unicode)),
        ("ContentEncryption", XmlAttribute(Unicode)), ("Etk", XmlAttribute(Unicode)),
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
