"""What the eHealth STS certifies, by name: the attributes a client asserts and asks for to act in one
quality, and the caller a verified holder-of-key assertion names.

Two SAML 1.1 attribute namespaces: the *identification* one carries what the caller asserts (its NISS, or
its organisation's NIHII) and the STS checks against the identity certificate; the *certified* one carries
what the STS certifies from the authentic sources (CoBrHa): a boolean per quality ("is a doctor", "is a
recognised pharmacy") and the NIHII in 11 digits. Names follow the public eHealth STS designators (doctor,
nurse, the ``professional:<quality>`` and ``nihii:<quality>:nihii11`` patterns, pharmacy, hospital,
medical house); for the sandbox's qualities no public list names (an integrated-care project, a
tarification office) the same ``<organisation>:nihii-number:recognised<organisation>`` pattern is applied.

A person token that certifies no profession names a citizen. Nothing here reads a request: identity comes
only from a verified assertion (:func:`identity_of`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from mycarenet_ic.domain.qualities import CallerIdentity, Quality
from mycarenet_ic.errors import SecurityRejected
from mycarenet_ic.security.saml11 import (
    CERTIFIED_NAMESPACE,
    IDENTIFICATION_NAMESPACE,
    SamlAttribute,
    VerifiedAssertion,
)

PERSON_SSIN = "urn:be:fgov:person:ssin"
HOLDER_SSIN = "urn:be:fgov:ehealth:1.0:certificateholder:person:ssin"
ENTERPRISE_CBE = "urn:be:fgov:ehealth:1.0:certificateholder:enterprise:cbe-number"
_PERSON = "urn:be:fgov:person:ssin:ehealth:1.0"
_ORG = "urn:be:fgov:ehealth:1.0"

Designator = tuple[str, str]  # (AttributeName, AttributeNamespace)


@dataclass(frozen=True)
class TokenRole:
    """One quality as an STS token carries it."""

    quality: Quality
    asserted: tuple[str, ...]        # identification namespace: the holder's NISS, or the organisation's NIHII
    boolean: str | None              # certified: "true" when the authentic source knows the holder so
    nihii11: str | None              # certified: the NIHII in 11 digits ("" when not certified)

    @property
    def is_organisation(self) -> bool:
        return self.quality.is_organisation

    def certified(self, holder: str, nihii: str | None) -> list[SamlAttribute]:
        """What the STS answers for ``holder`` (a NISS, or the organisation's NIHII) asking for this role:
        the asserted identifiers echoed; the boolean "true" with the NIHII in 11 digits when the authentic
        source knows the holder so (``nihii`` given), else "false" and an empty NIHII, as production does."""
        answer = [SamlAttribute(name, IDENTIFICATION_NAMESPACE, (holder,)) for name in self.asserted]
        if self.boolean:
            answer.append(SamlAttribute(self.boolean, CERTIFIED_NAMESPACE, ("true" if nihii else "false",)))
        if self.nihii11:
            answer.append(SamlAttribute(self.nihii11, CERTIFIED_NAMESPACE, (nihii11(nihii) if nihii else "",)))
        return answer

    def designators(self) -> list[Designator]:
        """What a client asks the STS for, to act in this quality."""
        asked = [(name, IDENTIFICATION_NAMESPACE) for name in self.asserted]
        asked += [(name, CERTIFIED_NAMESPACE) for name in (self.boolean, self.nihii11) if name]
        return asked


def _professional(quality: Quality) -> TokenRole:
    q = quality.value
    return TokenRole(quality, (PERSON_SSIN, HOLDER_SSIN), f"{_PERSON}:professional:{q}:boolean",
                     f"{_PERSON}:nihii:{q}:nihii11")


def _organisation(quality: Quality, org: str) -> TokenRole:
    number = f"{_ORG}:{org}:nihii-number"
    return TokenRole(quality, (number,), f"{number}:recognised{org}:boolean", f"{number}:recognised{org}:nihii11")


_PROFESSIONS = (Quality.PHYSIOTHERAPIST, Quality.DENTIST, Quality.MIDWIFE, Quality.LOGOPEDIST, Quality.ORTHOPTIST,
                Quality.PODOLOGIST, Quality.DIETICIAN, Quality.AUDICIAN, Quality.AUDIOLOGIST,
                Quality.OCCUPATIONAL_THERAPIST, Quality.PHARMACIST)
ROLES: dict[Quality, TokenRole] = {
    Quality.DOCTOR: TokenRole(Quality.DOCTOR, (PERSON_SSIN, HOLDER_SSIN), "urn:be:fgov:person:ssin:doctor:boolean",
                              f"{_PERSON}:doctor:nihii11"),
    Quality.NURSE: TokenRole(Quality.NURSE, (PERSON_SSIN, HOLDER_SSIN), "urn:be:fgov:person:ssin:nurse:boolean",
                             f"{_PERSON}:nurse:nihii11"),
    **{q: _professional(q) for q in _PROFESSIONS},
    Quality.PHARMACY: _organisation(Quality.PHARMACY, "pharmacy"),
    Quality.HOSPITAL: _organisation(Quality.HOSPITAL, "hospital"),
    Quality.MEDICAL_HOUSE: _organisation(Quality.MEDICAL_HOUSE, "medicalhouse"),
    Quality.INTEGRATED_CARE_PROJECT: _organisation(Quality.INTEGRATED_CARE_PROJECT, "psi"),
    Quality.TARIFICATION_OFFICE: _organisation(Quality.TARIFICATION_OFFICE, "pharmacyinvoicingoffice"),
    Quality.CITIZEN: TokenRole(Quality.CITIZEN, (PERSON_SSIN, HOLDER_SSIN), None, None),
    Quality.PLATFORM: TokenRole(Quality.PLATFORM, (ENTERPRISE_CBE,), None, None),
}


def role(quality: Quality) -> TokenRole:
    found = ROLES.get(quality)
    if found is None:
        raise ValueError(f"no STS token is issued for the quality {quality.value}")
    return found


def nihii11(nihii: str) -> str:
    """A NIHII in 11 digits: an organisation's 8 digits padded with zeros, as eHealth writes it."""
    return nihii + "000" if len(nihii) == 8 else nihii


def _eight(value: str) -> str:
    return value[:8] if len(value) == 11 and value.endswith("000") else value


def identity_of(token: VerifiedAssertion) -> CallerIdentity:
    """The caller a verified assertion certifies: the one quality whose certified boolean is true (a person
    token with none is a citizen), its NISS or organisation NIHII as the STS echoed them, the NIHII of the
    profession as certified. Raises :class:`SecurityRejected` when the token certifies no one, or two
    qualities at once."""
    def certified(name: str | None) -> str | None:
        return token.value(name, CERTIFIED_NAMESPACE) if name else None

    def asserted(role_: TokenRole) -> str | None:
        return next((v for n in role_.asserted if (v := token.value(n, IDENTIFICATION_NAMESPACE))), None)

    qualities = [r for r in ROLES.values() if r.boolean and (certified(r.boolean) or "").strip() == "true"]
    if len(qualities) > 1:
        raise SecurityRejected("the token certifies more than one quality")
    fingerprint = hashlib.sha256(token.holder_of_key.public_bytes(serialization.Encoding.DER)).hexdigest()
    subject = token.subject.value
    if qualities:
        found = qualities[0]
        holder = asserted(found)
        number = certified(found.nihii11) or ""
        if not holder or not number:
            raise SecurityRejected("the token certifies a quality without its holder or NIHII")
        if found.is_organisation:
            if _eight(number) != holder:
                raise SecurityRejected("the token's NIHII is not the organisation's")
            return CallerIdentity(found.quality, None, holder, subject, fingerprint)
        return CallerIdentity(found.quality, holder, number, subject, fingerprint)
    ssin = asserted(ROLES[Quality.CITIZEN])
    if ssin:
        return CallerIdentity(Quality.CITIZEN, ssin, None, subject, fingerprint)
    if asserted(ROLES[Quality.PLATFORM]):
        return CallerIdentity(Quality.PLATFORM, None, None, subject, fingerprint)
    raise SecurityRejected("the token certifies no known holder")
