"""The tariff engine (seed 001 §10-18): fee, insurer amount and patient share per nomenclature code.

Amounts are integers in euro cents. Inputs: the provider (discipline, accreditation, GMD holder),
the patient (GMD and its holder, care trajectory, palliative status, age, chronic condition,
reimbursement regime), the act (code, date) and the reason for third-party payment. Ignored, as the
seed says: hospitalisation, cumulation rules, cross checks, maxima, general nomenclature rules, MAF.

Rules, in the order they apply to the patient share of one code:

1. the reimbursement regime picks the ordinary or the preferential (BIM) share; children under
   12 at the date of the act get the preferential share (sandbox rule);
2. a global medical file (GMD) lowers the share of the codes that have a GMD share, when the
   requester holds the GMD, names its holder as ``gmdmanager`` (the "G" notion), or works in a group
   practice where the holder works too (seed 001 §12: the group practice's GMD holder counts);
3. an active care trajectory makes the share of ``care_path_free`` codes nil;
4. palliative status makes the share of ``palliative_free`` codes nil.

The fee is the table's fee plus the accreditation supplement for an accredited provider. The
insurer pays the fee minus the share. No tariff at all when a medical-house subscription covers the
code on the date (error 169 of the public catalogue), nor for a code of another discipline than the
provider's (171). The subscription's flat fee covers only what the house's doctors (general practice),
nurses and physiotherapists do (seed 001 §9, medical house), and of these only the disciplines of the
house's convention: a specialist's, dentist's, midwife's or speech therapist's code is never covered.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from mycarenet_ic.domain.assurability import CpasDecision, MemberFile, payment_approval

CHILD_AGE = 12


class Justification(enum.Enum):
    """CD-MYCARENET-JUSTIFICATION: why the insurer pays the provider directly (third-party payment), as
    the public clients send and read it (numeric codes; the KMEHR table itself lists no values).

    Sent by the provider: 2 (the provider justifies third-party payment), 7 (the "G" notion: the GMD is
    held by another GP, named as ``gmdmanager``); both are answered back. Answered when the provider sent
    none: 3 (the insurer commits to pay: a payment approval is given) or 9 (no payment commitment).
    """

    THIRD_PARTY_REQUESTED = "2"
    PAYMENT_COMMITMENT = "3"
    G_NOTION = "7"
    NO_PAYMENT_COMMITMENT = "9"


REQUESTABLE = frozenset({Justification.THIRD_PARTY_REQUESTED, Justification.G_NOTION})


@dataclass(frozen=True)
class NomenclatureCode:
    code: str
    label: str
    discipline: str                      # gp | specialist | nurse | physiotherapist | dentist | midwife | logopedist
    fee: int
    accredited_supplement: int
    ordinary_share: int
    preferential_share: int
    gmd_ordinary_share: int | None
    gmd_preferential_share: int | None
    care_path_free: bool
    palliative_free: bool


@dataclass(frozen=True)
class Nomenclature:
    version: str
    source: str
    codes: dict[str, NomenclatureCode]

    @classmethod
    def load(cls, data: dict[str, Any] | None = None) -> Nomenclature:
        """The table under version control (``domain/data/nomenclature.json``), or ``data``."""
        if data is None:
            text = resources.files("mycarenet_ic.domain").joinpath("data/nomenclature.json").read_text("utf-8")
            data = json.loads(text)
        codes = {c["code"]: NomenclatureCode(**c) for c in data["codes"]}
        for c in codes.values():
            if min(c.fee, c.ordinary_share, c.preferential_share, c.accredited_supplement) < 0:
                raise ValueError(f"negative amount for {c.code}")
            if not c.preferential_share <= c.ordinary_share <= c.fee:
                raise ValueError(f"{c.code}: shares must satisfy preferential <= ordinary <= fee")
            gmd = (c.gmd_preferential_share, c.gmd_ordinary_share)
            if (gmd[0] is None) != (gmd[1] is None) or (gmd[0] is not None and gmd[1] is not None and not (
                    0 <= gmd[0] <= min(gmd[1], c.preferential_share) and gmd[1] <= c.ordinary_share)):
                raise ValueError(f"{c.code}: GMD shares must be both given, preferential <= ordinary, and lower")
        return cls(data.get("version", ""), data.get("source", ""), codes)


# Which discipline of a medical-house convention (Medical, Nurse, Kine) covers a code's discipline; a discipline
# not listed is never covered by the subscription.
MEDICAL_HOUSE_DISCIPLINES = {"gp": "doctor", "nurse": "nurse", "physiotherapist": "physiotherapist"}


@dataclass(frozen=True)
class Provider:
    nihii: str
    discipline: str
    accredited: bool
    group_practices: frozenset[str] = frozenset()   # NIHII of the group practices the provider works in


@dataclass(frozen=True)
class Patient:
    ssin: str
    birth_date: dt.date | None
    file: MemberFile


@dataclass(frozen=True)
class TariffLine:
    code: str
    fee: int
    insurer_amount: int
    patient_share: int
    payment_approval: str | None         # the insurer's payment commitment (third-party payment), if any
    justification: Justification         # CD-MYCARENET-JUSTIFICATION answered for this code
    applied: tuple[str, ...]             # which rules shaped the share (and why third party), for the audit


@dataclass(frozen=True)
class NoTariff:
    code: str
    error: str                           # the public catalogue's code (169, 171, 130)
    message: str


def discipline_of(profession_code: str, nihii: str) -> tuple[str, bool]:
    """The provider's discipline and accreditation from CoBrHa's profession and the NIHII qualification.

    Sandbox convention on the 3-digit qualification of doctors: 003-099 general practitioner
    (004 accredited), 500-999 specialist; a qualification ending in 4 is accredited.
    """
    qualification = nihii[8:11] if len(nihii) == 11 else ""
    accredited = qualification.endswith("4")
    if profession_code == "persphysician":
        return ("specialist" if qualification >= "500" else "gp"), accredited
    return {"persnurse": "nurse", "persphysiotherapist": "physiotherapist", "persmidwife": "midwife",
            "persdentist": "dentist", "perslogopedist": "logopedist"}.get(profession_code, profession_code), accredited


def _age(birth: dt.date | None, on: dt.date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def covered_by_medical_house(item: NomenclatureCode, file: MemberFile, on: dt.date) -> bool:
    """Whether the patient's medical-house subscription covers ``item`` on ``on`` (no tariff then)."""
    house = file.medical_house
    covers = MEDICAL_HOUSE_DISCIPLINES.get(item.discipline)
    return house is not None and house.active_on(on) and covers is not None and covers in house.covers


