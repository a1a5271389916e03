"""Reading recorded exchanges: one line each, one in full (pretty-printed messages, the decoded business
blobs), its files, a diff of two. Shared by ``mycarenet-ic inspect`` and the browser view.

Everything here reads stored attacker bytes: XML goes through the hardened parser only (a message it
refuses is shown as text), and text meant for a terminal goes through ``printable`` at the caller.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import difflib
import io
import json
import zipfile
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.errors import MycarenetError
from mycarenet_ic.inspector import Exchange
from mycarenet_ic.security.parser import ParseLimits, parse_untrusted
from mycarenet_ic.soap.commons import MAX_BLOB, decode_blob

_SAML = (ns.SAML2_PROTOCOL, ns.SAML2_ASSERTION, ns.SAML11_PROTOCOL, ns.SAML11_ASSERTION)
_KMEHR = (ns.KMEHR, ns.MESSAGESERVICES_PROTOCOL)


@dataclass(frozen=True)
class Blob:
    """A commons ``Detail`` of a message, decoded (base64, then deflate as its ContentEncoding says).
    ``kind``: SAML, KMEHR, XML, or "undecodable" (``text`` then says why)."""

    message: str  # "request" or "answer"
    index: int
    content_type: str | None
    encoding: str
    kind: str
    text: str


def _parse(data: bytes, max_bytes: int) -> etree._Element | None:
    try:
        return parse_untrusted(data, ParseLimits(max_bytes=max(max_bytes, 1)))
    except Exception:  # noqa: BLE001 - what the hardened parser refuses is shown as text
        return None


def pretty_xml(data: bytes) -> str:
    """``data`` indented when it is XML the hardened parser takes, else as text (bad UTF-8 replaced)."""
    root = _parse(data, len(data))
    if root is None:
        return data.decode("utf-8", "replace")
    return etree.tostring(root, pretty_print=True, encoding="unicode")


def _decode(detail: etree._Element) -> tuple[str, str]:
    try:
        raw = base64.b64decode("".join((detail.text or "").split()), validate=True)
        data = decode_blob(SimpleNamespace(value=[raw], ContentEncoding=detail.get("ContentEncoding"),
                                           ContentEncryption=detail.get("ContentEncryption")))
    except binascii.Error:
        return "undecodable", "not base64"
    except MycarenetError as exc:
        return "undecodable", exc.text
    root = _parse(data, MAX_BLOB)
    if root is None:
        return "undecodable", "not XML the hardened parser takes:\n" + data.decode("utf-8", "replace")
    namespace = etree.QName(root).namespace
    # KMEHR: a kmehrmessage, or the messageservices transaction that carries KMEHR (Tarification's blobs).
    kind = "SAML" if namespace in _SAML else "KMEHR" if namespace in _KMEHR else "XML"
    return kind, etree.tostring(root, pretty_print=True, encoding="unicode")


def blobs(exchange: Exchange) -> list[Blob]:
    """Every commons ``Detail`` blob of the request and of the answer, decoded."""
    found: list[Blob] = []
    for message, data in (("request", exchange.request), ("answer", exchange.answer)):
        root = _parse(data, len(data))
        if root is None:
            continue
        details = [el for el in root.iter(etree.Element) if etree.QName(el).localname == "Detail"
                   and (etree.QName(el).namespace or "").startswith(ns.COMMONS_PROTOCOL_PREFIX)]
        for index, detail in enumerate(details):
            kind, text = _decode(detail)
            found.append(Blob(message, index, detail.get("ContentType"),
                              (detail.get("ContentEncoding") or "deflate").lower(), kind, text))
    return found


def summary(exchange: Exchange) -> dict[str, Any]:
    """The exchange's fields but its bodies, as JSON values."""
    return {"id": exchange.id, "at": exchange.at.isoformat(timespec="milliseconds"), "service": exchange.service,
            "operation": exchange.operation, "caller": exchange.caller, "outcome": exchange.outcome,
            "status": exchange.status, "duration_ms": round(exchange.duration_ms, 1), "code": exchange.code,
            "reason": exchange.reason, "request_id": exchange.request_id,
            "request_bytes": len(exchange.request), "answer_bytes": len(exchange.answer)}


