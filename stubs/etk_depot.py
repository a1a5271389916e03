"""ETK depot stub: the eHealth ETK depot's ``GetEtk`` (``urn:be:fgov:ehealth:etkdepot:1_0:protocol``), which
gives a party's encryption token (ETK) to whoever must seal a message for it.

The request names the party by ``SearchCriteria/Identifier`` (``Type``, ``Value``, ``ApplicationID?``); the
answer (``GetEtkResponse``, a commons 1.0 ``ResponseType``: ``core:Status`` with ``Code`` and ``Message``)
echoes them as ``GivenSearchCriteria`` and gives one of: the ``ETK`` (base64 of a CMS SignedData holding
the encryption certificate), the ``MatchingEtk`` identifiers when the party has ETKs but none for the
application asked, or ``Error`` (``Code``, ``Message``). Status codes as the public WSDL lists them: 200
found (or candidates given), 400 a bad request (an unknown identifier type, an identifier of the wrong
form), 404 none found. Error codes ``NO_MATCHING_ETK``, ``INVALID_SSIN_NUMBER``, ``INVALID_NIHII_NUMBER``,
``INVALID_CBE_NUMBER`` (freehealth-connector ``ETKHelper.validateETKResponse``); ``UNKNOWN_IDENTIFIER_TYPE``
is the sandbox's own word for the 400 of an unknown type. Sources: e-Contract/mycarenet
``mycarenet-ehealth-etk/src/wsdl/`` (EtkDepot-v1.wsdl and its schemas), freehealth-connector
``be.fgov.ehealth.etkdepot._1_0.protocol``.

The parties are the registry's (:mod:`mycarenet_ic.security.etk`): the MyCareNet platform, the insurers,
and every holder ``certs issue --etk`` gave an encryption key. eHealth's depot is public; the sandbox's,
like all its services, takes a signed request and signs its answer.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from lxml import etree

from mycarenet_ic.domain.identifiers import is_valid_cbe, is_valid_niss, parse_nihii
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.security.etk import EtkIdentifier, EtkRegistry
from mycarenet_ic.soap.endpoint import Call, EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.service import build_element_endpoint

NS = "urn:be:fgov:ehealth:etkdepot:1_0:protocol"
CORE = "urn:be:fgov:ehealth:commons:1_0:core"
TYPES = frozenset({"SSIN", "NIHII", "CBE"} | {q.cert_type for q in Quality if q.is_organisation})


def _q(local: str) -> str:
    return f"{{{NS}}}{local}"


def _text(parent: etree._Element, local: str) -> str:
    found = parent.find(_q(local))
    return (found.text or "").strip() if found is not None else ""


def identifier_error(ident: EtkIdentifier) -> tuple[str, str] | None:
    """``(code, message)`` when ``ident`` is not one the depot can look up."""
    if ident.type not in TYPES:
        return "UNKNOWN_IDENTIFIER_TYPE", f"Unknown identifier type {ident.type!r}."
    if ident.type == "SSIN" and not is_valid_niss(ident.value):
        return "INVALID_SSIN_NUMBER", "The SSIN is not valid."
    if ident.type == "CBE" and not is_valid_cbe(ident.value):
        return "INVALID_CBE_NUMBER", "The CBE number is not valid."
    if ident.type.startswith("NIHII"):
        try:
            parse_nihii(ident.value)
        except ValueError:
            return "INVALID_NIHII_NUMBER", "The NIHII number is not valid."
    return None


def _identifier(parent: etree._Element, ident: EtkIdentifier) -> None:
    el = etree.SubElement(parent, _q("Identifier"))
    etree.SubElement(el, _q("Type")).text = ident.type
    etree.SubElement(el, _q("Value")).text = ident.value
    if ident.application:
        etree.SubElement(el, _q("ApplicationID")).text = ident.application


def get_etk(registry: EtkRegistry, asked: list[EtkIdentifier]) -> tuple[str, str, bytes | None,
                                                                     list[list[EtkIdentifier]], list[tuple[str, str]]]:
    """``(status code, status message, ETK, matching identifiers, errors)`` of a search for ``asked``: the ETK
    listed under every identifier asked (its application included)."""
    errors = [e for e in (identifier_error(i) for i in asked) if e is not None]
    if errors:
        return "400", "Bad request.", None, [], errors
    entries = registry.entries()
    exact = [e for e in entries if set(asked) <= set(e.identifiers)]
    if exact:
        return "200", "OK", registry.etk(exact[0]), [], []
    first = asked[0]
    others = [[i for i in e.identifiers if (i.type, i.value) == (first.type, first.value)] for e in entries]
    matching = [m for m in others if m]
    if matching:
        return "200", "Several ETKs match; give the ApplicationID of one.", None, matching, []
    return "404", "No ETK found.", None, [], [("NO_MATCHING_ETK", "No ETK matches the search criteria.")]


def make_handler(registry: EtkRegistry) -> Callable[[etree._Element, Call], etree._Element]:
    def handle(payload: etree._Element, call: Call) -> etree._Element:
        """Handles ``GetEtkRequest``."""
        criteria = payload.find(_q("SearchCriteria"))
        assert criteria is not None  # the schema requires it
        asked = [EtkIdentifier(_text(i, "Type"), _text(i, "Value"), _text(i, "ApplicationID"))
                 for i in criteria.findall(_q("Identifier"))]
        code, message, etk, matching, errors = get_etk(registry, asked)
        # Who was looked up is not a patient: the audit keeps the type and the outcome only.
        call.audit.detail = f"GetEtk {'+'.join(i.type for i in asked)}: {code}"
        answer = etree.Element(_q("GetEtkResponse"), nsmap={None: NS, "core": CORE})
        status = etree.SubElement(answer, f"{{{CORE}}}Status")
        etree.SubElement(status, "Code").text = code
        etree.SubElement(status, "Message", Lang="EN").text = message
        given = etree.SubElement(answer, _q("GivenSearchCriteria"))
        for ident in asked:
            _identifier(given, ident)
        if etk is not None:
            etree.SubElement(answer, _q("ETK")).text = base64.b64encode(etk).decode()
        for idents in matching:
            one = etree.SubElement(answer, _q("MatchingEtk"))
            for ident in idents:
                _identifier(one, ident)
        for error_code, text in errors:
            error = etree.SubElement(answer, _q("Error"))
            etree.SubElement(error, _q("Code")).text = error_code
            etree.SubElement(error, _q("Message")).text = text
        return answer

    return handle


def build(registry: EtkRegistry, deps: EndpointDeps) -> SoapEndpoint:
    return build_element_endpoint("etk-depot", make_handler(registry), "sandbox-etkdepot-v1.xsd",
                                  "sandbox-etkdepot-v1.wsdl", deps)
