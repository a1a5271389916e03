"""STS stub: the eHealth SAML 1.1 Token Service's request and answer, certifying from the scenario's CoBrHa.

The request (``samlp:Request`` / ``AttributeQuery``) arrives WS-Security signed with the caller's identity
certificate (the endpoint checked that signature, its chain and its freshness). Here:

- the ``NameIdentifier`` (X509SubjectName) must name that identity certificate: its subject DN as text, its
  issuer DN as ``NameQualifier`` (compared as parsed names: RFC 1779/2253/4514 spellings, quoted or escaped
  values, either RDN order);
- the holder-of-key certificate of the ``SubjectConfirmation`` must be issued by the sandbox CA (dates, an RSA
  key of 2048 bits or more) and name the same holder (the NISS, or the organisation's type and NIHII), or be
  the identity certificate itself; when it is another certificate the ``samlp:Request`` must carry, as first
  child, the one enveloped signature over ``#RequestID`` made with its key (proof of possession);
- every identification attribute asserted (in the caller's unsigned assertion in ``SubjectConfirmationData``)
  must be the certificate's (its NISS, its organisation's NIHII, the platform's CBE), every designator asked
  a known one.

What cannot be processed is refused as SAML 1.1 does: a ``samlp:Response`` with ``samlp:Requester`` /
``samlp:RequestDenied`` and a ``StatusMessage``, no assertion (SOAP faults are left to what the SOAP layer
refuses). A known designator the scenario does not bear out is answered as production does: ``"false"`` and an
empty NIHII (a person CoBrHa does not know, a VISA that is not valid today, a closed organisation).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from lxml import etree

from mycarenet_ic import ns
from mycarenet_ic.config import Settings
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.errors import SecurityRejected
from mycarenet_ic.security.pki import KeyPair, identity_from_certificate
from mycarenet_ic.security.saml11 import (
    CERTIFIED_NAMESPACE,
    HOLDER_OF_KEY,
    IDENTIFICATION_NAMESPACE,
    SAML,
    SAMLP,
    X509_SUBJECT_NAME,
    AssertionRejected,
    NameIdentifier,
    SamlAttribute,
    build_assertion,
    check_enveloped_signed_info,
    check_id_unique,
    verify_enveloped_signature,
)
from mycarenet_ic.security.sts_attributes import ROLES, TokenRole, nihii11
from mycarenet_ic.security.wssec import TrustStore, _fmt, _parse_time, _utc_now
from mycarenet_ic.soap.endpoint import Call, EndpointDeps, SoapEndpoint
from mycarenet_ic.soap.service import build_element_endpoint

from .scenario import PROFESSIONS, Scenario, iso_date

REQUEST_ID = "RequestID"
_SAML, _SAMLP, _DS = f"{{{SAML}}}", f"{{{SAMLP}}}", f"{{{ns.DS}}}"

# Which role a designator belongs to: identification names (asserted) and certified names (boolean, nihii11).
_ASSERTED: dict[str, TokenRole] = {name: r for r in ROLES.values() for name in r.asserted}
_CERTIFIED: dict[str, TokenRole] = {name: r for r in ROLES.values() for name in (r.boolean, r.nihii11) if name}


class Denied(Exception):
    """A request the STS cannot process: answered ``samlp:Requester`` / ``samlp:RequestDenied``."""


@dataclass(frozen=True)
class Holder:
    """Whom a certificate names, as the STS compares them: a person by NISS, an organisation by its type and
    NIHII (8 digits), the platform by its CBE."""

    kind: Quality | None  # None: a person; else the organisation's quality (the platform's included)
    number: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> Holder:
        try:
            identity = identity_from_certificate(cert)
        except ValueError:
            raise Denied("the certificate names no known holder") from None
        if identity.quality is Quality.PLATFORM:
            cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            value = str(cn[0].value) if cn else ""
            return cls(Quality.PLATFORM, value.partition("=")[2])
        if identity.quality.is_organisation:
            return cls(identity.quality, identity.nihii or "")
        return cls(None, identity.ssin or "")

    def value_for(self, role: TokenRole) -> str | None:
        """The value of ``role``'s identification attributes for this holder; None when it holds none."""
        if role.is_organisation:
            return self.number if self.kind is role.quality else None
        return self.number if self.kind is None else None


