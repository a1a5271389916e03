"""The one mapping from exceptions to SOAP 1.1 faults with eHealth error details.

``ClientError`` → ``soap:Client`` + ``soa:BusinessError``; ``ServerError`` →
``soap:Server`` + ``soa:SystemError``; anything else is logged and answered as
a generic ``SystemError`` so no internals (trace, SQL, path) leave the process.

The detail follows the eHealth errors schema: ``Origin`` (Consumer | Provider), ``Code`` (the SOA
catalogue's code where it has one, else the service's own), ``Message xml:lang="en"`` (our text, and
our own code in brackets after a catalogue code), ``Retry``, and ``soa:Environment`` (qualified).
"""

from __future__ import annotations

import logging
import secrets

from lxml import etree
from sqlalchemy.exc import DBAPIError

from mycarenet_ic import ns
from mycarenet_ic.errors import InternalError, MycarenetError, StorageUnavailable

log = logging.getLogger(__name__)


def as_mycarenet_error(error: BaseException) -> MycarenetError:
    if isinstance(error, MycarenetError):
        return error
    if isinstance(error, DBAPIError | TimeoutError):
        # The database refused or failed: nothing was committed, so the client may simply retry.
        log.error("storage failure", exc_info=error)
        return StorageUnavailable(reason=f"{type(error).__name__}")
    log.error("unexpected error", exc_info=error)
    return InternalError()


def fault_envelope(error: BaseException, environment: str) -> etree._Element:
    """Build an unsigned SOAP 1.1 fault envelope for ``error``."""
    err = as_mycarenet_error(error)
    env = etree.Element(f"{{{ns.SOAP11_ENV}}}Envelope", nsmap={"soap": ns.SOAP11_ENV})
    etree.SubElement(env, f"{{{ns.SOAP11_ENV}}}Header")
    body = etree.SubElement(env, f"{{{ns.SOAP11_ENV}}}Body")
    fault = etree.SubElement(body, f"{{{ns.SOAP11_ENV}}}Fault")
    side = "soap:Client" if err.is_client_error else "soap:Server"
    etree.SubElement(fault, "faultcode").text = err.faultcode or side
    etree.SubElement(fault, "faultstring").text = err.text
    detail = etree.SubElement(fault, "detail")
    kind = "BusinessError" if err.is_client_error else "SystemError"
    error_el = etree.SubElement(detail, f"{{{ns.EHEALTH_ERRORS_SOA}}}{kind}", nsmap={"soa": ns.EHEALTH_ERRORS_SOA})
    error_el.set("Id", f"err-{secrets.token_hex(8)}")
    etree.SubElement(error_el, "Origin").text = err.origin
    etree.SubElement(error_el, "Code").text = err.soa_code or err.code
    message = etree.SubElement(error_el, "Message")
    message.set(f"{{{ns.XML}}}lang", "en")
    message.text = describe(err)
    etree.SubElement(error_el, "Retry").text = "true" if err.retry else "false"
    etree.SubElement(error_el, f"{{{ns.EHEALTH_ERRORS_SOA}}}Environment").text = environment
    return env


def describe(err: MycarenetError) -> str:
    """The fault's Message: our text, and where the Code is the catalogue's, our own code in brackets."""
    return f"{err.text} [{err.code}]" if err.soa_code else err.text


def descriptive_code(code: str, message: str) -> str:
    """For clients: our own code of a fault, from its Code and Message (see :func:`describe`)."""
    if code.startswith("SOA-") and message.endswith("]") and " [" in message:
        return message.rpartition(" [")[2][:-1]
    return code


def http_status(error: BaseException) -> str:
    # SOAP 1.1 over HTTP answers every fault with 500.
    del error
    return "500 Internal Server Error"
