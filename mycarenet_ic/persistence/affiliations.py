"""The insurers' data (the CIN/NIC affiliation database and the member files in reality): scenario
data, read from the data directory's ``scenario.json`` and re-read when the file changes.

``insurer_affiliations``: one record per insurability period (NISS, mutuality code — the insurer
union is its first digit + "00" —, registration number, start, end and why it ended, CT1/CT2,
third-party-payer regime; a ``communication_date`` key is ignored: the answer's communication date is the
day of the query). ``member_facts``: per NISS, what else the insurers
know (MAF years, care trajectories, chronic-condition years, chronic-care flat-fee years, reference pharmacy,
medical house, hospitalisation, GMD, palliative status, CPAS decision, the domicile's postal code, …). Shared
by Integrated Care (export, research export), MemberData and Tarification.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

from mycarenet_ic.domain.assurability import (
    CareTrajectory,
    CpasDecision,
    GlobalMedicalFile,
    Hospitalisation,
    InsurabilityPeriod,
    InvoicingStatus,
    MedicalHouse,
    MemberFile,
    ReferencePharmacy,
    ThirdPartyRegime,
)


def _d(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _period(rec: dict[str, Any]) -> InsurabilityPeriod:
    start = _d(rec["start"])
    assert start is not None
    return InsurabilityPeriod(
        mutuality=rec["mutuality"], registration_number=rec["registration_number"], start=start,
        end=_d(rec.get("end")), ct1=rec.get("ct1", "110"), ct2=rec.get("ct2", "110"),
        third_party=ThirdPartyRegime(rec.get("third_party", "none")), end_reason=rec.get("end_reason"))


def _file(ssin: str, periods: list[InsurabilityPeriod], facts: dict[str, Any]) -> MemberFile:
    def opt(key: str, build: Any) -> Any:
        value = facts.get(key)
        return build(value) if value else None

    return MemberFile(
        ssin=ssin,
        periods=tuple(sorted(periods, key=lambda p: p.start)),
        other_mutualities=tuple(facts.get("other_mutualities", ())),
        maf_years=tuple(facts.get("maf_years", ())),
        chronic_years=tuple(facts.get("chronic_years", ())),
        chronic_flat_fee_years=tuple(facts.get("chronic_flat_fee_years", ())),
        care_trajectories=tuple(
            CareTrajectory(c["type"], c.get("gp_nihii"), c.get("medical_house_nihii"), c.get("specialist_nihii"),
                           _d(c["rights_start"]) or dt.date.min, _d(c.get("contract_end")), _d(c.get("rights_end")))
            for c in facts.get("care_trajectories", ())),
        reference_pharmacy=opt("reference_pharmacy", lambda r: ReferencePharmacy(
            r["pharmacy_nihii"], _d(r["agreement_date"]) or dt.date.min)),
        medical_house=opt("medical_house", lambda m: MedicalHouse(
            m["nihii"], _d(m["start"]) or dt.date.min, _d(m.get("end")),
            frozenset(m.get("covers", ("doctor", "nurse", "physiotherapist"))))),
        hospitalisation=opt("hospitalisation", lambda h: Hospitalisation(
            h["hospital_nihii"], _d(h["admission_date"]) or dt.date.min, h["service"], _d(h.get("discharge_date")))),
        third_party_ban_exception=bool(facts.get("third_party_ban_exception")),
        invoicing_status=InvoicingStatus(facts.get("invoicing_status", InvoicingStatus.POSSIBLE.value)),
        global_medical_file=opt("global_medical_file", lambda g: GlobalMedicalFile(
            g["holder_nihii"], _d(g["start"]) or dt.date.min, _d(g.get("end")))),
        palliative_since=_d(facts.get("palliative_since")),
        cpas=opt("cpas", lambda c: CpasDecision(
            c["cpas"], c["decision"], _d(c["start"]) or dt.date.min, _d(c["end"]) or dt.date.max,
            bool(c.get("patient_share_by_cpas")), bool(c.get("urgent_medical_aid")))),
    )


class ScenarioAffiliations:
    def __init__(self, scenario_file: Path) -> None:
        self.path = Path(scenario_file)
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._files: dict[str, MemberFile] = {}
        self._by_registration: dict[tuple[str, str], str] = {}
        self._postal_codes: dict[str, str] = {}

    def _load(self) -> dict[str, MemberFile]:
        with self._lock:
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                return {}
            if mtime != self._mtime:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                periods: dict[str, list[InsurabilityPeriod]] = {}
                for rec in data.get("insurer_affiliations", []):
                    periods.setdefault(rec["ssin"], []).append(_period(rec))
                facts = data.get("member_facts", {})
                # People the insurers do not cover (a CPAS decision, say) have facts but no period.
                self._files = {ssin: _file(ssin, periods.get(ssin, []), facts.get(ssin, {}))
                               for ssin in set(periods) | set(facts)}
                self._by_registration = {(p.mutuality, p.registration_number): ssin
                                         for ssin, f in self._files.items() for p in f.periods}
                self._postal_codes = {ssin: str(f["postal_code"]) for ssin, f in facts.items() if f.get("postal_code")}
                self._mtime = mtime
            return self._files

    def member_file(self, ssin: str) -> MemberFile | None:
        return self._load().get(ssin)

    def ssin_of(self, mutuality: str, registration_number: str) -> str | None:
        self._load()
        return self._by_registration.get((mutuality, registration_number))

    def postal_code(self, ssin: str) -> str | None:
        """The member's domicile postal code as the insurer knows it (``member_facts`` ``postal_code``)."""
        self._load()
        return self._postal_codes.get(ssin)

    def affiliation(self, ssin: str, on: dt.date) -> InsurabilityPeriod | None:
        file = self.member_file(ssin)
        return file.period_on(on) if file else None
