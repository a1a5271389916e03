"""Building a signed, contract-validated SOAP endpoint from Spyne service classes."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from mycarenet_ic import contract
from mycarenet_ic.domain.qualities import CallerIdentity
from mycarenet_ic.persistence.audit import AuditEntry
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.protocol import ENV_AUDIT, ENV_CALLER, ContractApplication, ContractSoap11


def build_endpoint(
    name: str, services: list[Any], tns: str, xsd_name: str, wsdl_name: str, deps: EndpointDeps
) -> SoapEndpoint:
    schema = contract.schema(xsd_name)
    app = ContractApplication(
        services,
        tns=tns,
        name=name,
        in_protocol=ContractSoap11(schema, deps.signer, deps.environment),
        out_protocol=ContractSoap11(schema, deps.signer, deps.environment),
    )
    return SoapEndpoint(name, app, contract.wsdl_path(wsdl_name), deps)


@dataclass(frozen=True)
class Call:
    """What a service method may know of the call: who, and the audit row it fills in."""

    caller: CallerIdentity
    audit: AuditEntry


def call_of(ctx: Any) -> Call:
    env = ctx.transport.req_env
    return Call(env[ENV_CALLER], env[ENV_AUDIT])


def reply_attributes(request: Any) -> dict[str, Any]:
    """``Id``/``InResponseTo``/``IssueInstant`` of an answer to ``request``."""
    return {
        "Id": f"_{secrets.token_hex(16)}",
        "InResponseTo": request.Id,
        "IssueInstant": dt.datetime.now(dt.UTC).replace(microsecond=0),
    }
