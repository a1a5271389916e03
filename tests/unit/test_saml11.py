"""SAML 1.1 holder-of-key assertions: what the builder signs the verifier accepts, and every alteration of it
(tampered value, foreign or merely CA-issued signer, expiry, wrapping) is refused."""

from __future__ import annotations

import copy
import datetime as dt
import pathlib

import pytest
from lxml import etree

from mycarenet_ic import contract
from mycarenet_ic.domain.qualities import Quality
from mycarenet_ic.errors import SecurityRejected
from mycarenet_ic.security import pki
from mycarenet_ic.security.saml11 import (
    CERTIFIED_NAMESPACE,
    IDENTIFICATION_NAMESPACE,
    SAML,
    SAMLP,
    STS_ISSUER,
    AssertionExpired,
    AssertionMalformed,
    AssertionSignatureInvalid,
    AssertionUntrusted,
    AssertionVerifier,
    AssertionWrapped,
    NameIdentifier,
    SamlAttribute,
    build_assertion,
)
from mycarenet_ic.security.wssec import TrustStore
from tests import support

pytestmark = pytest.mark.unit

SSIN = "urn:be:fgov:person:ssin"
DOCTOR = "urn:be:fgov:person:ssin:doctor:boolean"
NIHII11 = "urn:be:fgov:person:ssin:ehealth:1.0:doctor:nihii11"
ATTRIBUTES = [
    (SSIN, IDENTIFICATION_NAMESPACE, [support.DOCTOR_SSIN]),
    (DOCTOR, CERTIFIED_NAMESPACE, ["true"]),
    (NIHII11, CERTIFIED_NAMESPACE, [support.DOCTOR_NIHII]),
]


