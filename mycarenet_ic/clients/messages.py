"""Business messages as MyCareNet clients build them: a SAML AttributeQuery (MemberData), a KMEHR
tariff request (Tarification, Mediprima), and a commons request body around a Detail blob.

For integrators, the conformance tests and the benchmarks; they follow the public contracts' names.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets

from mycarenet_ic.ns import (
    KMEHR,
    MEMBERDATA_EXTENSION,
    MESSAGESERVICES_CORE,
    MESSAGESERVICES_PROTOCOL,
    SAML2_ASSERTION,
    SAML2_PROTOCOL,
    XSI,
    commons_core,
    commons_protocol,
)

INSURABILITY = "urn:be:cin:nippin:insurability"


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def attribute_query(issuer: str, subject: str, start: dt.date, end: dt.date,
                    facets: list[tuple[str, list[tuple[str, str]]]] | None = None,
                    name_format: str = "urn:be:fgov:person:ssin", extra: str = "") -> bytes:
    """A SAML AttributeQuery the way MyCareNet clients build it."""
    facets = facets if facets is not None else [(INSURABILITY, [("requestType", "information"),
                                                                  ("contactType", "other")])]
    facet_xml = "".join(
        f'<ext:Facet id="{fid}">' + "".join(f'<Dimension id="{d}">{v}</Dimension>' for d, v in dims) + "</ext:Facet>"
        for fid, dims in facets)
    return (f'<samlp:AttributeQuery xmlns:samlp="{SAML2_PROTOCOL}" xmlns:saml="{SAML2_ASSERTION}" '
            f'ID="_{secrets.token_hex(8)}" Version="2.0" IssueInstant="{_now()}">'
            f'<saml:Issuer Format="urn:be:cin:nippin:nihii11">{issuer}</saml:Issuer>'
            f'<samlp:Extensions xmlns:ext="{MEMBERDATA_EXTENSION}" xmlns:xsi="{XSI}" '
            f'xsi:type="ext:ExtensionsType">{facet_xml}</samlp:Extensions>'
            f'<saml:Subject><saml:NameID Format="{name_format}">{subject}</saml:NameID>'
            f'<saml:SubjectConfirmation Method="urn:be:cin:nippin:memberIdentification">'
            f'<saml:SubjectConfirmationData NotBefore="{start}T00:00:00" NotOnOrAfter="{end}T00:00:00"/>'
            f"</saml:SubjectConfirmation></saml:Subject>{extra}</samlp:AttributeQuery>").encode()


def tariff_request(author: str, author_ssin: str, patient: str, day: dt.date, codes: list[str],
                   justification: str | None = None, gmd_manager: str | None = None,
                   transaction: str = "tariff", request_id: str | None = None) -> bytes:
    """A message-services RetrieveTransactionRequest as a tariff client builds it: the roots in the protocol
    namespace, ``request``/``select``/``patient``/``transaction`` and their children (``transaction/item``
    included) in the core namespace, what an item or an author holds in KMEHR. ``justification`` is a
    CD-MYCARENET-JUSTIFICATION code (``2``, ``7``); ``request_id``: the request's ID-KMEHR (default
    ``{author}.{timestamp}``, to the second)."""
    items = [f'<mc:item><k:id S="ID-KMEHR" SV="1.0">1</k:id><k:cd S="CD-ITEM" SV="1.0">encounterdatetime</k:cd>'
             f"<k:content><k:date>{day}</k:date></k:content></mc:item>"]
    for n, code in enumerate(codes, 2):
        items.append(f'<mc:item><k:id S="ID-KMEHR" SV="1.0">{n}</k:id><k:cd S="CD-ITEM" SV="1.0">claim</k:cd>'
                     f'<k:content><k:cd S="CD-NIHDI" SV="1.0">{code}</k:cd></k:content></mc:item>')
    if justification:
        items.append('<mc:item><k:id S="ID-KMEHR" SV="1.0">90</k:id><k:cd S="CD-ITEM" SV="1.0">justification</k:cd>'
                     f'<k:content><k:cd S="CD-MYCARENET-JUSTIFICATION" SV="1.0">{justification}</k:cd></k:content>'
                     "</mc:item>")
    if gmd_manager:
        items.append('<mc:item><k:id S="ID-KMEHR" SV="1.0">91</k:id><k:cd S="CD-ITEM" SV="1.0">gmdmanager</k:cd>'
                     f'<k:content><k:hcparty><k:id S="ID-HCPARTY" SV="1.0">{gmd_manager}</k:id>'
                     '<k:cd S="CD-HCPARTY" SV="1.1">persphysician</k:cd></k:hcparty></k:content></mc:item>')
    now = dt.datetime.now()
    return (f'<mp:RetrieveTransactionRequest xmlns:mp="{MESSAGESERVICES_PROTOCOL}" '
            f'xmlns:mc="{MESSAGESERVICES_CORE}" xmlns:k="{KMEHR}">'
            f'<mc:request><mc:id S="ID-KMEHR" SV="1.0">{request_id or f"{author}.{now:%Y%m%d%H%M%S}"}</mc:id>'
            f'<mc:author><k:hcparty><k:id S="ID-HCPARTY" SV="1.0">{author}</k:id>'
            f'<k:id S="INSS" SV="1.0">{author_ssin}</k:id><k:cd S="CD-HCPARTY" SV="1.1">persphysician</k:cd>'
            f"</k:hcparty></mc:author><mc:date>{now.date()}</mc:date><mc:time>{now:%H:%M:%S}</mc:time></mc:request>"
            f'<mc:select><mc:patient><mc:id S="ID-PATIENT" SV="1.0">{patient}</mc:id></mc:patient>'
            f'<mc:transaction><mc:cd S="CD-TRANSACTION-MYCARENET" SV="1.0">{transaction}</mc:cd>{"".join(items)}'
            "</mc:transaction></mc:select></mp:RetrieveTransactionRequest>").encode()


def commons_request(element: str, ns: str, version: int, blob: bytes, patient: str | None, day: dt.date,
                    reference: str, provider_nihii: str, provider_ssin: str | None, quality: str = "doctor",
                    request_id: str | None = None, issue_instant: str | None = None) -> str:
    """A MyCareNet commons request body (CommonInput, Routing, Detail) built by hand, the way the public
    contract spells it: ``element`` in ``ns``, its children in commons protocol v``version``, theirs in core.
    ``patient`` None: no Routing; ``provider_ssin`` None: an organisation (no PhysicalPerson)."""
    protocol, core = commons_protocol(version), commons_core(version)
    detail = base64.b64encode(blob).decode()
    person = f"<c:PhysicalPerson><c:Ssin>{provider_ssin}</c:Ssin></c:PhysicalPerson>" if provider_ssin else ""
    routing = (f"<p:Routing><c:CareReceiver><c:Ssin>{patient}</c:Ssin></c:CareReceiver>"
               f"<c:ReferenceDate>{day}</c:ReferenceDate></p:Routing>") if patient is not None else ""
    return (f'<x:{element} xmlns:x="{ns}" xmlns:p="{protocol}" xmlns:c="{core}" '
            f'Id="{request_id or "_" + secrets.token_hex(8)}" IssueInstant="{issue_instant or _now()}">'
            "<p:CommonInput><c:Request><c:IsTest>true</c:IsTest></c:Request><c:Origin><c:Package>"
            "<c:Name>hand</c:Name><c:License><c:Username>u</c:Username><c:Password>p</c:Password></c:License>"
            f"</c:Package><c:CareProvider><c:Nihii><c:Quality>{quality}</c:Quality><c:Value>{provider_nihii}</c:Value>"
            f"</c:Nihii>{person}</c:CareProvider>"
            f"</c:Origin><c:InputReference>{reference}</c:InputReference></p:CommonInput>{routing}"
            f'<p:Detail ContentEncoding="none" ContentType="text/xml">{detail}</p:Detail></x:{element}>')
