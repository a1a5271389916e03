"""Tariff consultation (seed 001 §10-13) and its Mediprima variant (§14-18) as use cases.

In: the requester (verified certificate + what the CommonInput claims) and the KMEHR request read
into a :class:`TariffRequest`. Out: the patient and one line per nomenclature code, or errors with
the public tariff catalogue's codes (``ConsultTarifErrors``: 111 format, 112 check digit, 120
patient unknown, 130 value not allowed, 146 date in the future, 166 date more than two months back,
167/174 GMD holder, 169 medical house, 170 patient not in order, 171 code not for this provider).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from mycarenet_ic.domain.assurability import InsurabilityPeriod, InvoicingStatus, MemberFile
from mycarenet_ic.domain.identifiers import InvalidIdentifier, parse_niss
from mycarenet_ic.domain.qualities import CallerIdentity, Quality
from mycarenet_ic.domain.records import Person
from mycarenet_ic.domain.tariff import (
    MediprimaLine,
    Nomenclature,
    NoTariff,
    Patient,
    Provider,
    TariffLine,
    ThirdPartyReason,
    discipline_of,
    mediprima_tariff,
    tariff,
)
from mycarenet_ic.errors import AccessDenied
from mycarenet_ic.services.memberdata import InsurerData
from mycarenet_ic.services.ports import Cobrha, NationalRegister
from mycarenet_ic.services.requesters import check_claimed_person, checked_profession

TRANSACTION = "/RetrieveTransactionRequest/select/transaction[tariff]"
PATIENT_ID = "/RetrieveTransactionRequest/select/patient/id"
MAX_DAYS_BACK = 61  # "date inférieure à la date du jour moins 2 mois" (166)
PROVIDERS = {Quality.DOCTOR, Quality.NURSE, Quality.PHYSIOTHERAPIST, Quality.DENTIST, Quality.MIDWIFE}


@dataclass(frozen=True)
class TariffRequest:
    """A KMEHR tariff request as read by the SOAP layer (shape checked, values not yet)."""

    id: str
    author_nihii: str | None
    patient_ssin: str
    date: dt.date | None
    codes: tuple[str, ...]
    justification: str | None = None
    gmd_manager: str | None = None
    mediprima: bool = False


@dataclass(frozen=True)
class KmehrError:
    code: str
    description: str
    url: str


@dataclass
class TariffAnswer:
    request: TariffRequest
    ssin: str
    person: Person | None = None
    period: InsurabilityPeriod | None = None
    lines: list[TariffLine | MediprimaLine | NoTariff] = field(default_factory=list)
    errors: list[KmehrError] = field(default_factory=list)
    audit_detail: str = ""

    @property
    def complete(self) -> bool:
        return not self.errors


class Tarification:
    def __init__(self, table: Nomenclature, insurers: InsurerData, cobrha: Cobrha, national_register: NationalRegister,
                 today: Callable[[], dt.date] = dt.date.today) -> None:
        self.table = table
        self.insurers = insurers
        self.cobrha = cobrha
        self.nr = national_register
        self.today = today

    def _provider(self, identity: CallerIdentity, claimed_nihii: str | None, today: dt.date,
                  claimed_ssin: str | None = None) -> Provider:
        if identity.quality not in PROVIDERS:
            raise AccessDenied("The caller's quality gives no access to the tariff consultation.")
        check_claimed_person(identity, claimed_ssin)
        profession = checked_profession(self.cobrha, identity, today)
        if claimed_nihii and claimed_nihii != identity.nihii:
            raise AccessDenied("The CommonInput names another care provider than the certificate.")
        discipline, accredited = discipline_of(profession.code, identity.nihii or "")
        return Provider(identity.nihii or "", discipline, accredited)

    def _check(self, req: TariffRequest, provider: Provider, today: dt.date,
               answer: TariffAnswer) -> tuple[MemberFile, dt.date] | None:
        """Request-level checks; on failure the errors are in ``answer`` and None is returned."""
        errors = answer.errors
        if req.author_nihii and req.author_nihii != provider.nihii:
            errors.append(KmehrError("155", "The author of the request does not match the web service's caller.",
                                     "/RetrieveTransactionRequest/request/author/hcparty/id"))
        ssin = req.patient_ssin.strip()
        if len(ssin) != 11 or not ssin.isdigit():
            errors.append(KmehrError("111", "The patient's NISS is missing or not in the right format.", PATIENT_ID))
        else:
            try:
                parse_niss(ssin)
            except InvalidIdentifier:
                errors.append(KmehrError("112", "Check digit error in the patient's NISS.", PATIENT_ID))
        when = req.date
        where = f"{TRANSACTION}/item[encounterdatetime]/content/date"
        if when is None:
            errors.append(KmehrError("100", "The date of the service is missing.",
                                     f"{TRANSACTION}/item[encounterdatetime]"))
        elif when > today:
            errors.append(KmehrError("146", "The date of the service is after today.", where))
        elif (today - when).days > MAX_DAYS_BACK:
            errors.append(KmehrError("166", "The date of the service is more than two months back.", where))
        if not req.codes:
            errors.append(KmehrError("100", "No nomenclature code.", f"{TRANSACTION}/item[claim]"))
        for code in req.codes:
            if len(code) != 6 or not code.isdigit():
                errors.append(KmehrError("111", f"Nomenclature code {code!r} is not in the right format.",
                                         f"{TRANSACTION}/item[claim]/content/cd[CD-NIHDI]"))
        if req.justification and req.justification not in {r.value for r in ThirdPartyReason}:
            errors.append(KmehrError("130", "Value not allowed for the justification.",
                                     f"{TRANSACTION}/item[justification]/content/cd[CD-MYCARENET-JUSTIFICATION]"))
        if errors or when is None:
            return None
        file = self.insurers.member_file(ssin)
        covered = file is not None and (file.cpas is not None if req.mediprima else file.period_on(when) is not None)
        if file is None or not covered:
            errors.append(KmehrError("120" if not req.mediprima else "170",
                                     "The patient is not known, or not covered on the date of the service.",
                                     PATIENT_ID))
            return None
        if not req.mediprima and file.invoicing_status is not InvoicingStatus.POSSIBLE:
            errors.append(KmehrError("170", "The patient is not in order with the insurer.", PATIENT_ID))
            return None
        gmd_where = f"{TRANSACTION}/item[gmdmanager]/content/hcparty/id"
        if req.gmd_manager:
            gmd = file.global_medical_file
            if req.gmd_manager == provider.nihii:
                errors.append(KmehrError("174", "The GMD manager may only be named when it is not the author.",
                                         gmd_where))
            elif gmd is None or gmd.holder_nihii != req.gmd_manager or not gmd.active_on(when):
                errors.append(KmehrError("167", "The GMD manager named is not the GMD holder known to the insurer.",
                                         gmd_where))
            if errors:
                return None
        return file, when

    def consult(self, identity: CallerIdentity, claimed_nihii: str | None, req: TariffRequest,
                claimed_ssin: str | None = None) -> TariffAnswer:
        today = self.today()
        provider = self._provider(identity, claimed_nihii, today, claimed_ssin)
        answer = TariffAnswer(req, req.patient_ssin.strip())
        checked = self._check(req, provider, today, answer)
        if checked is None:
            answer.audit_detail = "refused " + ",".join(e.code for e in answer.errors)
            return answer
        file, when = checked
        answer.person = self.nr.person(answer.ssin)
        answer.period = file.period_on(when)
        reason = ThirdPartyReason(req.justification) if req.justification else None
        for code in req.codes:
            if req.mediprima:
                assert file.cpas is not None
                line: TariffLine | MediprimaLine | NoTariff = mediprima_tariff(
                    self.table, provider, file.cpas, answer.ssin, code, when)
            else:
                patient = Patient(answer.ssin, answer.person.birth_date if answer.person else None, file)
                line = tariff(self.table, provider, patient, code, when, reason, req.gmd_manager)
            answer.lines.append(line)
            if isinstance(line, NoTariff):
                answer.errors.append(KmehrError(line.error, line.message,
                                                f"{TRANSACTION}/item[claim]/content/cd[CD-NIHDI]"))
        answer.audit_detail = (f"{'mediprima ' if req.mediprima else ''}date={when} provider={provider.discipline}"
                               f"{' accredited' if provider.accredited else ''} codes="
                               + ",".join(_summary(line) for line in answer.lines))
        return answer


def _summary(line: TariffLine | MediprimaLine | NoTariff) -> str:
    if isinstance(line, NoTariff):
        return f"{line.code}:no-tariff({line.error})"
    if isinstance(line, TariffLine):
        return f"{line.code}:{line.fee}/{line.patient_share}" + (f"[{'+'.join(line.applied)}]" if line.applied else "")
    return f"{line.code}:{line.fee}/{line.patient_share}/cpas={line.cpas_amount}"
