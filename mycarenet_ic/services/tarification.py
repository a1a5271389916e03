"""Tariff consultation (seed 001 §10-13) and its Mediprima variant (§14-18) as use cases.

In: the requester (verified certificate + what the CommonInput claims) and the KMEHR request read
into a :class:`TariffRequest`. Out: the patient and one line per nomenclature code, or errors with
the public tariff catalogue's codes (``ConsultTarifErrors``: 140/141 author may not ask / unknown,
111 format, 112 check digit, 120 patient unknown, 121/122 mutuality / membership unknown, 130 value
not allowed, 146 date in the future, 158 patient data incoherent, 166 date more than two months back,
167/174 GMD holder, 169 medical house, 170 patient not in order, 171 code not for this provider).
Each error names the part of the request it is about (``TariffError.part``, a :class:`RequestPart`)
so that the SOAP layer can point at the very node the client sent; no KMEHR path is here.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mycarenet_ic.domain.assurability import InsurabilityPeriod, InvoicingStatus, MemberFile
from mycarenet_ic.domain.identifiers import InvalidIdentifier, parse_niss
from mycarenet_ic.domain.qualities import CallerIdentity, RequesterKind
from mycarenet_ic.domain.records import Person
from mycarenet_ic.domain.tariff import (
    REQUESTABLE,
    Justification,
    MediprimaLine,
    Nomenclature,
    NoTariff,
    Patient,
    Provider,
    TariffLine,
    discipline_of,
    mediprima_tariff,
    tariff,
)
from mycarenet_ic.errors import AccessDenied
from mycarenet_ic.services.ports import Cobrha, MemberFiles, NationalRegister
from mycarenet_ic.services.requesters import Requester

MAX_DAYS_BACK = 61  # "date inférieure à la date du jour moins 2 mois" (166)
GROUP_PRACTICE = "grouppractice"  # CoBrHa organisation type of a group practice (sandbox name)
MUTUALITY = re.compile(r"[1-69][0-9]{2}")
MEMBERSHIP = re.compile(r"[0-9A-Za-z]{1,13}")
SEXES = {"male", "female"}



class RequestPart(enum.Enum):
    """The parts of a tariff request an error can name; the SOAP layer knows the node of each (or the
    nearest one the client sent)."""

    AUTHOR = "author"                          # the author's NIHII
    PATIENT = "patient"
    PATIENT_ID = "patient id"                  # the patient's NISS
    PATIENT_SEX = "patient sex"
    MUTUALITY = "mutuality"                    # the insurer of the patient's membership
    MEMBERSHIP = "membership"                  # the membership number
    SERVICE = "service"                        # what is asked as a whole
    SERVICE_DATE = "service date"              # the date of the service as given
    SERVICE_DAY = "service day"                # the day it gives
    CODE = "code"                              # one nomenclature code (``TariffError.index`` says which)
    JUSTIFICATION = "justification"
    GMD_MANAGER = "gmd manager"


@dataclass(frozen=True)
class TariffRequest:
    """A tariff request as read by the SOAP layer (shape checked, values not yet).

    The patient is identified by ``patient_ssin`` or, when that is empty, by ``sex`` and
    ``membership`` (insurer's mutuality code, membership number)."""

    id: str
    author_nihii: str | None
    patient_ssin: str
    date: dt.date | None
    codes: tuple[str, ...]
    justification: str | None = None
    gmd_manager: str | None = None
    mediprima: bool = False
    sex: str | None = None
    membership: tuple[str, str] | None = None
    # The message's version, as the client sent it; the answer carries it back with the message's
    # reference (seed 001 §17-18).
    version: str | None = None


@dataclass(frozen=True)
class TariffError:
    """An error of the answer: the public catalogue's ``code`` and the part of the request it is about
    (``index``: which code, for a :attr:`RequestPart.CODE`)."""

    code: str
    description: str
    part: RequestPart
    index: int | None = None


@dataclass
class TariffAnswer:
    request: TariffRequest
    ssin: str
    person: Person | None = None
    period: InsurabilityPeriod | None = None
    lines: list[TariffLine | MediprimaLine | NoTariff] = field(default_factory=list)
    errors: list[TariffError] = field(default_factory=list)
    audit_detail: str = ""
    author_refused: bool = False
    provider: Provider | None = None
    cpas: str | None = None              # Mediprima: the CPAS of the decision (enterprise number)

    @property
    def complete(self) -> bool:
        return not self.errors


class _Errors:
    def __init__(self, errors: list[TariffError]) -> None:
        self.errors = errors

    def add(self, code: str, description: str, part: RequestPart, index: int | None = None) -> None:
        self.errors.append(TariffError(code, description, part, index))


class Tarification:
    def __init__(self, table: Nomenclature, insurers: MemberFiles, cobrha: Cobrha, national_register: NationalRegister,
                 today: Callable[[], dt.date] = dt.date.today) -> None:
        self.table = table
        self.insurers = insurers
        self.cobrha = cobrha
        self.nr = national_register
        self.today = today

    @staticmethod
    def _check_caller(requester: Requester) -> None:
        """What the platform refuses before any business rule (a SOAP fault): a caller who is no care
        provider at all, or a request naming someone else than the caller."""
        if requester.identity.quality.kind is not RequesterKind.CARE_PROVIDER:
            raise AccessDenied("The caller's quality gives no access to the tariff consultation.")
        requester.check_claim({requester.identity.nihii})

    def _provider(self, identity: CallerIdentity, today: dt.date, errors: _Errors) -> Provider | None:
        """The author as the insurers know it: 141 when CoBrHa does not know the NIHII (as this holder),
        140 when it may not ask today (no such profession for this NIHII, or no valid VISA)."""
        pro = self.cobrha.professional(nihii=identity.nihii) if identity.nihii else None
        if pro is None or (identity.ssin is not None and pro.ssin != identity.ssin):
            errors.add("141", "The author of the request is not known to the insurer on today's date.",
                       RequestPart.AUTHOR)
            return None
        profession = next((p for p in pro.professions
                           if p.nihii == identity.nihii and p.code == identity.quality.hcparty_code), None)
        if profession is None or not profession.visa_valid_on(today):
            errors.add("140", "The author of the request may not make this kind of request on today's date.",
                       RequestPart.AUTHOR)
            return None
        discipline, accredited = discipline_of(profession.code, identity.nihii or "")
        return Provider(identity.nihii or "", discipline, accredited, self._group_practices(profession.workplaces))

    def _group_practices(self, workplaces: tuple[str, ...]) -> frozenset[str]:
        """The group practices among ``workplaces`` (seed 001 §12: the tariff takes the group practice into
        account), as CoBrHa knows them."""
        out = set()
        for nihii in workplaces:
            org = self.cobrha.organisation(nihii=nihii)
            if org is not None and org.type == GROUP_PRACTICE and org.nihii:
                out.add(org.nihii)
        return frozenset(out)

    def _holder_practices(self, file: MemberFile) -> frozenset[str]:
        """The group practices the patient's GMD holder works in."""
        gmd = file.global_medical_file
        pro = self.cobrha.professional(nihii=gmd.holder_nihii) if gmd is not None else None
        if gmd is None or pro is None:
            return frozenset()
        return self._group_practices(tuple(w for p in pro.professions if p.nihii == gmd.holder_nihii
                                           for w in p.workplaces))

    def _patient(self, req: TariffRequest, when: dt.date | None, errors: _Errors) -> str | None:
        """The patient's NISS, as the request gives it or from sex + insurer membership."""
        ssin = req.patient_ssin.strip()
        if ssin:
            if len(ssin) != 11 or not ssin.isdigit():
                errors.add("111", "The patient's NISS is missing or not in the right format.", RequestPart.PATIENT_ID)
                return None
            try:
                parse_niss(ssin)
            except InvalidIdentifier:
                errors.add("112", "Check digit error in the patient's NISS.", RequestPart.PATIENT_ID)
                return None
            return ssin
        if req.membership is None:
            errors.add("100", "The insurer's data are required when the patient's NISS is not given.",
                       RequestPart.PATIENT)
            return None
        mutuality, number = (v.strip() for v in req.membership)
        before = len(errors.errors)
        if not req.sex:
            errors.add("100", "The patient's sex is required when the NISS is not given.", RequestPart.PATIENT_SEX)
        elif req.sex not in SEXES:
            errors.add("130", "Value not allowed for the patient's sex.", RequestPart.PATIENT_SEX)
        if not (len(mutuality) == 3 and mutuality.isdigit()):
            errors.add("111", "The mutuality code is missing or not in the right format.", RequestPart.MUTUALITY)
        elif not MUTUALITY.fullmatch(mutuality):
            errors.add("121", "The patient's mutuality is not known to the insurers.", RequestPart.MUTUALITY)
        if not MEMBERSHIP.fullmatch(number):
            errors.add("111", "The membership number is not in the right format.", RequestPart.MEMBERSHIP)
        if len(errors.errors) > before or when is None:
            return None
        found = self.insurers.ssin_of(mutuality, number)
        file = self.insurers.member_file(found) if found else None
        period = file.period_on(when) if file is not None else None
        if found is None or period is None or (period.mutuality, period.registration_number) != (mutuality, number):
            errors.add("122", "The membership number is not known to the insurer, or not on the date of the service.",
                       RequestPart.MEMBERSHIP)
            return None
        person = self.nr.person(found)
        if person is not None and person.sex in SEXES and person.sex != req.sex:
            errors.add("158", "The patient's identification data do not agree with each other.", RequestPart.PATIENT)
            return None
        return found

    def _check(self, req: TariffRequest, provider: Provider, today: dt.date,
               answer: TariffAnswer) -> tuple[MemberFile, dt.date] | None:
        """Request-level checks; on failure the errors are in ``answer`` and None is returned."""
        errors = _Errors(answer.errors)
        if req.author_nihii and req.author_nihii != provider.nihii:
            errors.add("155", "The author of the request does not match the web service's caller.", RequestPart.AUTHOR)
        when = req.date
        if when is None:
            errors.add("100", "The date of the service is missing.", RequestPart.SERVICE_DATE)
        elif when > today:
            errors.add("146", "The date of the service is after today.", RequestPart.SERVICE_DAY)
            when = None
        elif (today - when).days > MAX_DAYS_BACK:
            errors.add("166", "The date of the service is more than two months back.", RequestPart.SERVICE_DAY)
            when = None
        ssin = self._patient(req, when, errors)
        if ssin:
            answer.ssin = ssin
        if not req.codes:
            errors.add("100", "No nomenclature code.", RequestPart.SERVICE)
        for n, code in enumerate(req.codes):
            if len(code) != 6 or not code.isdigit():
                errors.add("111", f"Nomenclature code {code!r} is not in the right format.", RequestPart.CODE, n)
        if req.justification is not None:
            value = req.justification.strip()
            if not value.isdigit():
                errors.add("111", "The justification is not in the right format.", RequestPart.JUSTIFICATION)
            elif value not in {j.value for j in REQUESTABLE}:
                errors.add("130", "Value not allowed for the justification.", RequestPart.JUSTIFICATION)
        if answer.errors or when is None or ssin is None:
            return None
        file = self.insurers.member_file(ssin)
        covered = file is not None and (file.cpas is not None if req.mediprima else file.period_on(when) is not None)
        if file is None or not covered:
            errors.add("120" if not req.mediprima else "170",
                       "The patient is not known, or not covered on the date of the service.", RequestPart.PATIENT_ID)
            return None
        if not req.mediprima and file.invoicing_status is not InvoicingStatus.POSSIBLE:
            errors.add("170", "The patient is not in order with the insurer.", RequestPart.PATIENT_ID)
            return None
        if req.gmd_manager:
            gmd = file.global_medical_file
            if req.gmd_manager == provider.nihii:
                errors.add("174", "The GMD manager may only be named when it is not the author.",
                           RequestPart.GMD_MANAGER)
            elif gmd is None or gmd.holder_nihii != req.gmd_manager or not gmd.active_on(when):
                errors.add("167", "The GMD manager named is not the GMD holder known to the insurer.",
                           RequestPart.GMD_MANAGER)
            if answer.errors:
                return None
        return file, when

    def consult(self, requester: Requester, req: TariffRequest) -> TariffAnswer:
        today, identity = self.today(), requester.identity
        self._check_caller(requester)
        answer = TariffAnswer(req, req.patient_ssin.strip())
        provider = self._provider(identity, today, _Errors(answer.errors))
        if provider is None:
            answer.author_refused = True
            answer.audit_detail = "author refused " + ",".join(e.code for e in answer.errors)
            return answer
        answer.provider = provider
        checked = self._check(req, provider, today, answer)
        if checked is None:
            answer.audit_detail = "refused " + ",".join(e.code for e in answer.errors)
            return answer
        file, when = checked
        answer.person = self.nr.person(answer.ssin)
        answer.period = file.period_on(when)
        answer.cpas = file.cpas.cpas if req.mediprima and file.cpas is not None else None
        asked = Justification(req.justification.strip()) if req.justification else None
        errors = _Errors(answer.errors)
        holder_practices = self._holder_practices(file) if provider.group_practices and not req.mediprima \
            else frozenset()
        for n, code in enumerate(req.codes):
            if req.mediprima:
                assert file.cpas is not None
                line: TariffLine | MediprimaLine | NoTariff = mediprima_tariff(
                    self.table, provider, file.cpas, answer.ssin, code, when)
            else:
                patient = Patient(answer.ssin, answer.person.birth_date if answer.person else None, file)
                line = tariff(self.table, provider, patient, code, when, asked, req.gmd_manager, holder_practices)
            answer.lines.append(line)
            if isinstance(line, NoTariff):
                errors.add(line.error, line.message, RequestPart.CODE, n)
        answer.audit_detail = (f"{'mediprima ' if req.mediprima else ''}date={when} provider={provider.discipline}"
                               f"{' accredited' if provider.accredited else ''} codes="
                               + ",".join(_summary(line) for line in answer.lines))
        return answer


def _summary(line: TariffLine | MediprimaLine | NoTariff) -> str:
    if isinstance(line, NoTariff):
        return f"{line.code}:no-tariff({line.error})"
    if isinstance(line, TariffLine):
        return (f"{line.code}:{line.fee}/{line.patient_share}" + (f"[{'+'.join(line.applied)}]" if line.applied else "")
                + f"j{line.justification.value}")
    return f"{line.code}:{line.fee}/{line.patient_share}/cpas={line.cpas_amount}"
