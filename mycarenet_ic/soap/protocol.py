"""Spyne glue: a Soap11 that trusts only the pipeline, validates against ``xsd/`` and signs answers.

Spyne only (de)serialises here. The envelope it sees was parsed by the hardened
parser and verified by the WS-Security verifier before Spyne runs; the body is
validated against the checked-in schema (Spyne's generated one loses facets);
errors keep their identity through Spyne (``CarriedFault``) so that
``faults.py`` stays the only mapping; the answer is signed just before it is
serialised, and never re-formatted after.
"""

from __future__ import annotations

import logging
import math

import spyne.const as spyne_const
from lxml import etree
from spyne import Application
from spyne.model.fault import Fault
from spyne.protocol.soap import Soap11

from mycarenet_ic.errors import (
    InternalError,
    MalformedRequest,
    MycarenetError,
    SchemaViolation,
    UnknownOperation,
)
from mycarenet_ic.security.wssec import Signer
from mycarenet_ic.soap import faults
from mycarenet_ic.soap.references import substitute_references

# Spyne runs a full gc.collect() at most once a second after a request, holding the GIL for the
# whole heap (15 % of the service's CPU under load, and a stall for every thread). Our requests hold
# no file descriptors for Spyne to reclaim; Python's own generational collector keeps running.
spyne_const.MIN_GC_INTERVAL = math.inf

# Spyne logs every fault with its traceback; ours are answers, and faults.py logs the unexpected ones.
logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL)
logging.getLogger("spyne.application.server").setLevel(logging.CRITICAL)

ENV_VERIFIED = "mycarenet.verified"
ENV_CALLER = "mycarenet.caller"
ENV_AUDIT = "mycarenet.audit"
ENV_ERROR = "mycarenet.error"


class CarriedFault(Fault):
    """Carries one of our errors through Spyne's machinery unchanged."""

    def __init__(self, error: MycarenetError) -> None:
        super().__init__(faultcode="Client" if error.is_client_error else "Server", faultstring=error.text)
        self.error = error


def _unwrap(error: BaseException) -> MycarenetError:
    if isinstance(error, CarriedFault):
        return error.error
    if isinstance(error, MycarenetError):
        return error
    if isinstance(error, Fault):
        code = str(error.faultcode or "")
        if "ResourceNotFound" in code or "MethodNotFound" in code:
            return UnknownOperation(reason=str(error.faultstring))
        if code.startswith("Client"):
            return MalformedRequest(reason=str(error.faultstring))
    return faults.as_mycarenet_error(error if isinstance(error, Exception) else InternalError())


class ContractApplication(Application):
    """Keeps our exceptions intact and never lets another one describe itself to a client."""

    def call_wrapper(self, ctx):
        try:
            return super().call_wrapper(ctx)
        except CarriedFault:
            raise
        except MycarenetError as exc:
            raise CarriedFault(exc) from exc
        except Fault:
            raise
        except Exception as exc:  # noqa: BLE001 - anything else becomes a generic SystemError
            raise CarriedFault(faults.as_mycarenet_error(exc)) from exc


class ContractSoap11(Soap11):
    def __init__(self, contract_schema: etree.XMLSchema, signer: Signer, environment: str) -> None:
        super().__init__(validator=None, cleanup_namespaces=True)
        self.contract_schema = contract_schema
        self.signer = signer
        self.environment = environment

    def create_in_document(self, ctx, charset=None):
        verified = ctx.transport.req_env.get(ENV_VERIFIED)
        if verified is None:  # only reachable if someone mounts Spyne without the pipeline
            raise CarriedFault(InternalError(reason="spyne reached without the security pipeline"))
        ctx.in_document = (verified.envelope, None)

    def validate_body(self, ctx, message):
        body = ctx.in_body_doc
        if body is None:
            raise CarriedFault(SchemaViolation(reason="empty Body"))
        try:
            substitute_references(body)
        except MycarenetError as exc:
            raise CarriedFault(exc) from None
        if not self.contract_schema.validate(body):
            last = self.contract_schema.error_log.last_error
            raise CarriedFault(SchemaViolation.from_validator(
                "The request does not follow the service's XML schema", last))

    def serialize(self, ctx, message):
        if ctx.out_error is None:
            try:
                super().serialize(ctx, message)
                return
            except Exception as exc:  # noqa: BLE001 - an answer we cannot build is a SystemError
                ctx.out_error = CarriedFault(faults.as_mycarenet_error(exc))
        error = _unwrap(ctx.out_error)
        ctx.transport.req_env[ENV_ERROR] = error
        ctx.transport.resp_code = faults.http_status(error)
        ctx.out_document = faults.fault_envelope(error, self.environment)

    def create_out_string(self, ctx, charset=None):
        self.signer.sign(ctx.out_document)
        ctx.out_string = [etree.tostring(ctx.out_document, encoding="UTF-8", xml_declaration=True)]

    def fault_to_http_response_code(self, fault):
        return faults.http_status(fault)