# -- distinguished names ------------------------------------------------------------------------------------
_ALIASES = {"S": "ST", "SERIALNUMBER": "2.5.4.5", "E": "1.2.840.113549.1.9.1", "EMAILADDRESS": "1.2.840.113549.1.9.1",
            "EMAIL": "1.2.840.113549.1.9.1", "SN": "2.5.4.4", "SURNAME": "2.5.4.4", "GIVENNAME": "2.5.4.42"}


def parse_dn(text: str) -> list[tuple[str, str]]:
    """A DN string as (attribute type, value) pairs in written order (``,``, ``;`` or ``+`` between;
    quoted values, backslash escapes and ``\\XX`` hex pairs undone). Raises ValueError when not a DN."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            raise ValueError("attribute without a value")
        kind = text[i:eq].strip().upper().removeprefix("OID.")
        if not kind:
            raise ValueError("value without an attribute type")
        i = eq + 1
        while i < n and text[i] == " ":
            i += 1
        raw = bytearray()
        if i < n and text[i] == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 1 if text[i] == "\\" and i + 1 < n else 0
                raw += text[i].encode()
                i += 1
            if i >= n:
                raise ValueError("unterminated quoted value")
            value = raw.decode()
            i += 1
            while i < n and text[i] == " ":
                i += 1
        else:
            while i < n and text[i] not in ",;+":
                if text[i] == "\\" and i + 2 < n and all(c in string.hexdigits for c in text[i + 1:i + 3]):
                    raw += binascii.unhexlify(text[i + 1:i + 3])
                    i += 3
                    continue
                i += 1 if text[i] == "\\" and i + 1 < n else 0
                raw += text[i].encode()
                i += 1
            value = raw.decode(errors="replace").strip()
        if i < n and text[i] not in ",;+":
            raise ValueError("text after a quoted value")
        pairs.append((kind, value))
        i += 1
    return pairs


def _name_pairs(name: x509.Name) -> list[tuple[set[str], str]]:
    """The certificate's attributes most significant last (as DN strings are written): the names each type
    may be written with, and the value."""
    out = []
    for rdn in reversed(name.rdns):
        for attr in rdn:
            names = {attr.rfc4514_attribute_name.upper(), attr.oid.dotted_string}
            out.append((names, attr.value if isinstance(attr.value, str) else attr.value.decode()))
    return out


def same_name(text: str, name: x509.Name) -> bool:
    """``text`` spells ``name`` (in either RDN order)."""
    try:
        written = [(_ALIASES.get(k, k), v) for k, v in parse_dn(text)]
    except ValueError:
        return False
    wanted = _name_pairs(name)

    def matches(order: list[tuple[set[str], str]]) -> bool:
        return len(order) == len(written) and all(
            kind in names and value == given for (names, value), (kind, given) in zip(order, written, strict=True))

    return matches(wanted) or matches(wanted[::-1])


# -- the request --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Asked:
    """A request the STS can answer: who, with which key, asserting and asking what, until when."""

    request_id: str
    subject: NameIdentifier
    holder: Holder
    holder_of_key: x509.Certificate
    designators: tuple[tuple[str, str], ...]   # (AttributeName, AttributeNamespace), in the order asked
    asserted: tuple[str, ...]                  # identification attribute names the caller asserted
    not_on_or_after: dt.datetime | None


def _one(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise Denied(f"the request needs exactly one {what}")
    return found[0]


def _certificate(text: str | None) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join((text or "").split()), validate=True))
    except ValueError:
        raise Denied("the holder-of-key certificate is unreadable") from None


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def read_request(request: etree._Element, identity: x509.Certificate, trust: TrustStore,
                 now: dt.datetime) -> Asked:
    """Everything the STS checks before certifying; raises :class:`Denied` saying what is wrong."""
    if (request.get("MajorVersion"), request.get("MinorVersion")) != ("1", "1"):
        raise Denied("only SAML 1.1 requests are answered")
    request_id = request.get(REQUEST_ID) or ""
    query = _one(request, f"{_SAMLP}AttributeQuery", "AttributeQuery")
    subject = _one(query, f"{_SAML}Subject", "Subject")
    ident = _one(subject, f"{_SAML}NameIdentifier", "NameIdentifier")
    if ident.get("Format") != X509_SUBJECT_NAME:
        raise Denied(f"the NameIdentifier must have the Format {X509_SUBJECT_NAME}")
    name = NameIdentifier((ident.text or "").strip(), ident.get("NameQualifier"), X509_SUBJECT_NAME)
    if not same_name(name.value, identity.subject):
        raise Denied("the NameIdentifier is not the subject of the certificate that signed the message")
    if name.qualifier is None or not same_name(name.qualifier, identity.issuer):
        raise Denied("the NameQualifier is not the issuer of the certificate that signed the message")
    holder = Holder.of(identity)

    confirmation = _one(subject, f"{_SAML}SubjectConfirmation", "SubjectConfirmation")
    methods = [(m.text or "").strip() for m in confirmation.findall(f"{_SAML}ConfirmationMethod")]
    if methods != [HOLDER_OF_KEY]:
        raise Denied(f"the subject must be confirmed {HOLDER_OF_KEY}")
    certs = confirmation.findall(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    if len(certs) != 1:
        raise Denied("the SubjectConfirmation must carry one holder-of-key certificate (ds:X509Certificate)")
    hok = _certificate(certs[0].text)
    try:
        trust.check(hok, now)
    except SecurityRejected as exc:
        raise Denied(f"holder-of-key certificate refused: {exc.reason}") from None
    if _der(hok) != _der(identity) and Holder.of(hok) != holder:
        raise Denied("the holder-of-key certificate names another holder than the identity certificate")
    check_proof_of_possession(request, request_id, hok, required=_der(hok) != _der(identity))

    asserted, not_on_or_after = _inner_assertion(confirmation, identity.subject, holder)
    designators = tuple((d.get("AttributeName") or "", d.get("AttributeNamespace") or "")
                        for d in query.findall(f"{_SAML}AttributeDesignator"))
    for attr_name, namespace in designators:
        _known(attr_name, namespace, holder)
    return Asked(request_id, name, holder, hok, designators, asserted, not_on_or_after)


def check_proof_of_possession(request: etree._Element, request_id: str, hok: x509.Certificate,
                              required: bool) -> None:
    """The request's own signature: when ``required`` (or present), exactly one, the first child, enveloped
    over exactly ``#RequestID`` (exc-c14n, RSA-SHA256, SHA-256), made with the holder-of-key's key."""
    signatures = request.findall(f".//{_DS}Signature")
    if not signatures and not required:
        return
    children = [c for c in request if isinstance(c.tag, str)]
    if len(signatures) != 1 or children[0] is not signatures[0]:
        raise Denied("the request must carry one signature by the holder-of-key, as its first child")
    named = signatures[0].findall(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate")
    if any(_der(_certificate(c.text)) != _der(hok) for c in named):
        raise Denied("the request signature names another certificate than the holder-of-key")
    try:
        check_enveloped_signed_info(signatures[0], request_id)
        check_id_unique(request, request_id)
        verify_enveloped_signature(request, signatures[0], REQUEST_ID, hok)
    except AssertionRejected as exc:
        raise Denied(f"request signature refused: {exc.reason}") from None


def _inner_assertion(confirmation: etree._Element, subject: x509.Name,
                     holder: Holder) -> tuple[tuple[str, ...], dt.datetime | None]:
    """The caller's own assertion in ``SubjectConfirmationData`` (optional): its identification attributes
    must be the certificate's; its ``Conditions`` give the validity asked for."""
    data = confirmation.find(f"{_SAML}SubjectConfirmationData")
    if data is None:
        return (), None
    assertion = _one(data, f"{_SAML}Assertion", "assertion in SubjectConfirmationData")
    asserted: list[str] = []
    for statement in assertion.findall(f"{_SAML}AttributeStatement"):
        ident = statement.find(f"{_SAML}Subject/{_SAML}NameIdentifier")
        if ident is not None and not same_name((ident.text or "").strip(), subject):
            raise Denied("the asserted attributes name another subject")
        for attr in statement.findall(f"{_SAML}Attribute"):
            attr_name, namespace = attr.get("AttributeName") or "", attr.get("AttributeNamespace") or ""
            if namespace != IDENTIFICATION_NAMESPACE:
                raise Denied(f"only identification attributes may be asserted, not {attr_name}")
            expected = _known(attr_name, namespace, holder)
            values = ["".join(v.itertext()).strip() for v in attr.findall(f"{_SAML}AttributeValue")]
            if not values or any(v not in expected for v in values):
                raise Denied(f"the asserted {attr_name} is not the certificate's")
            asserted.append(attr_name)
    conditions = assertion.find(f"{_SAML}Conditions")
    until = None
    if conditions is not None and conditions.get("NotOnOrAfter"):
        try:
            until = _parse_time(conditions.get("NotOnOrAfter"))
        except SecurityRejected:
            raise Denied("the requested NotOnOrAfter is not a dateTime with a time zone") from None
    return tuple(asserted), until


def _known(attr_name: str, namespace: str, holder: Holder) -> set[str]:
    """Refuses an unknown designator, or an identification attribute the certificate does not hold; gives
    the values that identification attribute may have (empty for a certified one)."""
    if namespace == IDENTIFICATION_NAMESPACE and attr_name in _ASSERTED:
        role = _ASSERTED[attr_name]
        value = holder.value_for(role)
        if value is None:
            raise Denied(f"the certificate holds no {attr_name}")
        return {value, nihii11(value)} if role.is_organisation and role.quality is not Quality.PLATFORM \
            else {value}
    if namespace == CERTIFIED_NAMESPACE and attr_name in _CERTIFIED:
        return set()
    raise Denied(f"unknown attribute designator {attr_name} ({namespace})")


# -- certifying ---------------------------------------------------------------------------------------------
def _active(start: str | None, end: str | None, today: dt.date) -> bool:
    begin, until = iso_date(start), iso_date(end)
    return (begin is None or begin <= today) and (until is None or today <= until)


def certified_nihii(scenario: Scenario, holder: Holder, role: TokenRole, today: dt.date) -> str | None:
    """The NIHII under which CoBrHa knows ``holder`` in ``role`` today; None when it does not (so the STS
    answers "false")."""
    if role.is_organisation:
        if holder.kind is not role.quality or role.quality is Quality.PLATFORM:
            return None
        org = scenario.organisation(nihii=holder.number)
        ok = org is not None and org.type == role.quality.value and org.active and \
            _active(org.active_from, org.active_to, today)
        return holder.number if ok else None
    if holder.kind is not None:
        return None
    for pro in scenario.professionals_of(holder.number):
        if PROFESSIONS[pro.profession][0] == role.quality.hcparty_code and _active(pro.visa_from, pro.visa_to,
                                                                                     today):
            return pro.nihii
    return None


def answer_attributes(scenario: Scenario, asked: Asked, today: dt.date) -> tuple[list[SamlAttribute], list[str]]:
    """The attributes of the token: the identification ones (asserted or asked) echoed with the certificate's
    value, then each certified one asked; and what was certified per role (for the audit: quality=true or
    false, no identifiers)."""
    identification = [(n, IDENTIFICATION_NAMESPACE) for n in asked.asserted]
    identification += [d for d in asked.designators if d[1] == IDENTIFICATION_NAMESPACE]
    answer = [SamlAttribute(name, namespace, (asked.holder.value_for(_ASSERTED[name]) or "",))
              for name, namespace in dict.fromkeys(identification)]
    wanted = [d for d in dict.fromkeys(asked.designators) if d[1] == CERTIFIED_NAMESPACE]
    roles = list(dict.fromkeys(_CERTIFIED[name] for name, _ in wanted))
    given: dict[tuple[str, str], SamlAttribute] = {}
    summary = []
    for role in roles:
        nihii = certified_nihii(scenario, asked.holder, role, today)
        summary.append(f"{role.quality.value}={'true' if nihii else 'false'}")
        given.update(((a.name, a.namespace), a) for a in role.certified(asked.holder.number, nihii))
    return answer + [given[d] for d in wanted], summary


# -- the answer ---------------------------------------------------------------------------------------------
def response(request: etree._Element, now: dt.datetime, assertion: etree._Element | None = None,
             refusal: str | None = None) -> etree._Element:
    """A ``samlp:Response`` to ``request``: Success with the assertion, or Requester/RequestDenied."""
    answer = etree.Element(f"{_SAMLP}Response", nsmap={"samlp": SAMLP})
    answer.set("ResponseID", f"_{secrets.token_hex(16)}")
    if request.get(REQUEST_ID):
        answer.set("InResponseTo", request.get(REQUEST_ID) or "")
    answer.set("MajorVersion", "1")
    answer.set("MinorVersion", "1")
    answer.set("IssueInstant", _fmt(now))
    status = etree.SubElement(answer, f"{_SAMLP}Status")
    code = etree.SubElement(status, f"{_SAMLP}StatusCode")
    if refusal is None:
        code.set("Value", "samlp:Success")
    else:
        code.set("Value", "samlp:Requester")
        etree.SubElement(code, f"{_SAMLP}StatusCode").set("Value", "samlp:RequestDenied")
        etree.SubElement(status, f"{_SAMLP}StatusMessage").text = refusal
    if assertion is not None:
        answer.append(assertion)
    return answer


class StsHandler:
    """The ``RequestSecurityToken`` operation: a validated ``samlp:Request`` and its call in, the
    ``samlp:Response`` out."""

    def __init__(self, scenario: Scenario, trust: TrustStore, keypair: KeyPair, *,
                 default_seconds: int = Settings.sts_token_seconds, max_seconds: int = Settings.sts_max_token_seconds,
                 clock: Callable[[], dt.datetime] = _utc_now) -> None:
        self.scenario = scenario
        self.trust = trust
        self.keypair = keypair
        self.default = dt.timedelta(seconds=default_seconds)
        self.cap = dt.timedelta(seconds=max_seconds)
        self.clock = clock

    def __call__(self, request: etree._Element, call: Call) -> etree._Element:
        now = self.clock().replace(microsecond=0)
        call.audit.request_id = (request.get(REQUEST_ID) or "")[:128] or None
        try:
            asked = read_request(request, call.certificate, self.trust, now)
            end = self._until(asked, now)
            attributes, summary = answer_attributes(self.scenario, asked, now.date())
            if not attributes:
                raise Denied("the request asks for no attribute")
        except Denied as exc:
            call.audit.outcome = "DENIED"
            call.audit.detail = f"refused: {exc}"[:500]
            return response(request, now, refusal=str(exc))
        assertion = build_assertion(self.keypair, asked.subject, asked.holder_of_key, attributes,
                                    not_before=now, not_on_or_after=end, issue_instant=now)
        call.audit.detail = _detail(asked, summary, end - now)
        return response(request, now, assertion)

    def _until(self, asked: Asked, now: dt.datetime) -> dt.datetime:
        if asked.not_on_or_after is None:
            return now + self.default
        if asked.not_on_or_after <= now:
            raise Denied("the requested validity ends before now")
        return min(asked.not_on_or_after, now + self.cap)


def _detail(asked: Asked, summary: Iterable[str], validity: dt.timedelta) -> str:
    holder = "person" if asked.holder.kind is None else asked.holder.kind.value
    certified = ", ".join(summary) or "identification only"
    return f"token for a {holder}: {certified}; valid {int(validity.total_seconds())} s"


def build(scenario: Scenario, deps: EndpointDeps, trust: TrustStore, keypair: KeyPair,
          settings: Settings | None = None) -> SoapEndpoint:
    """The STS endpoint: its answers WS-Security signed by the endpoint's signer (the "sts" service key, as
    the platform composes it), its assertions signed with ``keypair`` (the same key)."""
    s = settings or Settings()
    handler = StsHandler(scenario, trust, keypair, default_seconds=s.sts_token_seconds,
                         max_seconds=s.sts_max_token_seconds)
    # freehealth-connector sends "…:RequestSecureToken" (the WSDL says "…:RequestSecurityToken"); production
    # answers it, so the sandbox does too.
    return build_element_endpoint("sts", handler, "saml-protocol-1.1-subset.xsd", "sandbox-sts-v1.wsdl", deps,
                                  other_actions=(f"{ns.STS_PROTOCOL}:RequestSecureToken",))

