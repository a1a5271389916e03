"""Spyne, driven explicitly: it only turns a verified, validated Body into a method call and the method's
answer back into a SOAP envelope.

The endpoint (``soap/endpoint.py``) owns the request: it parses, verifies, validates, and then hands
:meth:`SpyneDispatcher.dispatch` the Body's one element and the :class:`~mycarenet_ic.soap.service.Call`
the service method reads (``ctx.udc``). Spyne never sees the raw bytes, the headers or the WSGI environ;
an error raised by a method comes back out of :meth:`dispatch` as the same exception, so that
``faults.py`` stays the only mapping and the endpoint the only place that signs and audits.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import spyne.const as spyne_const
from lxml import etree
from spyne import Application, MethodContext
from spyne.model.fault import Fault
from spyne.protocol import ProtocolBase
from spyne.protocol.soap import Soap11
from spyne.server import ServerBase

from mycarenet_ic import ns
from mycarenet_ic.errors import MalformedRequest, MycarenetError, UnknownOperation
from mycarenet_ic.soap import faults

# Spyne runs a full gc.collect() at most once a second after a request, holding the GIL for the
# whole heap (15 % of the service's CPU under load, and a stall for every thread). Our requests hold
# no file descriptors for Spyne to reclaim; Python's own generational collector keeps running.
spyne_const.MIN_GC_INTERVAL = math.inf

# Spyne logs every fault with its traceback; ours are answers, and faults.py logs the unexpected ones.
logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL)
logging.getLogger("spyne.application.server").setLevel(logging.CRITICAL)


class CarriedFault(Fault):
    """Carries one of our errors (or any other exception) through Spyne's machinery unchanged."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(faultcode="Server", faultstring="carried")
        self.error = error


def _unwrap(error: BaseException) -> BaseException:
    """The exception a method raised, or ours for what Spyne itself refused."""
    if isinstance(error, CarriedFault):
        return error.error
    if isinstance(error, MycarenetError) or not isinstance(error, Fault):
        return error
    code, text = str(getattr(error, "faultcode", "") or ""), str(getattr(error, "faultstring", ""))
    if "ResourceNotFound" in code or "MethodNotFound" in code:
        return UnknownOperation(reason=text)
    if code.startswith("Client"):
        return MalformedRequest(reason=text)
    return faults.as_mycarenet_error(error)


class ContractApplication(Application):
    """Lets every exception of a service method out of Spyne as itself (inside a :class:`CarriedFault`)."""

    def call_wrapper(self, ctx: Any) -> Any:
        try:
            return super().call_wrapper(ctx)
        except Exception as exc:  # noqa: BLE001 - carried out unchanged; faults.py decides what it says
            raise CarriedFault(exc) from exc


class ContractSoap11(Soap11):
    """Spyne's SOAP 1.1 (de)serialiser; validation, signing and faults are the endpoint's."""

    def __init__(self) -> None:
        super().__init__(validator=None, cleanup_namespaces=True)


def application(services: list[Any], tns: str, name: str) -> ContractApplication:
    return ContractApplication(services, tns=tns, name=name, in_protocol=ContractSoap11(),
                               out_protocol=ContractSoap11())


class _HttpServer(ServerBase):
    """Spyne's methods take a "server" for their context; the endpoint is the real one (SOAP over HTTP)."""

    transport = ns.SOAP_HTTP_TRANSPORT


class SpyneDispatcher:
    """Calls the service method for one Body element and returns the answer envelope (unsigned)."""

    def __init__(self, app: ContractApplication) -> None:
        self.app = app
        self._server = _HttpServer(app)

    def dispatch(self, payload: etree._Element, call: Any) -> etree._Element:
        ctx = MethodContext(self._server, MethodContext.SERVER)
        ctx.udc = call
        ctx.in_document = ctx.in_body_doc = payload
        ctx.in_header_doc = None
        ctx.method_request_string = payload.tag
        try:
            ctx, *_ = self.app.in_protocol.generate_method_contexts(ctx)
            self.app.in_protocol.deserialize(ctx, message=ProtocolBase.REQUEST)
        except Fault as exc:
            raise _unwrap(exc) from None
        self.app.process_request(ctx)
        if ctx.out_error is not None:
            raise _unwrap(ctx.out_error)
        self.app.out_protocol.serialize(ctx, message=ProtocolBase.RESPONSE)
        document: etree._Element = ctx.out_document
        return document
