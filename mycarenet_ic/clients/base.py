"""One signed SOAP client: offline WSDL, RSA-SHA256 + Timestamp, our verifier on every answer.

Upstream faults, timeouts, refused connections and answers that fail
verification become our errors (``UpstreamFault`` / ``UpstreamUnavailable``),
so callers never see zeep or requests.

A kept-alive connection is not taken again once it has been idle for ``MAX_IDLE_SECONDS``: a server
closes an idle connection when it chooses (the sandbox's front after 15 s, Apache's default after 5 s),
and a request sent on it at that moment is lost with a reset, an upstream error for a call that had
nothing wrong with it. Below the server's bound the race cannot happen; a fresh connection costs one
handshake.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import urllib3
import zeep
import zeep.exceptions
from lxml import etree
from zeep.transports import Transport

from mycarenet_ic import contract, ns
from mycarenet_ic.config import Settings
from mycarenet_ic.errors import MycarenetError, SecurityRejected, UpstreamFault, UpstreamUnavailable
from mycarenet_ic.security.parser import parse_untrusted
from mycarenet_ic.security.wssec import Signer, Verifier

MAX_IDLE_SECONDS = 4.0


class _FreshConnections:
    """A connection pool's behaviour: a connection back in the pool notes when; one taken out after more
    than ``max_idle`` seconds there is closed first (urllib3 then opens a new one for the request)."""

    max_idle: float = MAX_IDLE_SECONDS
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn.mcn_idle_since = self.clock()
        super()._put_conn(conn)  # type: ignore[misc]

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        since = getattr(conn, "mcn_idle_since", None)
        if since is not None and self.clock() - since > self.max_idle:
            conn.close()
        return conn


class _FreshHTTPPool(_FreshConnections, urllib3.HTTPConnectionPool):
    pass


class _FreshHTTPSPool(_FreshConnections, urllib3.HTTPSConnectionPool):
    pass


class FreshConnectionAdapter(requests.adapters.HTTPAdapter):
    """``HTTPAdapter`` whose pools never reuse a connection idle for longer than ``MAX_IDLE_SECONDS``."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _FreshHTTPPool, "https": _FreshHTTPSPool}


class _VerifyingSigner:
    """zeep ``wsse`` plugin: sign with our signer, verify with our strict verifier."""

    def __init__(self, signer: Signer, verifier: Verifier) -> None:
        self.signer = signer
        self.verifier = verifier

    def apply(self, envelope: etree._Element, headers: dict) -> tuple[etree._Element, dict]:
        return self.signer.sign(envelope), headers

    def verify(self, envelope: etree._Element) -> etree._Element:
        return self.verifier.verify(envelope).envelope


class SignedSoapClient:
    def __init__(self, wsdl_name: str, binding: str, address: str, signer: Signer, verifier: Verifier,
                 timeout: float = Settings.upstream_timeout_seconds, pool_size: int = 16,
                 ca_file: str | Path | None = None) -> None:
        session = requests.Session()
        # https: the server's certificate must chain to ``ca_file`` (the sandbox CA), else to the bundle
        # REQUESTS_CA_BUNDLE names, else to the system's CAs; never unchecked.
        session.verify = str(ca_file) if ca_file else os.environ.get("REQUESTS_CA_BUNDLE") or True
        adapter = FreshConnectionAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.trust_env = False  # loopback only: no proxy from the environment
        transport = Transport(session=session, timeout=timeout, operation_timeout=timeout)
        settings = zeep.Settings(strict=True, xml_huge_tree=False, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
        self._client = zeep.Client(str(contract.wsdl_path(wsdl_name)), transport=transport,
                                   wsse=_VerifyingSigner(signer, verifier), settings=settings)
        self._service = self._client.create_service(binding, address)
        self._lock = threading.Lock()
        self._session, self._timeout, self._verifier = session, timeout, verifier
        self._schema: etree.XMLSchema | None = None
        self._schema_name = contract.wsdl_path(wsdl_name).with_suffix(".xsd").name
        self.address = address
        self.signer = signer  # what signs every call (a certificate's, or a holder-of-key with its token)

    @staticmethod
    def header() -> dict[str, Any]:
        return {"Id": f"_{secrets.token_hex(16)}", "IssueInstant": dt.datetime.now(dt.UTC).replace(microsecond=0)}

    def call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._service, operation)(**self.header(), **kwargs)
        except zeep.exceptions.Fault as exc:
            raise UpstreamFault(reason=f"{self.address} {operation}: fault {exc.code}: {exc.message}") from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise UpstreamUnavailable(reason=f"{self.address} {operation}: {type(exc).__name__}") from None
        except SecurityRejected as exc:
            raise UpstreamFault(reason=f"{self.address} {operation}: answer rejected: {exc.reason}") from None
        except (zeep.exceptions.TransportError, zeep.exceptions.XMLSyntaxError,
                zeep.exceptions.ValidationError, zeep.exceptions.XMLParseError) as exc:
            raise UpstreamFault(reason=f"{self.address} {operation}: {type(exc).__name__}") from None

    def exchange(self, operation: str, body: etree._Element, action: str) -> etree._Element:
        """``body`` (the request element, as the contract spells it) posted in a signed envelope over the same
        session and contract as :meth:`call`; the answer's signature verified, its body element validated
        against the contract's schema and returned as an element: for the hot calls, where zeep's own
        serialising and parsing of both messages costs more than the exchange (py-spy: most of the National
        Register lookup of each declaration)."""
        env = etree.Element(f"{{{ns.SOAP11_ENV}}}Envelope", nsmap={"soap-env": ns.SOAP11_ENV})
        etree.SubElement(env, f"{{{ns.SOAP11_ENV}}}Header")
        etree.SubElement(env, f"{{{ns.SOAP11_ENV}}}Body").append(body)
        data = etree.tostring(self.signer.sign(env), encoding="utf-8", xml_declaration=True)
        try:
            response = self._session.post(self.address, data=data, timeout=self._timeout, headers={
                "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'})
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise UpstreamUnavailable(reason=f"{self.address} {operation}: {type(exc).__name__}") from None
        if response.status_code != 200 and not response.content:
            raise UpstreamFault(reason=f"{self.address} {operation}: TransportError") from None
        try:
            answer = self._verifier.verify(parse_untrusted(response.content)).envelope
        except SecurityRejected as exc:
            raise UpstreamFault(reason=f"{self.address} {operation}: answer rejected: {exc.reason}") from None
        except MycarenetError:  # not XML: zeep's TransportError, whatever the status
            raise UpstreamFault(reason=f"{self.address} {operation}: TransportError") from None
        found = answer.find(f"{{{ns.SOAP11_ENV}}}Body")
        content = next(iter(found), None) if found is not None else None
        if content is not None and content.tag == f"{{{ns.SOAP11_ENV}}}Fault":
            raise UpstreamFault(reason=f"{self.address} {operation}: fault {content.findtext('faultcode')}: "
                                       f"{content.findtext('faultstring')}") from None
        if response.status_code != 200 or content is None:
            raise UpstreamFault(reason=f"{self.address} {operation}: TransportError") from None
        if self._schema is None:
            self._schema = contract.schema(self._schema_name)
        if not self._schema.validate(etree.ElementTree(content)):
            raise UpstreamFault(reason=f"{self.address} {operation}: ValidationError") from None
        return content
