"""Building a signed, contract-validated SOAP endpoint from Spyne service classes."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from mycarenet_ic import contract
from mycarenet_ic.soap.endpoint import Call, EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.protocol import application


def build_endpoint(
    name: str, services: list[Any], tns: str, xsd_name: str, wsdl_name: str, deps: EndpointDeps
) -> SoapEndpoint:
    return SoapEndpoint(name, application(services, tns, name), contract.wsdl_path(wsdl_name),
                        contract.schema(xsd_name), deps)


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
