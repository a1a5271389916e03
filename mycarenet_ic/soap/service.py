"""Building a signed, contract-validated SOAP endpoint from Spyne service classes."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from mycarenet_ic import contract, ns
from mycarenet_ic.services.requesters import Claim, Requester
from mycarenet_ic.soap.endpoint import Call, EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.protocol import SpyneDispatcher, application


def build_endpoint(
    name: str, services: list[Any], tns: str, xsd_name: str, wsdl_name: str, deps: EndpointDeps
) -> SoapEndpoint:
    """An endpoint whose operations are Spyne service methods (models mirroring the checked-in schema)."""
    return SoapEndpoint(name, SpyneDispatcher(application(services, tns, name)), contract.wsdl_path(wsdl_name),
                        contract.schema(xsd_name), deps)


@dataclass(frozen=True)
class ElementDispatcher:
    """Operations written against the XML itself (a SAML protocol message, say): ``handler`` gets the
    validated Body element and the call, and returns the answer's Body element."""

    handler: Callable[[etree._Element, Call], etree._Element]
    # The answer envelope's namespace prefixes (its children inherit them).
    prefixes: dict[str | None, str] = field(default_factory=lambda: {"soap": ns.SOAP11_ENV})

    def dispatch(self, payload: etree._Element, call: Call) -> etree._Element:
        envelope = etree.Element(f"{{{ns.SOAP11_ENV}}}Envelope", nsmap=self.prefixes)
        etree.SubElement(envelope, f"{{{ns.SOAP11_ENV}}}Body").append(self.handler(payload, call))
        return envelope


def build_element_endpoint(name: str, handler: Callable[[etree._Element, Call], etree._Element], xsd_name: str,
                           wsdl_name: str, deps: EndpointDeps, other_actions: Iterable[str] = (),
                           prefixes: dict[str | None, str] | None = None) -> SoapEndpoint:
    dispatcher = ElementDispatcher(handler) if prefixes is None else ElementDispatcher(handler, prefixes)
    return SoapEndpoint(name, dispatcher, contract.wsdl_path(wsdl_name), contract.schema(xsd_name), deps,
                        other_actions)


def requester(call: Call, claim: Claim) -> Requester:
    """The use cases' requester of a call: its verified identity, what the request claims, its audit name."""
    return Requester(call.identity, claim, call.caller, call.audit)


def call_of(ctx: Any) -> Call:
    """The call a service method serves (the endpoint hands it to Spyne as the method context's ``udc``)."""
    call: Call = ctx.udc
    return call


def reply_attributes(request: Any) -> dict[str, Any]:
    """``Id``/``InResponseTo``/``IssueInstant`` of an answer to ``request``."""
    return {
        "Id": f"_{secrets.token_hex(16)}",
        "InResponseTo": request.Id,
        "IssueInstant": dt.datetime.now(dt.UTC).replace(microsecond=0),
    }
