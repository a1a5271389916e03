"""Coding stub: the intermediary's second coding (seed 003 art. 1), standing for the eHealth coding service.

The insurers code their members' NISS first, each with its own key (``services/research.py``); this
service codes those values a second time with a key of its own, per research project, into meaningless
20-digit numbers. It knows neither the NISS (it is never sent one: the schema refuses anything that is
not insurer-coded) nor the insurers' keys, so it cannot link a code back to a person; an insurer, who
knows its members' first codes, never holds this key, so it cannot either. There is no decode.

The key lives in ``<data-dir>/secrets/coding-service.key``, read by this stub only (the export never
opens it). Only the platform, which plays the insurers in the sandbox, may ask: a care provider who could
code values here would have a second-coding oracle.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from spyne import ComplexModel, DateTime, ServiceBase, Unicode, XmlAttribute, XmlData, rpc

from mycarenet_ic import ns
from mycarenet_ic.config import secret_file
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.errors import AccessDenied
from mycarenet_ic.soap.endpoint import EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.service import build_endpoint, call_of, reply_attributes

NS = ns.SANDBOX_CODING
CODE_DIGITS = 20


class SecondCoder:
    """HMAC-SHA256 under a key derived per project from the service's own key, shown as 20 digits."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the coding service's key must be at least 32 bytes")
        self._key = key

    def code(self, project: str, value: str) -> str:
        project_key = hmac.new(self._key, f"project:{project}".encode(), hashlib.sha256).digest()
        digest = hmac.new(project_key, value.encode(), hashlib.sha256).digest()
        return f"{int.from_bytes(digest, 'big') % 10**CODE_DIGITS:0{CODE_DIGITS}d}"

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SecondCoder:
        return cls(secret_file(Path(data_dir) / "secrets" / "coding-service.key", lambda: secrets.token_bytes(32)))


class _Model(ComplexModel):
    __namespace__ = NS


class InputValue(_Model):
    __type_name__ = "InputValueType"
    _type_info = [("Id", XmlAttribute(Unicode)), ("value", XmlData(Unicode))]


class CodedValue(_Model):
    __type_name__ = "CodedValueType"
    _type_info = [("Id", XmlAttribute(Unicode)), ("value", XmlData(Unicode))]


class EncodeRequest(_Model):
    __type_name__ = "EncodeRequestType"
    _type_info = [("Id", XmlAttribute(Unicode)), ("IssueInstant", XmlAttribute(DateTime)),
                  ("ProjectName", Unicode), ("Value", InputValue.customize(max_occurs="unbounded"))]


class EncodeResponse(_Model):
    __type_name__ = "EncodeResponseType"
    _type_info = [("Id", XmlAttribute(Unicode)), ("InResponseTo", XmlAttribute(Unicode)),
                  ("IssueInstant", XmlAttribute(DateTime)), ("ProjectName", Unicode),
                  ("CodedValue", CodedValue.customize(max_occurs="unbounded"))]


def make_service(coder: SecondCoder) -> type[ServiceBase]:
    class Coding(ServiceBase):
        @rpc(EncodeRequest, _body_style="bare", _returns=EncodeResponse,
             _in_message_name="EncodeRequest", _out_message_name="EncodeResponse")
        def encode(ctx, request):  # noqa: N805
            """Handles ``EncodeRequest``: each value coded for the project, answered under its own Id."""
            call = call_of(ctx)
            if call.identity.quality is not Quality.PLATFORM:
                raise AccessDenied("Only the insurers (the platform, in the sandbox) may have values coded.",
                                   reason=f"coding asked by {call.identity.quality.value}")
            values = request.Value or []
            # No value in the audit: the journal of who coded what is the export's, without content.
            call.audit.detail = f"project={request.ProjectName} values={len(values)}"
            return EncodeResponse(
                **reply_attributes(request),
                ProjectName=request.ProjectName,
                CodedValue=[CodedValue(Id=v.Id, value=coder.code(request.ProjectName, v.value)) for v in values])

    return Coding


def build(data_dir: Path, deps: EndpointDeps) -> SoapEndpoint:
    return build_endpoint("coding", [make_service(SecondCoder.from_data_dir(data_dir))], NS,
                          "sandbox-coding-v1.xsd", "sandbox-coding-v1.wsdl", deps)
