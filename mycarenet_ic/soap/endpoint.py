"""The request path, one step each, as a WSGI application around a Spyne service.

1 size cap → 2 hardened parse → 3 WS-Security verify (incl. replay) → 4 XSD
validation (in ``ContractSoap11``) → 5 caller identity from the certificate →
6 dispatch (Spyne) → 7 audit row → 8 signed answer. ``GET ?wsdl`` serves the
checked-in WSDL with the configured address; ``GET ?xsd=<file>`` its schemas.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from spyne.server.wsgi import WsgiApplication

from mycarenet_ic import contract, ns
from mycarenet_ic.errors import (
    AccessDenied,
    ConcealedNotFound,
    HeaderNotUnderstood,
    MalformedRequest,
    MycarenetError,
    RequestTooLarge,
    SecurityRejected,
    SoapActionMismatch,
    StorageUnavailable,
    UnknownOperation,
)
from mycarenet_ic.persistence.audit import AuditEntry, SqlAuditLog
from mycarenet_ic.security.parser import ParseLimits, parse_untrusted
from mycarenet_ic.security.pki import identity_from_certificate
from mycarenet_ic.security.wssec import Signer, Verifier
from mycarenet_ic.soap import faults
from mycarenet_ic.soap.protocol import ENV_AUDIT, ENV_CALLER, ENV_ERROR, ENV_VERIFIED

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
_XSD_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.xsd$")
_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
_SOAP_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
_XS = "http://www.w3.org/2001/XMLSchema"
_NEXT_ACTOR = "http://schemas.xmlsoap.org/soap/actor/next"
_UNDERSTOOD = frozenset({f"{{{ns.WSSE}}}Security"})
_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([^\";\s]+)", re.IGNORECASE)


@dataclass
class EndpointDeps:
    verifier: Verifier
    signer: Signer
    audit: SqlAuditLog
    environment: str
    max_body_bytes: int
    # Held while a request is processed (after its body is read): bounds the requests in work at once.
    gate: AbstractContextManager[Any] = field(default_factory=nullcontext)


def render_wsdl(wsdl_file: Path, address: str) -> bytes:
    """The checked-in WSDL with ``soap:address`` (and schema locations) pointing at ``address``."""
    tree = etree.parse(str(wsdl_file), parser=etree.XMLParser(no_network=True, resolve_entities=False))
    for addr in tree.iter(f"{{{_SOAP_BINDING_NS}}}address"):
        addr.set("location", address)
    for imp in tree.iter(f"{{{_XS}}}import", f"{{{_XS}}}include"):
        loc = imp.get("schemaLocation")
        if loc:
            imp.set("schemaLocation", f"{address}?xsd={Path(loc).name}")
    return etree.tostring(tree, encoding="UTF-8", xml_declaration=True)


def render_xsd(name: str, address: str) -> bytes | None:
    if not _XSD_NAME.match(name) or not (contract.XSD_DIR / name).is_file():
        return None
    tree = etree.parse(str(contract.XSD_DIR / name), parser=etree.XMLParser(no_network=True, resolve_entities=False))
    for imp in tree.iter(f"{{{_XS}}}import", f"{{{_XS}}}include"):
        loc = imp.get("schemaLocation")
        if loc:
            imp.set("schemaLocation", f"{address}?xsd={Path(loc).name}")
    return etree.tostring(tree, encoding="UTF-8", xml_declaration=True)


def soap_actions(wsdl_file: Path) -> dict[str, str]:
    """``{input element (Clark name): soapAction}`` for every operation of the WSDL's bindings."""
    tree = etree.parse(str(wsdl_file), parser=etree.XMLParser(no_network=True, resolve_entities=False))
    w = f"{{{_WSDL_NS}}}"

    def qname(el: etree._Element, attr: str) -> str:
        prefix, _, local = (el.get(attr) or "").rpartition(":")
        return f"{{{el.nsmap.get(prefix or None, '')}}}{local}"

    elements = {m.get("name"): qname(part, "element")
                for m in tree.iter(f"{w}message") for part in m.iter(f"{w}part") if part.get("element")}
    inputs = {op.get("name"): etree.QName(qname(op.find(f"{w}input"), "message")).localname
              for port in tree.iter(f"{w}portType") for op in port.iter(f"{w}operation")
              if op.find(f"{w}input") is not None}
    actions: dict[str, str] = {}
    for binding in tree.iter(f"{w}binding"):
        for op in binding.iter(f"{w}operation"):
            soap_op = op.find(f"{{{_SOAP_BINDING_NS}}}operation")
            message = inputs.get(op.get("name"))
            if soap_op is not None and message in elements:
                actions[elements[message]] = soap_op.get("soapAction", "")
    return actions