def line(exchange: Exchange) -> str:
    """One line: id, time, outcome, status, service, operation, caller, duration, and the true reason."""
    reason = f" {exchange.code}: {exchange.reason}" if exchange.code else ""
    return (f"{exchange.id or '-':>6} {exchange.at.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z "
            f"{exchange.outcome:<6} {exchange.status} {exchange.service:<20} {exchange.operation:<36} "
            f"{exchange.caller:<28} {exchange.duration_ms:7.1f} ms{reason}")


def full_text(exchange: Exchange) -> str:
    """The exchange in full: its fields, the request and the answer pretty-printed, the decoded blobs."""
    head = [f"{key}: {value}" for key, value in summary(exchange).items() if value is not None]
    parts = ["\n".join(head), "--- request ---", pretty_xml(exchange.request) if exchange.request else
             "(not read: refused before its body)", "--- answer ---", pretty_xml(exchange.answer)]
    for blob in blobs(exchange):
        parts += [f"--- {blob.message} blob {blob.index} ({blob.kind}, {blob.encoding}) ---", blob.text]
    return "\n".join(part.rstrip("\n") for part in parts) + "\n"


def signature_verdict(exchange: Exchange) -> str:
    """What became of the request's signature: "refused" (the verifier said no: ``reason`` says why),
    "verified" (a caller was identified from it), "not checked" (refused before, or no signed caller)."""
    if exchange.code == "SECURITY_ERROR":
        return "refused"
    return "verified" if exchange.caller != "unknown" else "not checked"


def reason_text(exchange: Exchange) -> str:
    """The outcome, the signature's verdict and the true reason of a refusal, as a short text."""
    text = f"outcome: {exchange.outcome} ({exchange.status})\nsignature: {signature_verdict(exchange)}\n"
    if exchange.code:
        text += f"code: {exchange.code}\nreason: {exchange.reason or ''}\n"
    return text


def files(exchange: Exchange) -> dict[str, bytes]:
    """The exchange as files: the request and answer exactly as sent, the decoded blobs, the fields, the
    outcome with the true reason."""
    out = {"exchange.json": (json.dumps(summary(exchange), indent=1) + "\n").encode(),
           "request.xml": exchange.request, "answer.xml": exchange.answer,
           "reason.txt": reason_text(exchange).encode()}
    for blob in blobs(exchange):
        out[f"{blob.message}-blob-{blob.index}.{'xml' if blob.kind != 'undecodable' else 'txt'}"] = blob.text.encode()
    return out


def diff(a: Exchange, b: Exchange) -> str:
    """A unified diff of two exchanges in full (fields, pretty-printed messages, blobs); empty when alike
    but for their ids, times and durations."""
    def text(e: Exchange) -> list[str]:
        return full_text(replace(e, id=0, at=dt.datetime(1970, 1, 1, tzinfo=dt.UTC), duration_ms=0.0)).splitlines()
    return "\n".join(difflib.unified_diff(text(a), text(b), f"exchange {a.id}", f"exchange {b.id}", lineterm=""))


def archive(exchange: Exchange) -> bytes:
    """:func:`files` in one zip (what the browser view downloads), each under ``exchange-<id>/``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in files(exchange).items():
            out.writestr(f"exchange-{exchange.id}/{name}", data)
    return buf.getvalue()


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_time(raw: str, now: dt.datetime | None = None) -> dt.datetime:
    """A time as a filter takes it: ISO 8601 (a date, or a date and time, UTC unless it says), or an age
    before ``now``: 90s, 10m, 2h, 1d. ValueError says what it takes."""
    raw = raw.strip()
    try:
        if raw[-1:] in _UNITS and raw[:-1].isdigit():
            return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=int(raw[:-1]) * _UNITS[raw[-1]])
        moment = dt.datetime.fromisoformat(raw)
    except (ValueError, OverflowError):
        raise ValueError(f"not a time (ISO 8601) or an age (90s, 10m, 2h, 1d): {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
