"""Who a caller is, as the certificate and the role registry say."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Quality(enum.Enum):
    """Professional quality named in a sandbox certificate (eHealth style)."""

    DOCTOR = "doctor"
    NURSE = "nurse"
    PHYSIOTHERAPIST = "physiotherapist"
    DENTIST = "dentist"
    MIDWIFE = "midwife"
    LOGOPEDIST = "logopedist"
    # Other care providers of the AR n° 78 list the seeds name (seed 000, note 8): known in CoBrHa with a VISA.
    ORTHOPTIST = "orthoptist"
    PODOLOGIST = "podologist"
    DIETICIAN = "dietician"
    AUDICIAN = "audician"
    AUDIOLOGIST = "audiologist"
    OCCUPATIONAL_THERAPIST = "occupationaltherapist"
    PHARMACIST = "pharmacist"
    PHARMACY = "pharmacy"
    # Seed 001 §4, §8: the offices that do the pharmacists' tarification ("offices de tarification"), answered
    # as pharmacists are; CD-HCPARTY orgpharmacyinvoicingoffice. The quality value is the sandbox's own.
    TARIFICATION_OFFICE = "pharmacyinvoicingoffice"
    HOSPITAL = "hospital"
    MEDICAL_HOUSE = "medicalhouse"
    INTEGRATED_CARE_PROJECT = "psi"
    PSI_STAFF = "psi-staff"
    CITIZEN = "citizen"
    PLATFORM = "platform"

    @property
    def is_organisation(self) -> bool:
        return self in _ORGANISATIONS

    @property
    def hcparty_code(self) -> str | None:
        """The KMEHR CD-HCPARTY code of the profession CoBrHa records for a person of this quality."""
        return _HCPARTY_CODES.get(self)

    @property
    def kind(self) -> RequesterKind:
        """What kind of requester a holder of this quality is (what the services tell apart)."""
        return _KINDS.get(self, RequesterKind.OTHER_PROVIDER)

    @property
    def organisation_type(self) -> str | None:
        """The type CoBrHa records for an organisation of this quality."""
        return _ORGANISATION_TYPES.get(self)

    @property
    def cert_type(self) -> str:
        """The prefix eHealth puts in the certificate's CN for this holder."""
        return _CERT_TYPES.get(self, "SSIN")


class RequesterKind(enum.Enum):
    """Who a requester is, as the services tell them apart."""

    CARE_PROVIDER = "care provider"        # doctor, nurse, physiotherapist, dentist, midwife, logopedist
    OTHER_PROVIDER = "other provider"      # the other care providers of the AR n° 78 list (VISA in CoBrHa)
    PHARMACIST = "pharmacist"              # a person, acting for the pharmacy they work in
    ORGANISATION = "organisation"          # pharmacy, hospital, medical house, PSI, tarification office
    PSI_STAFF = "psi staff"                # a person whose PSI roles the AttributeAuthority gives
    CITIZEN = "citizen"
    PLATFORM = "platform"


_ORGANISATIONS = frozenset(
    {Quality.PHARMACY, Quality.HOSPITAL, Quality.MEDICAL_HOUSE, Quality.INTEGRATED_CARE_PROJECT,
     Quality.TARIFICATION_OFFICE, Quality.PLATFORM}
)
_KINDS = {
    **{q: RequesterKind.CARE_PROVIDER for q in (Quality.DOCTOR, Quality.NURSE, Quality.PHYSIOTHERAPIST,
                                                Quality.DENTIST, Quality.MIDWIFE, Quality.LOGOPEDIST)},
    Quality.PHARMACIST: RequesterKind.PHARMACIST,
    **{q: RequesterKind.ORGANISATION for q in (Quality.PHARMACY, Quality.HOSPITAL, Quality.MEDICAL_HOUSE,
                                               Quality.INTEGRATED_CARE_PROJECT, Quality.TARIFICATION_OFFICE)},
    Quality.PSI_STAFF: RequesterKind.PSI_STAFF,
    Quality.CITIZEN: RequesterKind.CITIZEN,
    Quality.PLATFORM: RequesterKind.PLATFORM,
}
_ORGANISATION_TYPES = {
    Quality.PHARMACY: "pharmacy", Quality.HOSPITAL: "hospital", Quality.MEDICAL_HOUSE: "medicalhouse",
    Quality.INTEGRATED_CARE_PROJECT: "psi", Quality.TARIFICATION_OFFICE: "pharmacyinvoicingoffice",
}
_HCPARTY_CODES = {
    Quality.DOCTOR: "persphysician",
    Quality.NURSE: "persnurse",
    Quality.PHYSIOTHERAPIST: "persphysiotherapist",
    Quality.DENTIST: "persdentist",
    Quality.MIDWIFE: "persmidwife",
    Quality.LOGOPEDIST: "perslogopedist",
    Quality.ORTHOPTIST: "persorthoptist",
    Quality.PODOLOGIST: "perspodologist",
    Quality.DIETICIAN: "persdietician",
    Quality.AUDICIAN: "persaudician",
    Quality.AUDIOLOGIST: "persaudiologist",
    Quality.OCCUPATIONAL_THERAPIST: "persoccupationaltherapist",
    Quality.PHARMACIST: "perspharmacist",
}
_CERT_TYPES = {
    Quality.PHARMACY: "NIHII-PHARMACY",
    Quality.HOSPITAL: "NIHII-HOSPITAL",
    Quality.MEDICAL_HOUSE: "NIHII-MEDICALHOUSE",
    Quality.INTEGRATED_CARE_PROJECT: "NIHII-PSI",
    Quality.TARIFICATION_OFFICE: "NIHII-OFFICETARIFICATION",   # ours: no public certificate seen
    Quality.PLATFORM: "CBE",
}


@dataclass(frozen=True)
class CallerIdentity:
    """The caller as established by a verified signature."""

    quality: Quality
    ssin: str | None
    nihii: str | None
    subject: str
    fingerprint: str

    @property
    def holder(self) -> str:
        """The holder, whatever certificate or token they come with: whose request ids are whose (the
        idempotency key; not for display, it may carry a NISS)."""
        return f"{self.quality.value}|{self.ssin or ''}|{self.nihii or ''}"

    @property
    def label(self) -> str:
        """A short name for logs and the audit trail."""
        ident = self.nihii if self.quality.is_organisation else (self.ssin or self.nihii)
        return f"{self.quality.value}:{ident}"