def check_headers_understood(envelope: etree._Element, understood: frozenset[str]) -> None:
    """SOAP 1.1 §4.2.3: a header block for this node (no actor, or actor "next") with mustUnderstand="1"
    that this service does not process makes the whole message fail with a MustUnderstand fault."""
    header = envelope.find(f"{{{ns.SOAP11_ENV}}}Header")
    if header is None:
        return
    for block in header:
        if not isinstance(block.tag, str):
            continue
        must = (block.get(f"{{{ns.SOAP11_ENV}}}mustUnderstand") or "0").strip()
        actor = block.get(f"{{{ns.SOAP11_ENV}}}actor")
        if must in ("1", "true") and actor in (None, "", _NEXT_ACTOR) and block.tag not in understood:
            raise HeaderNotUnderstood(reason=f"header not understood: {etree.QName(block).localname}")


def _outcome(error: MycarenetError | None) -> str:
    if error is None:
        return "OK"
    if isinstance(error, SecurityRejected | AccessDenied | RequestTooLarge | MalformedRequest | ConcealedNotFound):
        return "DENIED"
    return "ERROR"


class SoapEndpoint:
    """One SOAP service on one address."""

    def __init__(self, name: str, spyne_app: Any, wsdl_file: Path, deps: EndpointDeps) -> None:
        self.name = name
        self.deps = deps
        self.wsdl_file = wsdl_file
        self.address = ""
        self.spyne_app = spyne_app
        self._spyne = WsgiApplication(spyne_app)
        self._wsdl_cache: dict[str, bytes] = {}
        self._limits = ParseLimits(max_bytes=deps.max_body_bytes)
        self._actions = soap_actions(wsdl_file)

    # -- WSGI ---------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "GET":
            return self._get(environ, start_response)
        if method != "POST":
            start_response("405 Method Not Allowed", [("Allow", "GET, POST"), ("Content-Type", "text/plain")])
            return [b"POST a SOAP 1.1 message, or GET ?wsdl\n"]
        return self._post(environ, start_response)

    def _get(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING", "")
        address = self.address or self._own_url(environ)
        body: bytes | None = None
        if query.lower() == "wsdl":
            body = self._wsdl_cache.get(address)
            if body is None:
                body = self._wsdl_cache.setdefault(address, render_wsdl(self.wsdl_file, address))
        elif query.startswith("xsd="):
            body = render_xsd(query[4:], address)
        if body is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try ?wsdl\n"]
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _own_url(environ: dict[str, Any]) -> str:
        # Only used when no address was configured (tests mounting the app directly).
        return f"http://{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '80')}" + environ.get(
            "PATH_INFO", "/"
        )

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise MalformedRequest(reason="bad Content-Length") from None
        if length > self.deps.max_body_bytes:
            raise RequestTooLarge(reason=f"Content-Length {length}")
        if length < 0:
            raise MalformedRequest(reason="negative Content-Length")
        stream = environ["wsgi.input"]
        try:
            data = stream.read(length) if length else stream.read(self.deps.max_body_bytes + 1)
        except (OSError, ValueError) as exc:  # the client stopped sending (timeout, reset): its fault
            raise MalformedRequest("The request body ended before its announced length.",
                                   reason=f"body not received: {type(exc).__name__}") from None
        if len(data) > self.deps.max_body_bytes:
            raise RequestTooLarge(reason="body over the cap")
        if length and len(data) < length:
            raise MalformedRequest("The request body ended before its announced length.",
                                   reason=f"body {len(data)} of {length} bytes")
        return data

    def _post(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        entry = AuditEntry(service=self.name, operation=environ.get("HTTP_SOAPACTION", "").strip('"')[:128] or "?")
        try:
            content_type = environ.get("CONTENT_TYPE", "")
            if not content_type.lower().startswith("text/xml"):
                raise MalformedRequest("SOAP 1.1 requests must be sent as text/xml.")
            charset = _CHARSET.search(content_type)
            if charset is not None and charset.group(1).lower() not in ("utf-8", "utf8"):
                raise MalformedRequest("Only UTF-8 requests are accepted.", reason=f"charset {charset.group(1)[:32]}")
            data = self._read_body(environ)
        except Exception as exc:  # noqa: BLE001 - every failure gets a clean, signed fault
            return self._refuse(exc, entry, start_response)
        # Reading the body waits on the client; what follows is this process's own work.
        with self.deps.gate:
            return self._process(data, entry, environ, start_response)

    def _check_action(self, environ: dict[str, Any], body_element: str) -> None:
        """The body must be an operation's input (else: WSDL compliance failure), and a SOAPAction, when
        the client sends a non-empty one, must be that operation's."""
        if body_element not in self._actions:
            raise UnknownOperation(reason=f"no operation takes {etree.QName(body_element).localname}")
        sent = environ.get("HTTP_SOAPACTION", "").strip().strip('"').strip()
        expected = self._actions[body_element]
        if sent and sent != expected:
            raise SoapActionMismatch(reason=f"SOAPAction is not {etree.QName(body_element).localname}'s")

    def _refuse(self, exc: Exception, entry: AuditEntry, start_response: StartResponse) -> Iterable[bytes]:
        error = faults.as_mycarenet_error(exc)
        entry.outcome, entry.detail = _outcome(error), f"{error.code}: {error.reason}"
        return self._answer_error(error, entry, start_response)

    def _process(self, data: bytes, entry: AuditEntry, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        try:
            root = parse_untrusted(data, self._limits)
            check_headers_understood(root, _UNDERSTOOD)
            verified = self.deps.verifier.verify(root)
            try:
                caller = identity_from_certificate(verified.certificate)
            except ValueError:
                raise SecurityRejected("certificate names no known holder") from None
            entry.caller = self.deps.audit.caller_label(caller)
            payload = verified.body[0] if len(verified.body) else None
            if payload is not None and isinstance(payload.tag, str):
                entry.operation = etree.QName(payload).localname
                entry.request_id = payload.get("Id")
                self._check_action(environ, payload.tag)
        except Exception as exc:  # noqa: BLE001 - every failure gets a clean, signed fault
            return self._refuse(exc, entry, start_response)

        environ[ENV_VERIFIED] = verified
        environ[ENV_CALLER] = caller
        environ[ENV_AUDIT] = entry
        environ["wsgi.input"] = io.BytesIO(data)
        status_headers: list[Any] = []

        def _capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            status_headers[:] = [status, headers]

        chunks = self._spyne(environ, _capture)
        body = b"".join(chunks)
        failed: MycarenetError | None = environ.get(ENV_ERROR)
        if entry.outcome == "OK" and failed is not None:
            entry.outcome = _outcome(failed)
        if failed is not None and not entry.detail:
            entry.detail = f"{failed.code}: {failed.reason}"
        try:
            self.deps.audit.append(entry)
        except Exception:  # noqa: BLE001 - an answer we cannot audit is not given
            log.exception("audit write failed")
            return self._answer_error(StorageUnavailable(), None, start_response)
        status, headers = status_headers
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    def _answer_error(
        self, error: MycarenetError, entry: AuditEntry | None, start_response: StartResponse
    ) -> Iterable[bytes]:
        if entry is not None:
            try:
                self.deps.audit.append(entry)
            except Exception:  # noqa: BLE001
                log.exception("audit write failed for a rejected request")
        envelope = faults.fault_envelope(error, self.deps.environment)
        self.deps.signer.sign(envelope)
        body = etree.tostring(envelope, encoding="UTF-8", xml_declaration=True)
        start_response(
            faults.http_status(error),
            [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]