class Keys:
    def __init__(self, data_dir: pathlib.Path) -> None:
        sandbox = pki.Pki(data_dir)
        sandbox.init()
        self.ca = sandbox.ca()
        self.sts = pki.issue(self.ca, pki.holder_name(Quality.PLATFORM, None, None, label="sts"))
        self.hok = sandbox.issue_holder(Quality.DOCTOR, support.DOCTOR_SSIN, support.DOCTOR_NIHII)
        other_ca = pki.create_ca()
        self.foreign = pki.issue(other_ca, pki.holder_name(Quality.PLATFORM, None, None, label="sts"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("saml11"))


@pytest.fixture
def verifier(keys: Keys) -> AssertionVerifier:
    return AssertionVerifier(TrustStore.from_pem(keys.ca.cert_pem), [keys.sts.certificate])


def _assertion(keys: Keys, signer: pki.KeyPair | None = None, **kw: object) -> etree._Element:
    built = build_assertion(signer or keys.sts, NameIdentifier.of_certificate(keys.hok.certificate),
                            keys.hok.certificate, ATTRIBUTES, **kw)  # type: ignore[arg-type]
    return etree.fromstring(etree.tostring(built))  # what travels is bytes


def _reparse(el: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(el))


def test_round_trip_names_the_subject_the_key_and_the_attributes(keys: Keys, verifier: AssertionVerifier) -> None:
    assertion = _assertion(keys)
    result = verifier.verify(assertion)
    assert result.assertion_id == assertion.get("AssertionID")
    assert result.issuer == STS_ISSUER
    assert result.holder_of_key == keys.hok.certificate
    assert result.issuer_certificate == keys.sts.certificate
    assert result.subject == NameIdentifier.of_certificate(keys.hok.certificate)
    assert f"SSIN={support.DOCTOR_SSIN}" in result.subject.value
    assert result.value(SSIN, IDENTIFICATION_NAMESPACE) == support.DOCTOR_SSIN
    assert result.value(DOCTOR, CERTIFIED_NAMESPACE) == "true"
    assert result.value(NIHII11, CERTIFIED_NAMESPACE) == support.DOCTOR_NIHII
    assert result.value(NIHII11, IDENTIFICATION_NAMESPACE) is None  # the namespace is part of the name
    assert result.attributes[0] == SamlAttribute(SSIN, IDENTIFICATION_NAMESPACE, (support.DOCTOR_SSIN,))
    assert result.not_on_or_after - result.not_before == dt.timedelta(hours=1)


def test_verifies_where_it_travels_inside_a_security_header(keys: Keys, verifier: AssertionVerifier) -> None:
    envelope = etree.fromstring(
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>'
        b'<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"/>'
        b'</s:Header><s:Body/></s:Envelope>')
    envelope[0][0].append(_assertion(keys))
    moved = _reparse(envelope).find(f".//{{{SAML}}}Assertion")
    assert verifier.verify(moved).value(SSIN, IDENTIFICATION_NAMESPACE) == support.DOCTOR_SSIN


def test_assertion_and_response_are_valid_against_our_schemas(keys: Keys) -> None:
    assertion = _assertion(keys)
    contract.schema("saml-assertion-1.1-subset.xsd").assertValid(assertion)
    response = etree.Element(f"{{{SAMLP}}}Response", nsmap={"samlp": SAMLP},
                             ResponseID="_r1", InResponseTo="request-1", MajorVersion="1", MinorVersion="1",
                             IssueInstant="2026-01-01T00:00:00Z")
    status = etree.SubElement(response, f"{{{SAMLP}}}Status")
    etree.SubElement(status, f"{{{SAMLP}}}StatusCode", Value="samlp:Success")
    response.append(assertion)
    contract.schema("saml-protocol-1.1-subset.xsd").assertValid(_reparse(response))


def test_request_shape_is_valid_against_our_schema(keys: Keys) -> None:
    """The STS request (AttributeQuery, holder-of-key subject, designators) as eHealth clients send it."""
    request = etree.fromstring(
        f'<samlp:Request xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
        ' RequestID="request-1" MajorVersion="1" MinorVersion="1" IssueInstant="2026-01-01T00:00:00Z">'
        '<samlp:AttributeQuery><saml:Subject>'
        '<saml:NameIdentifier Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"'
        ' NameQualifier="CN=CA">CN=x</saml:NameIdentifier>'
        '<saml:SubjectConfirmation>'
        '<saml:ConfirmationMethod>urn:oasis:names:tc:SAML:1.0:cm:holder-of-key</saml:ConfirmationMethod>'
        '<ds:KeyInfo><ds:X509Data><ds:X509Certificate>AA==</ds:X509Certificate></ds:X509Data></ds:KeyInfo>'
        '</saml:SubjectConfirmation></saml:Subject>'
        f'<saml:AttributeDesignator AttributeName="{DOCTOR}" AttributeNamespace="{CERTIFIED_NAMESPACE}"/>'
        '</samlp:AttributeQuery></samlp:Request>')
    schema = contract.schema("saml-protocol-1.1-subset.xsd")
    schema.assertValid(request)
    del request[0][1].attrib["AttributeNamespace"]
    assert not schema.validate(request)


def test_tampered_attribute_value_is_refused(keys: Keys, verifier: AssertionVerifier) -> None:
    assertion = _assertion(keys)
    value = assertion.find(f"{{{SAML}}}AttributeStatement/{{{SAML}}}Attribute[@AttributeName='{NIHII11}']"
                           f"/{{{SAML}}}AttributeValue")
    value.text = "19999999001"
    with pytest.raises(AssertionSignatureInvalid):
        verifier.verify(assertion)


def test_a_comment_slipped_into_signed_text_changes_nothing_read(keys: Keys, verifier: AssertionVerifier) -> None:
    # Exclusive c14n drops comments, so the signature still verifies: what is read must be the signed text
    # whole, not the part before the comment (the subject names the caller in the audit).
    assertion = _assertion(keys)
    for ident in assertion.iter(f"{{{SAML}}}NameIdentifier"):
        whole = ident.text or ""
        ident.text = whole[:4]
        comment = etree.Comment("cut")
        comment.tail = whole[4:]
        ident.append(comment)
    result = verifier.verify(_reparse(assertion))
    assert result.subject == NameIdentifier.of_certificate(keys.hok.certificate)


def test_swapped_holder_of_key_is_refused(keys: Keys, verifier: AssertionVerifier) -> None:
    assertion = _assertion(keys)
    cert = assertion.find(f".//{{{SAML}}}SubjectConfirmation//{{http://www.w3.org/2000/09/xmldsig#}}X509Certificate")
    cert.text = assertion.find(".//{http://www.w3.org/2000/09/xmldsig#}Signature//"
                               "{http://www.w3.org/2000/09/xmldsig#}X509Certificate").text
    with pytest.raises(AssertionSignatureInvalid):
        verifier.verify(assertion)


def test_signed_by_an_untrusted_key_is_refused(keys: Keys, verifier: AssertionVerifier) -> None:
    with pytest.raises(AssertionUntrusted):
        verifier.verify(_assertion(keys, signer=keys.foreign))


def test_signed_by_a_certificate_the_ca_issued_but_not_the_sts_is_refused(
        keys: Keys, verifier: AssertionVerifier) -> None:
    """The doctor's own key makes a perfect signature over its own claims: not an issuer."""
    with pytest.raises(AssertionUntrusted):
        verifier.verify(_assertion(keys, signer=keys.hok))


def test_pinned_issuer_from_a_ca_not_trusted_is_refused(keys: Keys) -> None:
    verifier = AssertionVerifier(TrustStore.from_pem(keys.ca.cert_pem), [keys.foreign.certificate])
    with pytest.raises(SecurityRejected, match="rejected"):
        verifier.verify(_assertion(keys, signer=keys.foreign))


def test_another_issuer_name_is_refused(keys: Keys, verifier: AssertionVerifier) -> None:
    with pytest.raises(AssertionUntrusted):
        verifier.verify(_assertion(keys, issuer="urn:example:other-sts"))


def test_expired_and_not_yet_valid_are_refused_outside_the_skew(keys: Keys) -> None:
    # A day ahead: inside the certificates' validity, so that only the Conditions decide.
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
    assertion = _assertion(keys, not_before=start, issue_instant=start, validity=dt.timedelta(hours=1))

    def at(moment: dt.datetime) -> AssertionVerifier:
        return AssertionVerifier(TrustStore.from_pem(keys.ca.cert_pem), [keys.sts.certificate],
                                 max_clock_skew_seconds=60, clock=lambda: moment)

    at(start + dt.timedelta(minutes=30)).verify(assertion)
    at(start + dt.timedelta(hours=1, seconds=59)).verify(assertion)  # within the skew
    at(start - dt.timedelta(seconds=59)).verify(assertion)
    with pytest.raises(AssertionExpired):
        at(start + dt.timedelta(hours=1, seconds=60)).verify(assertion)
    with pytest.raises(AssertionExpired):
        at(start - dt.timedelta(seconds=61)).verify(assertion)


def test_expired_now(keys: Keys, verifier: AssertionVerifier) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    with pytest.raises(AssertionExpired):
        verifier.verify(_assertion(keys, not_before=past, issue_instant=past))


def test_second_assertion_with_the_same_id_is_refused(keys: Keys, verifier: AssertionVerifier) -> None:
    """Wrapping: the signed original beside a forged copy with the same AssertionID — neither is accepted."""
    original = _assertion(keys)
    forged = copy.deepcopy(original)
    forged.find(f"{{{SAML}}}AttributeStatement/{{{SAML}}}Attribute[@AttributeName='{NIHII11}']"
                f"/{{{SAML}}}AttributeValue").text = "19999999001"
    holder = etree.Element("{urn:test}Holder")
    holder.append(forged)
    holder.append(original)
    holder = _reparse(holder)
    for candidate in holder:
        with pytest.raises(AssertionWrapped):
            verifier.verify(candidate)


def test_signature_referencing_another_element_is_refused(keys: Keys, verifier: AssertionVerifier) -> None:
    """A valid signature moved into a forged assertion still names the original's Id."""
    original = _assertion(keys)
    forged = _assertion(keys, signer=keys.foreign)
    forged.remove(forged[-1])
    forged.append(original[-1])
    holder = etree.Element("{urn:test}Holder")
    holder.extend([forged, original])
    with pytest.raises(AssertionWrapped):
        verifier.verify(_reparse(holder)[0])


def test_signed_assertion_hidden_inside_a_forged_one_is_refused(keys: Keys, verifier: AssertionVerifier) -> None:
    original = _assertion(keys)
    outer = _assertion(keys)
    outer.set("AssertionID", original.get("AssertionID"))
    outer.remove(outer[-1])
    outer.find(f"{{{SAML}}}AuthenticationStatement").append(original)  # the signed one, out of sight
    outer.append(copy.deepcopy(original[-1]))
    with pytest.raises(AssertionWrapped):
        verifier.verify(_reparse(outer))


def test_signature_not_last_or_missing_is_refused(keys: Keys, verifier: AssertionVerifier) -> None:
    assertion = _assertion(keys)
    assertion.insert(0, assertion[-1])
    with pytest.raises(AssertionWrapped):
        verifier.verify(assertion)
    assertion.remove(assertion[0])
    with pytest.raises(AssertionWrapped):
        verifier.verify(assertion)


def test_only_holder_of_key_confirmation_is_accepted(keys: Keys) -> None:
    """Rebuilt with sender-vouches and re-signed by the STS key: the shape is refused, not the signature."""
    assertion = _assertion(keys)
    method = assertion.find(f".//{{{SAML}}}ConfirmationMethod")
    method.text = "urn:oasis:names:tc:SAML:1.0:cm:sender-vouches"
    assertion.remove(assertion[-1])
    from mycarenet_ic.security.wssec import Signer

    Signer(keys.sts).sign_enveloped(assertion, after=assertion[-1], id_attribute="AssertionID")
    verifier = AssertionVerifier(TrustStore.from_pem(keys.ca.cert_pem), [keys.sts.certificate])
    with pytest.raises(AssertionMalformed):
        verifier.verify(_reparse(assertion))


def test_builder_refuses_an_attribute_without_values(keys: Keys) -> None:
    with pytest.raises(ValueError):
        build_assertion(keys.sts, NameIdentifier("CN=x"), keys.hok.certificate, [(SSIN, IDENTIFICATION_NAMESPACE, [])])


def test_errors_are_security_rejections_with_the_generic_text(keys: Keys, verifier: AssertionVerifier) -> None:
    with pytest.raises(SecurityRejected) as caught:
        verifier.verify(_assertion(keys, signer=keys.foreign))
    assert "untrusted" not in str(caught.value).lower()


@pytest.mark.parametrize("attribute", ["{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}Id",
                                       "Id", "ID", "{http://www.w3.org/XML/1998/namespace}id", "AssertionID",
                                       "RequestID", "ResponseID"])
def test_another_element_answering_to_the_assertions_id_is_refused(attribute: str, keys: Keys,
                                                                   verifier: AssertionVerifier) -> None:
    """Anywhere in the document, by any Id-like attribute: the signature's reference could resolve to it."""
    original = _assertion(keys)
    holder = etree.Element("{urn:test}Holder")
    etree.SubElement(holder, "{urn:test}Decoy").set(attribute, original.get("AssertionID"))
    holder.append(original)
    with pytest.raises(AssertionWrapped):
        verifier.verify(_reparse(holder)[1])
    holder.remove(holder[0])  # the decoy gone, the same assertion verifies
    assert verifier.verify(_reparse(holder)[0]).assertion_id == original.get("AssertionID")