def tariff(table: Nomenclature, provider: Provider, patient: Patient, code: str, on: dt.date,
           justification: Justification | None = None, gmd_manager: str | None = None,
           gmd_holder_practices: frozenset[str] = frozenset()) -> TariffLine | NoTariff:
    """The tariff of one code for this provider and patient on ``on``; ``justification`` is what the
    provider sent (2 or 7), if anything; ``gmd_holder_practices`` the group practices the patient's GMD
    holder works in."""
    item = table.codes.get(code)
    if item is None:
        return NoTariff(code, "130", "Unknown nomenclature code.")
    if item.discipline != provider.discipline:
        return NoTariff(code, "171", "Nomenclature code not allowed for this type of provider.")
    file = patient.file
    if covered_by_medical_house(item, file, on):
        return NoTariff(code, "169", "Nomenclature code not allowed for a patient subscribed to a medical house.")

    period = file.period_on(on)
    applied: list[str] = []
    age = _age(patient.birth_date, on)
    preferential = bool(period and period.preferential)
    if preferential:
        applied.append("preferential")
    elif age is not None and age < CHILD_AGE:
        preferential = True
        applied.append("child")
    share = item.preferential_share if preferential else item.ordinary_share

    gmd = file.global_medical_file
    gmd_share = item.gmd_preferential_share if preferential else item.gmd_ordinary_share
    same_practice = bool(provider.group_practices & gmd_holder_practices)
    if gmd is not None and gmd.active_on(on) and gmd_share is not None \
            and (gmd.holder_nihii in {provider.nihii, gmd_manager} or same_practice):
        share = min(share, gmd_share)
        applied.append("gmd" if gmd.holder_nihii in {provider.nihii, gmd_manager} else "gmd-group-practice")
    if item.care_path_free and any(c.rights_start <= on and (c.rights_end is None or on <= c.rights_end)
                                   for c in file.care_trajectories):
        share = 0
        applied.append("care-path")
    if item.palliative_free and file.palliative_since is not None and file.palliative_since <= on:
        share = 0
        applied.append("palliative")

    fee = item.fee + (item.accredited_supplement if provider.accredited else 0)
    if provider.accredited and item.accredited_supplement:
        applied.append("accredited")
    share = max(0, min(share, fee))
    # Third-party payment: asked for by the provider (2), or by right (chronic-condition year, preferential).
    third_party = justification is Justification.THIRD_PARTY_REQUESTED
    if on.year in file.chronic_years or (period is not None and period.preferential):
        third_party = True  # by right: chronic-condition status, preferential regime (not the child rule)
    approval = payment_approval(file, period, on)[0] if third_party and period is not None else None
    if justification is not None:
        answered = justification
    else:
        answered = Justification.PAYMENT_COMMITMENT if approval else Justification.NO_PAYMENT_COMMITMENT
    return TariffLine(code, fee, fee - share, share, approval, answered, tuple(applied))


# -- Mediprima: care covered by a CPAS decision (seed 001 §14-18) -----------------------------------

@dataclass(frozen=True)
class MediprimaLine:
    code: str
    date: dt.date
    fee: int
    patient_share: int
    approval: str
    spp_amount: int                # reimbursed by SPP Social Integration
    cpas_amount: int               # reimbursed by the CPAS
    amu_certificate_needed: bool


def mediprima_tariff(table: Nomenclature, provider: Provider, decision: CpasDecision, ssin: str, code: str,
                     on: dt.date) -> MediprimaLine | NoTariff:
    """SPP Social Integration pays what the insurance would (fee minus the ordinary share); the CPAS
    pays the share too when its decision says so; otherwise the patient pays it."""
    item = table.codes.get(code)
    if item is None:
        return NoTariff(code, "130", "Unknown nomenclature code.")
    if item.discipline != provider.discipline:
        return NoTariff(code, "171", "Nomenclature code not allowed for this type of provider.")
    if not decision.covers(on):
        return NoTariff(code, "170", "No CPAS decision covers the patient on this date.")
    fee = item.fee + (item.accredited_supplement if provider.accredited else 0)
    share = item.ordinary_share
    cpas_amount = share if decision.patient_share_by_cpas else 0
    seed = sum(ord(c) for c in f"{ssin}{code}{on}{decision.decision}")
    approval = f"MP{on:%y%m%d}{seed % 10**6:06d}"
    return MediprimaLine(code, on, fee, share - cpas_amount, approval, fee - share, cpas_amount,
                         decision.urgent_medical_aid)
